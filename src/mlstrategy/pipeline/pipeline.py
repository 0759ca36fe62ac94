"""A multi-stage pipeline: stages composed for inference, evaluated as a whole and by parts."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import torch
from torch import Tensor

from mlstrategy.pipeline.stages import Stage

Examples = Mapping[str, Tensor]


class Pipeline:
    """Stages run in order, each reading values the system input or earlier stages provide.

    Examples are a mapping of names to batched tensors: the system's input (e.g. ``canvas``)
    and every stage's intermediate label (e.g. ``position``, ``digit``, ``label``). Training
    (:meth:`fit`) gives each stage ground-truth inputs and its own intermediate label;
    inference (:meth:`run`) feeds each stage the outputs of the stages before it, or, for the
    stages named in ``perfect``, replaces the stage's output by its ground truth (the basis
    of :func:`~mlstrategy.pipeline.ceiling.ceiling_analysis`).

    Args:
        stages: The stages, in order. The last one writes the system's output.

    Example:
        >>> from mlstrategy.pipeline.stages import FixedStage
        >>> add = FixedStage("add", lambda a, b: a + b, reads=["a", "b"], writes="s")
        >>> neg = FixedStage("negate", lambda s: -s, reads=["s"], writes="out")
        >>> pipe = Pipeline([add, neg])
        >>> pipe.inputs, pipe.output
        (('a', 'b'), 'out')
        >>> pipe.predict({"a": torch.tensor([1]), "b": torch.tensor([2])})
        tensor([-3])
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        stages = list(stages)
        if not stages:
            raise ValueError("stages=[]: a pipeline needs at least one stage.")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages have repeated names {names}; give each a distinct name.")
        inputs: list[str] = []
        written: list[str] = []
        for stage in stages:
            if stage.writes in written or stage.writes in inputs:
                raise ValueError(
                    f"stage {stage.name!r} writes {stage.writes!r}, which "
                    f"{'an earlier stage writes' if stage.writes in written else 'is an input'};"
                    " each value has one source."
                )
            inputs += [k for k in stage.reads if k not in written and k not in inputs]
            written.append(stage.writes)
        self.stages = stages
        self.inputs = tuple(inputs)
        self.output = stages[-1].writes

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise ValueError(f"name={name!r} is not a stage; the stages are {self.stage_names}.")

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def _check(self, examples: Examples, keys: Collection[str]) -> None:
        missing = [k for k in keys if k not in examples]
        if missing:
            raise ValueError(
                f"examples lack {missing}; they have {sorted(examples)}. A pipeline needs its "
                f"inputs {list(self.inputs)} and, to train or to be scored, every stage's "
                f"intermediate label {[s.writes for s in self.stages]}."
            )

    def fit(self, examples: Examples) -> Pipeline:
        """Train every stage on ground-truth inputs and its own intermediate label."""
        self._check(examples, [*self.inputs, *(s.writes for s in self.stages)])
        for stage in self.stages:
            stage.fit([examples[k] for k in stage.reads], examples[stage.writes])
        return self

    def run(self, examples: Examples, perfect: Collection[str] = ()) -> dict[str, Tensor]:
        """Every value the pipeline computes, with the stages in ``perfect`` replaced by their
        ground truth (read from ``examples``).

        Args:
            examples: The inputs, plus the intermediate labels of the stages in ``perfect``.
            perfect: Names of stages whose output is taken from the ground truth.

        Returns:
            The inputs and each stage's output, by name.
        """
        unknown = sorted(set(perfect) - set(self.stage_names))
        if unknown:
            raise ValueError(f"perfect={unknown}: not stages; the stages are {self.stage_names}.")
        self._check(examples, [*self.inputs, *(s.writes for s in self.stages if s.name in perfect)])
        values = {k: examples[k] for k in self.inputs}
        for stage in self.stages:
            if stage.name in perfect:
                values[stage.writes] = examples[stage.writes]
            else:
                values[stage.writes] = stage.predict(*(values[k] for k in stage.reads))
        return values

    def predict(self, examples: Examples) -> Tensor:
        """The system's output for ``examples`` (which need only the inputs)."""
        return self.run(examples)[self.output]

    def error(self, examples: Examples, perfect: Collection[str] = ()) -> float:
        """Fraction of examples whose final output is wrong (stages in ``perfect`` replaced by
        ground truth)."""
        self._check(examples, [self.output])
        predicted = self.run(examples, perfect)[self.output]
        wrong = self.stages[-1].wrong(predicted, examples[self.output])
        if wrong is None:
            raise ValueError(
                f"The last stage {self.stages[-1].name!r} has no right/wrong reading of its "
                "output, so the pipeline has no error rate; end it with a classifier."
            )
        return float(wrong.double().mean())

    def stage_errors(self, examples: Examples) -> dict[str, float | None]:
        """Each stage on its own: its error on ground-truth inputs (None when its output has no
        right/wrong reading, e.g. an image)."""
        self._check(examples, [*self.inputs, *(s.writes for s in self.stages)])
        errors: dict[str, float | None] = {}
        for stage in self.stages:
            predicted = stage.predict(*(examples[k] for k in stage.reads))
            wrong = stage.wrong(predicted, examples[stage.writes])
            errors[stage.name] = None if wrong is None else float(wrong.double().mean())
        return errors


def as_examples(**values: object) -> dict[str, Tensor]:
    """Tensors by name from arrays or tensors (``torch.as_tensor`` on each)."""
    return {k: torch.as_tensor(v) for k, v in values.items()}
