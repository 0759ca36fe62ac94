"""A battery of bad inputs, each through the real console script in a fresh interpreter.

Each case is something a new user mistypes or an attacker crafts. The standard for every one:
exit 2 for bad input (1 for a failure at run time), one short error paragraph that names the
problem, no traceback, no module outside the allowlist imported (a trap module ``evil`` sits
on the path and leaves a file behind if anything imports it; the read-only verbs import no
torch at all), and a finished run folder already on disk left byte for byte as it was.

Every case runs in its own copy of one working directory: a tiny recipe, one real finished
run of it and the trap. The cases run two at a time (most of each is the ~5 s import of torch
and Lightning), only those pytest selected. ``MLSTRATEGY_DEBUG`` is taken out of their
environment, so a traceback seen is the tool's own.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import TINY_RECIPE

pytestmark = pytest.mark.slow

TINY = TINY_RECIPE
RUN = "{run}"  # in a command or a phrase: the finished run, logs/tiny/<timestamp>
TRAP = '''\
"""Anything that imports this module leaves EVIL_IMPORTED behind."""
from pathlib import Path

Path(__file__).with_name("EVIL_IMPORTED").write_text("imported")


class Payload:
    pass
'''
# Records the top-level modules a run imported, for the check on the read-only verbs.
HOOK = """\
import atexit, json, os, sys

def _dump():
    with open(os.environ["MLSTRATEGY_TEST_IMPORTS"], "w") as f:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), f)

if os.environ.get("MLSTRATEGY_TEST_IMPORTS"):
    atexit.register(_dump)
