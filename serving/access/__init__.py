"""Who may call the server and in which role: users (``users``, the people behind the keys) and
API keys issued to a user or to a system integration (``keys``).

May import scoring, policy, store and settings; never history, audit or anything above.
"""
