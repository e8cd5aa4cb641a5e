"""The configuration: the model (a leaf) and its readers."""
