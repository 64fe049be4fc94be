"""The hash-chained audit trail: record types, canonical JSON and hashing (``records``), its
tables (``tables``), the store with group commit and purge (``store``), the chain's verifier
(``verify``) and exports for auditors (``export``).

May import scoring, policy, store and settings; never history, access or anything above.
"""
