"""The configuration: the model and its readers.

Rule: the model (agent.config.model) is a leaf, importing nothing of ours but the record
decorator (agent.core.record, itself a leaf), so every layer may use it. The readers
(everything else here) build it from a TOML file, collecting every problem; they import the
model and the core's pure parsers, never an adapter.
"""