"""


def _recipe(**sections: object) -> str:
    """The tiny recipe with some sections replaced, as YAML."""
    return yaml.safe_dump({**TINY, **sections})


def _data(source: dict) -> dict:
    return {"data": {**TINY["data"], "init_args": {"source": source, "batch_size": None}}}


def _csv(rows: int = 60, *, bad_row: int | None = None, one_class: bool = False) -> str:
    """A real two-feature CSV; ``bad_row`` gets the word 'high' in a feature cell."""
    lines = ["a,b,label"]
    for i in range(rows):
        a = "high" if i == bad_row else f"{i * 0.1:.2f}"
        lines.append(f"{a},{(i % 7) * 0.3:.2f},{0 if one_class else i % 2}")
    return "\n".join(lines) + "\n"


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _png(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGE_RECIPE = _recipe(
    model={"class_path": "mlstrategy.models.ConvNet"},
    data={
        "class_path": "mlstrategy.data.ImageFolderDataModule",
        "init_args": {"root": "imgs", "image_size": 8, "num_workers": 0},
    },
)


class _ImportsEvil:
    """Pickled, this object is a call: ``importlib.import_module("evil")`` on loading."""

    def __reduce__(self) -> tuple:
        return (importlib.import_module, ("evil",))


def _checkpoint(content: dict) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    """One bad input: the command, the files it needs, and what the answer must say."""

    name: str
    argv: tuple[str, ...]
    says: tuple[str, ...]  # each must appear in the error paragraph
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    exit: int = 2
    env: Mapping[str, str] = field(default_factory=dict)


def _source(init_args: dict) -> dict:
    return _data({"class_path": "mlstrategy.data.ArrayFile", "init_args": init_args})


ARRAY_FILE_CSV = _source({"path": "d.csv", "target": "label"})
CASES = [
    # ------------------------------------------------------------------ recipes and options
    Case("folder_without_recipes", ("run", "empty"), ("'empty'", "no *.yaml recipes"),
         {"empty/notes.txt": "my notes\n"}),
    Case("yaml_syntax_error", ("run", "bad.yaml"), ("bad.yaml", "line 2"),
         {"bad.yaml": "model: [\n"}),
    Case("learning_rate_is_a_word", ("run", "bad.yaml"), ("learning_rate", "fast"),
         {"bad.yaml": _recipe(model={**TINY["model"], "init_args": {"learning_rate": "fast"}})}),
    Case("misspelt_dotted_override", ("run", "tiny.yaml", "--model.init_args.learning_rat=0.1"),
         ("learning_rat",)),
    Case("override_without_value", ("run", "tiny.yaml", "--trainer.max_epochs"),
         ("--trainer.max_epochs",)),
    Case("negative_max_epochs", ("run", "tiny.yaml", "--trainer.max_epochs=-3"),
         ("max_epochs", "-3")),
    Case("satisfy_names_unknown_metric", ("run", "bad.yaml"), ("dev/speed",),
         {"bad.yaml": _recipe(evaluation={"satisfy": ["dev/speed<=5"]})}),
    Case("test_without_ckpt_path", ("test", "--config", "tiny.yaml"), ("--ckpt_path",)),
    Case("csv_word_in_feature_column", ("run", "bad.yaml"),
         ("d.csv line 8, column 'a'", "'high' is not a number"),
         {"d.csv": _csv(bad_row=6), "bad.yaml": _recipe(**ARRAY_FILE_CSV)}),
    Case("csv_target_has_one_class", ("run", "bad.yaml"), ("d.csv", "one class"),
         {"d.csv": _csv(one_class=True), "bad.yaml": _recipe(**ARRAY_FILE_CSV)}),
    Case("npz_without_y", ("run", "bad.yaml"), ("no array named 'y'", "['X', 'label']"),
         {"d.npz": _npz(X=np.zeros((40, 2)), label=np.arange(40) % 2),
          "bad.yaml": _recipe(**_source({"path": "d.npz"}))}),
    Case("npz_with_a_pickled_payload", ("run", "bad.yaml"), ("d.npz", "dtype=object"),
         {"d.npz": _npz(X=np.array([_ImportsEvil()] * 40, dtype=object), y=np.arange(40) % 2),
          "bad.yaml": _recipe(**_source({"path": "d.npz"}))}),
    Case("image_folder_with_no_classes", ("run", "bad.yaml"), ("imgs", "0 class folder(s)"),
         {"imgs/.keep": "", "bad.yaml": IMAGE_RECIPE}),
    Case("image_class_folder_with_no_images", ("run", "bad.yaml"),
         ("imgs: the class folder(s) ['dog'] hold no images", "every class needs"),
         {**{f"imgs/cat/{i}.png": _png(i) for i in range(6)}, "imgs/dog/notes.txt": "todo",
          "bad.yaml": IMAGE_RECIPE}),
    # ------------------------------------------------------------------------------ attacks
    Case("foreign_class_in_a_file_an_option_names", ("run", "tiny.yaml", "--data=other.yaml"),
         ("other.yaml", "evil.Payload", "--allow-module evil"),
         {"other.yaml": "class_path: evil.Payload\n"}),
    Case("foreign_class_in_a_dotted_override",
         ("run", "tiny.yaml", "--data.init_args.source.class_path=evil.Payload"),
         ("--data.init_args.source.class_path=evil.Payload", "--allow-module evil")),
    Case("checkpoint_with_a_pickled_payload",
         ("test", "--config", "tiny.yaml", "--ckpt_path", "model.ckpt"), ("model.ckpt",),
         {"model.ckpt": _checkpoint({"state_dict": {}, "extra": _ImportsEvil()})}),
    # ------------------------------------------------------------------ failure at run time
    Case("learning_rate_so_large_the_cost_is_nan",
         ("run", "tiny.yaml", "--model=DeepNet", "--model.init_args.optimizer=gd",
          "--model.init_args.learning_rate=1e30", "--data.init_args.normalize=false",
          "--trainer.max_epochs=3"), ("nan", "a learning rate too high"), exit=1),
    # ------------------------------------------------------------------ the other verbs
    Case("resume_a_folder_without_checkpoint", ("run", "tiny.yaml", "--resume", "logs/tiny/x"),
         ("no checkpoints/last.ckpt",), {"logs/tiny/x/config.yaml": _recipe()}),
    Case("learning_curve_size_zero", ("learning-curve", "tiny.yaml", "--sizes", "0,2"),
         ("--sizes '0,2'", "(0, 1]")),
    Case("unknown_verb", ("trian", "tiny.yaml"), ("'trian'", "run")),
    Case("diagnose_missing_folder", ("diagnose", "nope"), ("'nope' does not exist",)),
    Case("diagnose_a_file", ("diagnose", "tiny.yaml"), ("'tiny.yaml' is a file",)),
    Case("diagnose_unfinished_run", ("diagnose", "logs/tiny/x"), ("no metrics.json",),
         {"logs/tiny/x/config.yaml": _recipe()}),
    Case("diagnose_metrics_not_json", ("diagnose", "logs/tiny/x"), ("not valid JSON",),
         {"logs/tiny/x/metrics.json": '{"splits": {'}),
    Case("diagnose_metrics_a_json_list", ("diagnose", "logs/tiny/x"), ("metrics.json",),
         {"logs/tiny/x/metrics.json": "[1, 2]"}),
    Case("diagnose_metrics_splits_not_a_dict", ("diagnose", "logs/tiny/x"),
         ("metrics.json", "splits"), {"logs/tiny/x/metrics.json": '{"splits": "dev"}'}),
    Case("diagnose_metrics_row_without_n", ("diagnose", "logs/tiny/x"), ("metrics.json", "'n'"),
         {"logs/tiny/x/metrics.json": '{"splits": {"dev": {"error": 0.1}}}'}),
    Case("diagnose_metrics_error_not_a_number", ("diagnose", "logs/tiny/x"),
         ("metrics.json", "error"),
         {"logs/tiny/x/metrics.json": '{"splits": {"dev": {"error": "low", "n": 3}}}'}),
    Case("compare_unknown_metric", ("compare", "logs", "--optimize", "dev/fun"),
         ("'dev/fun'", "dev/f1")),
    Case("compare_malformed_constraint", ("compare", "logs", "--satisfy", "latency<<5"),
         ("'latency<<5'", "METRIC OP NUMBER")),
    Case("compare_no_runs", ("compare", "empty"), ("'empty'", "no finished run"),
         {"empty/notes.txt": ""}),
]  # fmt: skip


@dataclass
class Outcome:
    """What one case left: the exit code, both streams, and what it imported and changed."""

    run: str
    returncode: int
    stdout: str
    stderr: str
    imported: list[str] | None  # None: the interpreter did not exit normally
    trap_fired: bool
    run_changed: list[str]
    seconds: float


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _exe() -> str:
    return str(Path(sys.executable).with_name("mlstrategy"))


def _env(extra: Mapping[str, str], paths: list[Path], imports: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLSTRATEGY_DEBUG"}
    env.update(
        PYTHONPATH=os.pathsep.join(str(p) for p in paths),
        MLSTRATEGY_TEST_IMPORTS=str(imports),
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def _workdir(root: Path) -> Path:
    """The directory every case starts from: the recipe, a finished run of it, the trap."""
    base = root / "base"
    (base / "hooks").mkdir(parents=True)
    (base / "hooks" / "sitecustomize.py").write_text(HOOK)
    (base / "tiny.yaml").write_text(_recipe())
    done = subprocess.run(
        [_exe(), "run", "tiny.yaml"],
        cwd=base,
        env=_env({}, [], base / "imports.json"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (base / "imports.json").unlink(missing_ok=True)
    (base / "evil.py").write_text(TRAP)
    return base


def _finished_run(base: Path) -> str:
    (run,) = (base / "logs" / "tiny").iterdir()
    return str(run.relative_to(base))


def _run_case(case: Case, base: Path, root: Path, before: dict[str, str]) -> Outcome:
    run = _finished_run(base)
    cwd = root / case.name
    shutil.copytree(base, cwd)
    for rel, content in case.files.items():
        path = cwd / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    imports = root / f"{case.name}.imports.json"
    start = time.perf_counter()
    result = subprocess.run(
        [_exe(), *(arg.format(run=run) for arg in case.argv)],
        cwd=cwd,
        env=_env(case.env, [base / "hooks", cwd], imports),
        capture_output=True,
        text=True,
        timeout=300,
    )
    after = _digests(cwd / run)
    return Outcome(
        run=run,
        returncode=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
        imported=json.loads(imports.read_text()) if imports.is_file() else None,
        trap_fired=(cwd / "EVIL_IMPORTED").exists(),
        run_changed=sorted(k for k in before if before[k] != after.get(k)),
        seconds=time.perf_counter() - start,
    )


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Run every case pytest selected from this file, two at a time: ``{name: Outcome}``."""
    here = Path(__file__)
    wanted = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.path == here and hasattr(item, "callspec") and "case" in item.callspec.params
    ]
    root = tmp_path_factory.mktemp("bad_inputs")
    base = _workdir(root)
    before = _digests(base / _finished_run(base))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.name: pool.submit(_run_case, c, base, root, before) for c in wanted}
        done = {name: future.result() for name, future in futures.items()}
    assert _digests(base / _finished_run(base)) == before, "a case wrote into the original run"
    return done


