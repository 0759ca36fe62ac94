"""``mlstrategy errors RUN_DIR``: one sheet row per misclassified dev example (the run's own
confusion matrix says how many), traced back to the data source's row; the contact sheet; and
the tag table in the console, report.md and TensorBoard."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from sklearn.datasets import load_digits

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.data import ArrayDataModule, Digits
from mlstrategy.run_folder import find_run
from mlstrategy.runs.error_sheet import tag_report, write_error_sheet
from mlstrategy.runs.run import run_recipe

# Each module trains one small run (a few seconds) that its tests share.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """Softmax regression on 8x8 digit images (unflattened), 3 epochs: a few dozen errors."""
    root = tmp_path_factory.mktemp("digits")
    recipe = write_recipe(
        root / "digits.yaml",
        model={
            "class_path": "mlstrategy.models.SoftmaxRegression",
            "init_args": {"optimizer": "adam", "learning_rate": 0.01},
        },
        data={
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.Digits", "init_args": {"flatten": False}},
                "batch_size": 64,
            },
        },
    )
    quiet = Console(file=io.StringIO())
    return run_recipe([recipe], console=quiet, logs_dir=root / "logs").run_dir


@pytest.fixture(scope="module")
def sheet(digits_run):
    return write_error_sheet(digits_run)


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """The sheet again, with ``rows`` as edited (tags filled in, say)."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_one_row_per_misclassified_dev_example_as_the_confusion_matrix_counts(digits_run, sheet):
    cm = np.array(
        json.loads((digits_run / "metrics.json").read_text())["splits"]["dev"]["confusion_matrix"]
    )
    rows = _rows(digits_run / "errors.csv")
    assert len(rows) == cm.sum() - np.trace(cm) > 0
    assert list(rows[0]) == ["index", "input", "true", "predicted", "p_true", "loss", "tags"]
    # Per true class, as many rows as the confusion matrix's off-diagonal row sum.
    for k in range(10):
        assert sum(r["true"] == str(k) for r in rows) == cm[k].sum() - cm[k, k]
    assert all(r["true"] != r["predicted"] and r["tags"] == "" for r in rows)
    losses = [float(r["loss"]) for r in rows]
    assert losses == sorted(losses, reverse=True)
    for r in rows:  # loss = -log p(true), both rounded to 4 decimals
        assert float(r["loss"]) == pytest.approx(
            -math.log(float(r["p_true"])), abs=0.01 + 0.01 * float(r["loss"])
        )


def test_each_row_names_the_row_of_the_data_source_it_came_from(sheet):
    digits = load_digits()
    x_dev = ArrayDataModule(Digits(flatten=False)).prepare()["dev"][0].numpy()
    for r in _rows(sheet.path):
        source, row = r["input"].rsplit(" row ", 1)
        assert source == "Digits(flatten=False)"
        assert str(digits.target[int(row)]) == r["true"]
        np.testing.assert_array_equal(digits.images[int(row)], x_dev[int(r["index"]), 0])


def test_the_contact_sheet_draws_the_highest_loss_errors(sheet):
    assert sheet.figure is not None and sheet.figure.name == "errors.png"
    png = sheet.figure.read_bytes()
    assert png[:4] == b"\x89PNG"
    width = int.from_bytes(png[16:20], "big")
    assert width >= min(6, len(sheet.rows)) * 240  # about 250 px per example


