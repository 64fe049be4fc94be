"""The server's copy of the claims history sent through the API: the tables and the chunking both
of its modules share (``tables``), the store with its idempotent upserts (``store``) and the
patient ledger kept in the same transaction (``ledger``).

May import scoring, policy, store and settings; never audit, access or anything above.
"""
