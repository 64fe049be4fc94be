"""The shared core: interchange format, validation, snapshots, labels and the feature pipeline.

Pure: takes frames, returns frames. Imported by ``training`` and ``serving``; imports neither.
"""

FEATURE_SET_VERSION = "2"
