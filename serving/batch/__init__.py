"""Nightly scored files: the chunk scorer (``scorer``), the scored file and its atomic writer
(``files``), the run's audit records (``audit``), the run put together (``run``), and where the
chunks are scored: processes on this machine (``parallel``) or a Dask cluster (``dask_scoring``).

May import history, audit, access, scoring, policy, store and settings; never worklist or api.
"""
