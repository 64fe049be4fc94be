"""One router per resource: scores, history, models, audit, health, worklist, accounts."""
