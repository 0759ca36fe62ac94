"""Error analysis by parts (ceiling analysis): which stage is the final error's fault.

The course's recipe: measure the whole system's error; then replace the first stage's output
by its ground truth and measure again; then the first two stages; and so on. The drop at each
row is the most the system can gain by perfecting that stage (its *ceiling*), so it says where
work pays off. The drops add up to the system's error, and the last stage's share equals its
own error on clean input (every stage before it replaced by ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlstrategy.pipeline.pipeline import Examples, Pipeline


@dataclass(frozen=True)
class CeilingRow:
    """One row of a ceiling analysis.

    Attributes:
        component: ``overall system`` for the first row, else the stage made perfect last.
        perfect: The stages replaced by ground truth in this row.
        error: The system's error with those stages perfect.
        gain: How much perfecting ``component`` lowers the error (previous row's error minus
            this one's): the part of the system's error that stage is responsible for.
        stage_error: The component's own error on ground-truth inputs, when it has one.
    """

    component: str
    perfect: tuple[str, ...]
    error: float
    gain: float
    stage_error: float | None = None


@dataclass(frozen=True)
class CeilingAnalysis:
    """The rows of a ceiling analysis, first the system as it is, then one per stage."""

    rows: tuple[CeilingRow, ...]

    @property
    def system_error(self) -> float:
        """The error of the pipeline as it is (no stage replaced)."""
        return self.rows[0].error

    @property
    def gains(self) -> dict[str, float]:
        """Each stage's share of the system's error, by stage name."""
        return {r.component: r.gain for r in self.rows[1:]}

    @property
    def worst(self) -> str:
        """The stage whose perfection would lower the error most (the first on a tie)."""
        return max(self.rows[1:], key=lambda r: r.gain).component

    def to_dict(self) -> list[dict[str, object]]:
        """The rows as plain values, for JSON (rounded to 9 decimals)."""
        return [
            {
                "component": r.component,
                "perfect": list(r.perfect),
                # A difference of two error rates carries float noise (0.20900000000000002).
                "error": round(r.error, 9),
                "gain": round(r.gain, 9),
                "stage_error": None if r.stage_error is None else round(r.stage_error, 9),
            }
            for r in self.rows
        ]


def ceiling_analysis(pipeline: Pipeline, examples: Examples) -> CeilingAnalysis:
    """The system's error with the first k stages replaced by ground truth, for every k.

    Args:
        pipeline: A trained pipeline whose last stage is a classifier.
        examples: Inputs and every stage's intermediate label (e.g. the test split).

    Returns:
        ``len(stages) + 1`` rows: ``overall system`` (nothing replaced), then, for each stage in
        order, the error with it and every stage before it perfect. The last row's error is 0
        (the output itself is the ground truth), so the gains add up to the system's error;
        the row before it is the last stage's own error on clean input.

    Example:
        >>> import torch
        >>> from mlstrategy.pipeline.stages import FixedStage
        >>> double = FixedStage("double", lambda x: 2 * x, reads=["x"], writes="y")
        >>> off = FixedStage("off", lambda y: y + (y == 4), reads=["y"], writes="z")  # wrong at 4
        >>> data = {"x": torch.arange(4), "y": torch.tensor([0, 2, 4, 5]),
        ...         "z": torch.tensor([0, 2, 4, 5])}
        >>> [(r.component, r.error) for r in ceiling_analysis(Pipeline([double, off]), data).rows]
        [('overall system', 0.5), ('double', 0.25), ('off', 0.0)]
    """
    own = pipeline.stage_errors(examples)
    stages: Sequence[str] = pipeline.stage_names
    rows = [CeilingRow("overall system", (), pipeline.error(examples), 0.0)]
    for k, name in enumerate(stages):
        perfect = tuple(stages[: k + 1])
        error = pipeline.error(examples, perfect)
        rows.append(CeilingRow(name, perfect, error, rows[-1].error - error, own[name]))
    return CeilingAnalysis(tuple(rows))
