"""The composition root: the ``arscore`` command line, which wires features, training and serving."""
