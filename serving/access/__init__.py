"""Who may call the server and in which role: API keys (``keys``).

May import scoring, policy, store and settings; never history, audit or anything above.
"""
