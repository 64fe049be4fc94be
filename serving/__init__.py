"""Online and batch scoring: model loading, scorer, policy, worklist, audit store, HTTP app."""
