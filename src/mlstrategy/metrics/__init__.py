"""Metrics, the lowest layer: torchmetrics collections per split (``metrics.classification``),
per-task scores (``metrics.tasks``), masks for missing labels (``metrics.masking``) and the
names of the scores (``metrics.names``, without torch, for the read-only verbs).

The package imports none of them itself, so ``mlstrategy diagnose`` and ``compare`` can read
the score names without loading torch.
"""
