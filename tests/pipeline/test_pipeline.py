"""Pipelines and stages: composition, training on intermediate labels, scoring by parts."""

from __future__ import annotations

import pytest
import torch

from mlstrategy.pipeline import FixedStage, ModelStage, Pipeline, Stage


class _Memorize(Stage):
    """Learns a lookup table from its training pairs (to see what fit is given)."""

    def __init__(self) -> None:
        super().__init__("memorize", reads=["a"], writes="b")
        self.seen: tuple[torch.Tensor, torch.Tensor] | None = None

    def fit(self, inputs, target) -> None:
        self.seen = (inputs[0].clone(), target.clone())

    def predict(self, a: torch.Tensor) -> torch.Tensor:
        return a * 10


def test_fit_gives_each_stage_ground_truth_inputs_and_its_own_labels() -> None:
    noisy = FixedStage("noisy", lambda x: x + 100, reads=["x"], writes="a")  # always wrong
    memorize = _Memorize()
    examples = {"x": torch.arange(4), "a": torch.tensor([5, 6, 7, 8]), "b": torch.arange(4)}
    Pipeline([noisy, memorize]).fit(examples)
    assert memorize.seen is not None
    # Trained on the ground-truth a, not on noisy's predictions (x + 100).
    assert memorize.seen[0].tolist() == [5, 6, 7, 8]
    assert memorize.seen[1].tolist() == [0, 1, 2, 3]


def test_run_composes_stages_and_perfect_stages_read_the_ground_truth() -> None:
    add = FixedStage("add", lambda a, b: a + b, reads=["a", "b"], writes="s")
    square = FixedStage("square", lambda s: s * s, reads=["s"], writes="out")
    pipe = Pipeline([add, square])
    examples = {"a": torch.tensor([1, 2]), "b": torch.tensor([3, 4]), "s": torch.tensor([0, 1])}
    assert pipe.inputs == ("a", "b") and pipe.output == "out"
    assert pipe.run(examples)["out"].tolist() == [16, 36]
    assert pipe.run(examples, perfect=["add"])["out"].tolist() == [0, 1]


def test_error_and_stage_errors_on_known_mistakes() -> None:
    # "detect" is wrong on x % 5 == 0 (4 of 20); "read" on a % 4 == 1 (5 of 20).
    detect = FixedStage("detect", lambda x: torch.where(x % 5 == 0, -1, x), ["x"], "a")
    read = FixedStage("read", lambda a: torch.where(a % 4 == 1, -2, 10 * a), ["a"], "b")
    x = torch.arange(20)
    examples = {"x": x, "a": x, "b": 10 * x}
    pipe = Pipeline([detect, read])
    assert pipe.stage_errors(examples) == {"detect": 0.2, "read": 0.25}
    # Union of {0, 5, 10, 15} and {1, 5, 9, 13, 17}: 8 of 20.
    assert pipe.error(examples) == pytest.approx(0.4)


def test_model_stage_trains_a_classifier_on_its_labels() -> None:
    from mlstrategy.models import SoftmaxRegression

    generator = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 4.0], [4.0, 0.0], [-4.0, -4.0]])
    y = torch.arange(3).repeat(40)
    x = centers[y] + torch.randn(len(y), 2, generator=generator)
    stage = ModelStage(
        "blobs",
        lambda shape, k: SoftmaxRegression(shape, k, learning_rate=0.1),
        reads=["x"],
        writes="y",
        num_classes=3,
        epochs=1,
        min_steps=60,
        batch_size=32,
    )
    assert stage.steps_for(120) == 60 and stage.steps_for(10_000) == 313
    stage.fit([x], y)
    assert (stage.predict(x) == y).float().mean() > 0.95
    assert stage.module is not None and not stage.module.training


@pytest.mark.parametrize("normalize", ["per_channel", "per_feature", "none"])
def test_model_stage_fits_input_normalization_on_its_training_inputs(normalize: str) -> None:
    from mlstrategy.models import ConvNet

    generator = torch.Generator().manual_seed(0)
    # Two channels with different scales; position (0, 0) of channel 0 is always 0.
    x = torch.rand(40, 2, 4, 4, generator=generator) * torch.tensor([1.0, 10.0])[:, None, None]
    x[:, 0, 0, 0] = 0
    y = torch.arange(40) % 2
    stage = ModelStage(
        "s",
        lambda shape, k: ConvNet(shape, k, channels=[2]),
        reads=["x"],
        writes="y",
        num_classes=2,
        epochs=1,
        min_steps=1,
        normalize=normalize,
    )
    stage.fit([x], y)
    assert stage.module is not None
    norm = stage.module.input_norm
    if normalize == "per_channel":
        expected_mean = x.mean(dim=(0, 2, 3))[:, None, None].expand(2, 4, 4)
        expected_std = x.std(dim=(0, 2, 3), correction=0)[:, None, None].expand(2, 4, 4)
    elif normalize == "per_feature":
        # The always-0 pixel keeps std 1 rather than dividing by 0.
        expected_mean = x.mean(dim=0)
        expected_std = x.std(dim=0, correction=0)
        expected_std[0, 0, 0] = 1.0
    else:
        expected_mean, expected_std = torch.zeros(2, 4, 4), torch.ones(2, 4, 4)
    torch.testing.assert_close(norm.mean, expected_mean)
    torch.testing.assert_close(norm.std, expected_std)


def test_model_stage_refuses_to_predict_untrained() -> None:
    stage = ModelStage("s", lambda shape, k: None, reads=["x"], writes="y", num_classes=2)
    with pytest.raises(RuntimeError, match="not trained"):
        stage.predict(torch.zeros(1, 2))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_classes": 1}, "num_classes=1"),
        ({"epochs": 0}, "epochs=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"min_steps": -1}, "min_steps=-1"),
        ({"reads": ["a", "b"]}, "exactly one"),
        ({"normalize": "global"}, "normalize='global'"),
    ],
)
def test_model_stage_bad_arguments(kwargs: dict, needle: str) -> None:
    args = {"name": "s", "model": None, "reads": ["x"], "writes": "y", "num_classes": 2}
    with pytest.raises(ValueError, match=needle):
        ModelStage(**{**args, **kwargs})


def _identity(name: str, reads: list[str], writes: str) -> FixedStage:
    return FixedStage(name, lambda *v: v[0], reads, writes)


@pytest.mark.parametrize(
    ("stages", "needle"),
    [
        ([], "at least one stage"),
        ([_identity("a", ["x"], "y"), _identity("a", ["y"], "z")], "repeated names"),
        ([_identity("a", ["x"], "y"), _identity("b", ["x"], "y")], "an earlier stage writes"),
        ([_identity("a", ["x"], "y"), _identity("b", ["y"], "x")], "is an input"),
    ],
)
def test_bad_pipelines_are_refused(stages: list[Stage], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Pipeline(stages)


def test_bad_stage_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="writes='x' is also in reads"):
        Stage("s", reads=["x"], writes="x")
    with pytest.raises(ValueError, match=r"reads=\(\)"):
        Stage("s", reads=[], writes="x")


def test_missing_values_and_unknown_stages_are_named() -> None:
    pipe = Pipeline([_identity("a", ["x"], "y")])
    with pytest.raises(ValueError, match=r"examples lack \['x'\]"):
        pipe.predict({"z": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"perfect=\['b'\]"):
        pipe.run({"x": torch.zeros(1)}, perfect=["b"])
    with pytest.raises(ValueError, match="name='b'"):
        pipe.stage("b")
    with pytest.raises(ValueError, match="no right/wrong reading"):
        pipe.error({"x": torch.zeros(2), "y": torch.zeros(2)})
