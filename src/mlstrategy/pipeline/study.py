"""The studies a study recipe can name: the :class:`Study` base and the end-to-end vs pipeline
study.

A *study recipe* names one in its ``study:`` section (``class_path:
mlstrategy.pipeline.EndToEndStudy``); :mod:`mlstrategy.runs.study_recipe` parses it, builds
the study and hands it a run folder to write into.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from mlstrategy.data.canvas import Canvases, DigitCanvas
from mlstrategy.pipeline.ceiling import CeilingAnalysis, ceiling_analysis
from mlstrategy.pipeline.localize import LearnedLocalizer, TemplateLocalizer, crop_stage
from mlstrategy.pipeline.pipeline import Pipeline, as_examples
from mlstrategy.pipeline.stages import ModelFactory, ModelStage, Stage
from mlstrategy.pipeline.study_report import write_study
from mlstrategy.reporting.markdown import pct

LocalizerName = Literal["template", "learned"]
_LABELS = {
    "end_to_end": "end-to-end",
    "pipeline_template": "pipeline (template localizer)",
    "pipeline_learned": "pipeline (learned localizer)",
}


class Study:
    """Base class of the studies a study recipe can name; subclasses implement :meth:`run`."""

    def run(self, run_dir: Path, console: Console) -> dict[str, Any]:
        """Run the study, write its results into ``run_dir``, and return them."""
        raise NotImplementedError


def _default_end_to_end(input_shape: tuple[int, ...], num_classes: int) -> Any:
    from mlstrategy.models.conv import ConvNet

    return ConvNet(
        input_shape,
        num_classes,
        channels=(8, 16, 32),
        global_pool="max",
        batch_norm=True,
        learning_rate=0.01,
    )


def _default_classifier(input_shape: tuple[int, ...], num_classes: int) -> Any:
    from mlstrategy.models.conv import ConvNet

    return ConvNet(
        input_shape,
        num_classes,
        channels=(16, 32),
        pool_sizes=(1, 2),
        global_pool="flatten",
        hidden_dims=(64,),
        learning_rate=0.003,
    )


class EndToEndStudy(Study):
    """Test error vs training-set size of an end-to-end net and of a multi-stage pipeline.

    The task is :class:`~mlstrategy.data.canvas.DigitCanvas`: a digit somewhere on a cluttered
    canvas. For each training-set size ``m`` (the first ``m`` training canvases, so the sets are
    nested), it trains

    - **end-to-end**: one classifier mapping the canvas straight to the digit's class, on the
      canvas labels only;
    - **pipeline**: ``localize -> crop -> classify``. The localizer is trained on the position
      labels (``template``: a hand-designed matched filter whose template is the average digit;
      ``learned``: a fully convolutional position classifier), the crop is a fixed function, and
      the classifier is trained on the clean digits of the same ``m`` canvases;

    scores every approach on the same test canvases (held-out digits), and runs a ceiling
    analysis of each pipeline (error with each stage in turn replaced by its ground truth).

    Writes into the run folder: ``study.json`` (every number), ``report.md`` (the tables and
    where the curves cross), ``error_vs_train_size.png``, and TensorBoard events (the test
    errors against ``m`` on one chart, the figure, the report as text, and under ``models/``
    each trained model's cost curve).

    Args:
        task: The generated task; its ``n_train`` must be at least the largest training size.
        train_sizes: Training-set sizes ``m`` to compare at, increasing.
        end_to_end: Builds the end-to-end classifier as ``end_to_end(input_shape, 10)``; null =
            a ConvNet with channels [8, 16, 32], batch norm and global max pooling.
        classifier: Builds the pipeline's digit classifier as ``classifier((1, 8, 8), 10)``;
            null = a ConvNet with channels [16, 32] and one hidden layer of 64.
        localizers: Which pipelines to build: ``template`` (hand-designed matched filter)
            and/or ``learned`` (a position classifier trained on the position labels).
        localizer: Builds the learned localizer as ``localizer(input_shape, num_positions)``;
            null = :class:`~mlstrategy.pipeline.localize.Localizer` with its defaults.
        epochs: Passes over the ``m`` training examples for every trained model.
        min_steps: Fewest gradient steps of every trained model, so small sets get enough
            updates (``max(min_steps, epochs * ceil(m / batch_size))`` steps).
        batch_size: Mini-batch size of every trained model.
        tolerance: Pixels a predicted position may be off and still count as right in the
            localizer's own error (0 = exact).
        seed: Seed of the task's data and every model's initialization and batch order.
        accelerator: Lightning accelerator for training: ``cpu``, ``gpu``, ``auto``, ...
        log_models: Write each trained model's cost curve (train cost per epoch) to TensorBoard.
    """

    def __init__(
        self,
        task: DigitCanvas | None = None,
        train_sizes: Sequence[int] = (250, 500, 1000, 2000, 4000, 8000),
        end_to_end: ModelFactory | None = None,
        classifier: ModelFactory | None = None,
        localizers: Sequence[LocalizerName] = ("template",),
        localizer: ModelFactory | None = None,
        epochs: int = 10,
        min_steps: int = 300,
        batch_size: int = 64,
        tolerance: int = 0,
        seed: int = 0,
        accelerator: str = "cpu",
        log_models: bool = True,
    ) -> None:
        self.task = task or DigitCanvas(n_train=max(train_sizes) if train_sizes else 1)
        sizes = [int(m) for m in train_sizes]
        if not sizes or any(m < 2 for m in sizes) or sizes != sorted(set(sizes)):
            raise ValueError(
                f"train_sizes={sizes} must be increasing sizes, each >= 2, e.g. [250, 1000, 4000]."
            )
        if sizes[-1] > self.task.n_train:
            raise ValueError(
                f"train_sizes={sizes} goes up to {sizes[-1]} but task.n_train="
                f"{self.task.n_train}; raise task.init_args.n_train to at least {sizes[-1]}."
            )
        kinds = list(localizers)
        bad = [k for k in kinds if k not in ("template", "learned")]
        if not kinds or bad or len(set(kinds)) != len(kinds):
            raise ValueError(
                f"localizers={kinds} must list 'template' and/or 'learned', each once."
            )
        for arg, value, low in (
            ("epochs", epochs, 1),
            ("min_steps", min_steps, 0),
            ("batch_size", batch_size, 1),
            ("tolerance", tolerance, 0),
        ):
            if value < low:
                raise ValueError(f"{arg}={value} must be >= {low}.")
        self.train_sizes = sizes
        self.end_to_end = end_to_end or _default_end_to_end
        self.classifier = classifier or _default_classifier
        self.localizers: list[LocalizerName] = kinds
        self.localizer = localizer
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.tolerance = tolerance
        self.seed = seed
        self.accelerator = accelerator
        self.log_models = log_models

    # ------------------------------------------------------------------------------ building
    def _train_args(self, run_dir: Path, name: str) -> dict[str, Any]:
        logger: Any = None
        if self.log_models:
            from lightning.pytorch.loggers import TensorBoardLogger

            logger = TensorBoardLogger(
                save_dir=str(run_dir), name="models", version=name, default_hp_metric=False
            )
        return {
            "epochs": self.epochs,
            "min_steps": self.min_steps,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "accelerator": self.accelerator,
            "logger": logger,
        }

    def _end_to_end(self, run_dir: Path, m: int, examples: dict[str, Any]) -> Pipeline:
        """The end-to-end net, trained on the ``m`` canvases and their labels only."""
        stage = ModelStage(
            "end-to-end",
            self.end_to_end,
            reads=("canvas",),
            writes="label",
            num_classes=10,
            **self._train_args(run_dir, f"m{m}_end_to_end"),
        )
        return Pipeline([stage]).fit(examples)

    def _classify(self, run_dir: Path, m: int, examples: dict[str, Any]) -> ModelStage:
        """The pipeline's digit classifier, trained on the clean digits of the ``m`` canvases."""
        classify = ModelStage(
            "classify",
            self.classifier,
            reads=("digit",),
            writes="label",
            num_classes=10,
            **self._train_args(run_dir, f"m{m}_classify"),
        )
        classify.fit([examples["digit"]], examples["label"])
        return classify

    def _localizer(self, kind: LocalizerName, run_dir: Path, m: int) -> Stage:
        if kind == "template":
            return TemplateLocalizer(tolerance=self.tolerance)
        return LearnedLocalizer(
            self.task.canvas_size,
            self.localizer,
            tolerance=self.tolerance,
            **self._train_args(run_dir, f"m{m}_localize"),
        )

    # ------------------------------------------------------------------------------- running
    def run(self, run_dir: Path, console: Console) -> dict[str, Any]:
        """Train and score every approach at every size; write the run folder's files."""
        started, cpu_started = time.perf_counter(), time.process_time()
        train, test = self.task.generate(self.seed)
        test_examples = _examples(test)
        keys = ["end_to_end", *(f"pipeline_{k}" for k in self.localizers)]
        errors: dict[str, list[float]] = {k: [] for k in keys}
        ceilings: dict[str, list[CeilingAnalysis]] = {k: [] for k in keys[1:]}
        seconds: dict[str, list[float]] = {k: [] for k in keys}
        for m in self.train_sizes:
            examples = _examples(train.subset(slice(0, m)))
            t0 = time.perf_counter()
            e2e = self._end_to_end(run_dir, m, examples)
            errors["end_to_end"].append(e2e.error(test_examples))
            seconds["end_to_end"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            classify = self._classify(run_dir, m, examples)
            classify_seconds = time.perf_counter() - t0
            for kind in self.localizers:
                t0 = time.perf_counter()
                localize = self._localizer(kind, run_dir, m)
                localize.fit([examples["canvas"]], examples["position"])
                pipe = Pipeline([localize, crop_stage(), classify])
                analysis = ceiling_analysis(pipe, test_examples)
                key = f"pipeline_{kind}"
                ceilings[key].append(analysis)
                errors[key].append(analysis.system_error)
                seconds[key].append(classify_seconds + time.perf_counter() - t0)
            console.print(
                f"m={m:>6}: " + ", ".join(f"{_LABELS[k]} {pct(errors[k][-1], 1)}" for k in keys),
                highlight=False,
            )
        return write_study(
            run_dir,
            console,
            study=self,
            errors={_LABELS[k]: v for k, v in errors.items()},
            ceilings={_LABELS[k]: v for k, v in ceilings.items()},
            seconds={_LABELS[k]: [round(s, 2) for s in v] for k, v in seconds.items()},
            test_size=len(test),
            total_seconds=time.perf_counter() - started,
            cpu_seconds=time.process_time() - cpu_started,
        )


def _examples(canvases: Canvases) -> dict[str, Any]:
    return as_examples(
        canvas=canvases.canvas,
        position=canvases.position,
        digit=canvases.digit,
        label=canvases.label,
    )
