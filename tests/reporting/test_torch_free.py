"""The modules the read-only verbs (``diagnose``, ``compare``) use import no torch, Lightning,
torchmetrics or matplotlib, so those verbs start in a fraction of a second."""

from __future__ import annotations

import subprocess
import sys

TORCH_FREE = [
    "mlstrategy.reporting.error_analysis",
    "mlstrategy.reporting.markdown",
    "mlstrategy.reporting.tables",
    "mlstrategy.reporting.tasks",
    "mlstrategy.evaluation.diagnosis",
    "mlstrategy.evaluation.learning_curve",
    "mlstrategy.evaluation.multitask",
    "mlstrategy.evaluation.selection",
    "mlstrategy.evaluation.settings",
]
HEAVY = ("torch", "lightning", "torchmetrics", "matplotlib")

# Refuses the heavy imports, so a failure's traceback shows the chain of imports that led there.
_GUARD = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ImportError("the read-only path imported " + name)
sys.meta_path.insert(0, Refuse())
"""


def test_read_only_modules_import_without_torch_or_matplotlib():
    code = _GUARD + "".join(f"import {m}\n" for m in TORCH_FREE)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