def test_tags_give_the_ceiling_table_in_the_report_and_tensorboard(digits_run, sheet, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = _rows(sheet.path)
    for i, r in enumerate(rows):
        r["tags"] = (
            "blurry" if i % 2 == 0 else ("odd stroke;blurry" if i % 3 == 0 else "odd stroke")
        )
    tagged = tmp_path / "tagged.csv"
    _write_rows(tagged, rows)
    errors, n_dev = len(rows), sheet.n_dev
    blurry = sum("blurry" in r["tags"] for r in rows)
    (table,) = tag_report(digits_run, tagged)
    got = {r.tag: (r.count, r.ceiling) for r in table.rows}
    assert got["blurry"] == (blurry, pytest.approx((errors - blurry) / n_dev, abs=1e-6))
    odd = errors - sum(r["tags"] == "blurry" for r in rows)
    assert got["odd stroke"] == (odd, pytest.approx((errors - odd) / n_dev, abs=1e-6))

    tag_report(digits_run, tagged)  # again: the section is replaced, not doubled
    report = (digits_run / "report.md").read_text()
    assert report.count("## Error analysis by tag") == 1
    assert report.index("# Run report") == 0
    assert f"| blurry | {blurry} |" in report
    events = EventAccumulator(str(digits_run), size_guidance={"tensors": 0})
    events.Reload()
    assert "error_analysis/tags/text_summary" in events.Tags()["tensors"]
    ceiling = events.Scalars("error_tags/blurry/ceiling")[-1].value
    assert ceiling == pytest.approx((errors - blurry) / n_dev, abs=1e-6)


def test_bad_sheets_and_runs_get_one_paragraph_and_exit_2(digits_run, tmp_path, capsys):
    no_tags = tmp_path / "no_tags.csv"
    no_tags.write_text("index,true\n1,3\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['tags'\]"):
        tag_report(digits_run, no_tags)
    empty = tmp_path / "empty_tags.csv"
    empty.write_text("index,tags\n1,\n2,\n")
    with pytest.raises(ValueError, match="No row of the sheet has a tag"):
        tag_report(digits_run, empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tag_report(digits_run, tmp_path / "absent.csv")
    assert main(["errors", str(digits_run), "--tags", str(no_tags)]) == 2
    assert main(["errors", str(tmp_path / "nowhere")]) == 2
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "FAILED").write_text("ValueError: bad\n")
    assert main(["errors", str(failed)]) == 2
    assert "the run failed" in capsys.readouterr().err


def test_the_verb_prints_where_the_sheet_went(digits_run, capsys):
    assert main(["errors", str(digits_run)]) == 0
    out = capsys.readouterr().out.replace("\n", "")
    assert "errors.csv" in out and "errors.png" in out and "--tags" in out


def test_writing_the_sheet_again_keeps_the_tags_filled_in(digits_run, capsys):
    path = digits_run / "errors.csv"
    write_error_sheet(digits_run)
    rows = _rows(path)
    rows[0]["tags"], rows[-1]["tags"] = "blurry", "odd stroke;blurry"
    _write_rows(path, rows)
    again = write_error_sheet(digits_run)
    assert again.kept_tags == 2
    assert [r["tags"] for r in _rows(path)] == [r["tags"] for r in rows]
    assert main(["errors", str(digits_run)]) == 0  # the verb too
    assert [r["tags"] for r in _rows(path)] == [r["tags"] for r in rows]
    # A tagged row that is no longer this example (the data changed): refused, file kept.
    rows[0]["input"] = "Digits(flatten=False) row 99999"
    _write_rows(path, rows)
    before = path.read_text()
    capsys.readouterr()
    assert main(["errors", str(digits_run)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "would erase them" in err and "Copy or rename" in err and "Traceback" not in err
    assert path.read_text() == before
    path.unlink()


def test_a_sheet_of_another_run_of_the_recipe_is_refused_naming_both_runs(digits_run, capsys):
    # The README's form `errors logs/<recipe> --tags logs/<recipe>/<run>/errors.csv`, once the
    # recipe has a newer run (1 epoch: it errs on other examples): the folder names the newer
    # run, the sheet is the older one's.
    root = digits_run.parents[2]
    quiet = Console(file=io.StringIO())
    newer = run_recipe(
        [root / "digits.yaml"], ["--trainer.max_epochs=1"], console=quiet, logs_dir=root / "logs"
    ).run_dir
    assert find_run(digits_run.parent) == newer != digits_run
    path = write_error_sheet(digits_run).path
    rows = _rows(path)
    for r in rows:
        r["tags"] = "blurry"
    _write_rows(path, rows)
    newer_errors = {(r["index"], r["true"], r["predicted"]) for r in write_error_sheet(newer).rows}
    newer_errors = {tuple(map(str, e)) for e in newer_errors}
    wrong = [r for r in rows if (r["index"], r["true"], r["predicted"]) not in newer_errors]
    assert wrong  # the two runs err on different examples
    report = (newer / "report.md").read_text()
    events = sorted(newer.glob("events.out.tfevents.*"))
    capsys.readouterr()
    assert main(["errors", str(digits_run.parent), "--tags", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"is not a sheet of the run {newer}" in err.replace(" ", " ")
    assert f"{len(wrong)} of its {len(rows)} tagged rows" in err
    assert f"dev index {wrong[0]['index']}:" in err
    assert f"It is the sheet of the run {digits_run}" in err
    assert f"mlstrategy errors {digits_run} --tags {path}" in err
    assert "Traceback" not in err and "Nothing was written" in err
    assert (newer / "report.md").read_text() == report  # nothing written
    assert sorted(newer.glob("events.out.tfevents.*")) == events
    with pytest.raises(ValueError, match="is not a sheet of the run"):
        tag_report(newer, path)
    # The sheet with its own run, and the newer run's own sheet tagged, are read.
    assert main(["errors", str(digits_run), "--tags", str(path)]) == 0
    assert "| blurry |" in (digits_run / "report.md").read_text()
    own = newer / "errors.csv"
    own_rows = _rows(own)
    own_rows[0]["tags"] = "blurry"
    _write_rows(own, own_rows)
    (table,) = tag_report(digits_run.parent, own)
    assert table.examined == 1
    path.unlink()
    own.unlink()
