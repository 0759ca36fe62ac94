"""Metrics, the lowest layer: torchmetrics collections per split (``metrics.classification``),
masks for missing labels, and the names of the scores (``metrics.names``, without torch, for
the read-only verbs; so this package imports nothing on its own)."""
