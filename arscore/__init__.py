"""The composition root: the `arscore` command line, wiring features, training and serving."""
