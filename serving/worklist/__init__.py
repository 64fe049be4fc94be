"""The collectors' queue: its store (``store``), rescoring from the server's history
(``rescoring``), what a collector did on an account (``actions``) and the month's write-off
documentation (``writeoffs``).

May import history, audit, access, scoring, policy, store and settings; never batch or api.
"""