def _error_paragraph(stderr: str, prefix: str) -> str:
    """The one error paragraph: from the line starting with ``prefix`` to the end."""
    lines = stderr.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(starts) == 1, f"expected one {prefix!r} line:\n{stderr}"
    paragraph = lines[starts[0] :]
    assert len(paragraph) <= 4, f"the error runs on for {len(paragraph)} lines:\n{stderr}"
    return " ".join(line.strip() for line in paragraph)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_bad_input_is_refused_in_one_paragraph_that_names_it(case: Case, outcomes) -> None:
    out = outcomes[case.name]
    text = out.stdout + out.stderr
    assert out.returncode == case.exit, f"exit {out.returncode}, not {case.exit}:\n{text}"
    assert "Traceback" not in text, text
    assert "usage:" not in text, text
    prefix = "error:" if case.exit == 2 else "training stopped:"
    paragraph = _error_paragraph(out.stderr, prefix)
    for phrase in case.says:
        phrase = phrase.format(run=out.run)
        assert phrase in paragraph, f"{phrase!r} not in: {paragraph}"
    assert out.imported is not None, "the import hook recorded nothing"
    assert not out.trap_fired and "evil" not in out.imported
    if case.argv[0] in ("diagnose", "compare", "trian"):
        assert "torch" not in out.imported, "a read-only verb imported torch"
    assert out.run_changed == [], f"the finished run lost or changed {out.run_changed}"
