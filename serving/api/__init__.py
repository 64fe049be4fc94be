"""The HTTP shell: ``app`` (create_app, lifespan), ``deps`` (the routes' dependencies and roles),
``schemas`` (request and response bodies, the OpenAPI document), the two request decoders
(``score_request_msgspec`` for canonical score bodies, ``json_pydantic_core`` for pydantic's
Rust path), ``metrics`` (Prometheus), ``json_logs`` (structured logs), ``model_sync`` (workers
following a reload) and ``routers/`` (one per resource).

The only package that imports FastAPI or Starlette. It may import every other serving package;
routes stay thin and call the service functions the CLI calls too.
"""
