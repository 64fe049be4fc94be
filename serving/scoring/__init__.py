"""Model to numbers: loading the model in service (``loader``), the value types of claims and
events (``records``), one claim's running state (``claim_state``) and snapshot as of a date
(``online_snapshot``), feature rows (``feature_rows``), the claim scorer of the API
(``claim_scorer``), reasons in a person's words (``reasons``) and risk bands (``risk_bands``).

Imports features, store and settings only; no SQLAlchemy, no policy, nothing above.
"""
