"""``mlstrategy errors RUN_DIR``: the error-analysis sheet, its contact sheet, and the tag table.

:func:`write_error_sheet` writes ``errors.csv`` into the run folder: every misclassified dev
example, worst (highest loss) first, with its dev index, true and predicted class, ``p_true``,
``loss``, the input it came from (``input``: the image file, the CSV line, or the row of the
data source, named by :func:`~mlstrategy.runs.trained_run.input_identities`) and a ``tags``
column to fill in. In-memory data and image folders are read alike, through
:class:`~mlstrategy.data.protocol.EvaluationData`; a contact-sheet cell of an image file also
names the file. Written again, the sheet keeps the tags already filled in (matched by task,
dev index and input). For images and signals it also draws the highest-loss ones in
``errors.png``. The per-example losses come from
:func:`~mlstrategy.evaluation.error_analysis.analyze_errors`, the same analysis the run report
lists, over the whole dev split.

:func:`tag_report` reads the sheet back once tagged and computes the course's table (see
:mod:`mlstrategy.evaluation.error_tags`), which also goes into ``report.md`` and TensorBoard.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstrategy.data.protocol import evaluation_data
from mlstrategy.data.sources import read_csv_table
from mlstrategy.evaluation.error_analysis import analyze_errors
from mlstrategy.evaluation.error_tags import TagTable, parse_tags, tag_table
from mlstrategy.evaluation.scoring import is_regressor
from mlstrategy.io import write_text_atomic
from mlstrategy.reporting.contact_sheet import SheetCell, contact_sheet_figure
from mlstrategy.run_folder import (
    ERRORS_FIGURE,
    ERRORS_FILE,
    REPORT_FILE,
    find_run,
    is_finished,
    load_metrics,
    shown,
)
from mlstrategy.runs.trained_run import (
    LoadedRun,
    input_identities,
    keep_filled,
    load_run,
    run_datamodule,
)

SHEET_COLUMNS = ["index", "input", "true", "predicted", "p_true", "loss", "tags"]
FIGURE_EXAMPLES = 36  # the highest-loss errors drawn: 6 x 6 cells of about 250 px


@dataclass
class ErrorSheet:
    """What ``errors`` wrote.

    Attributes:
        path: ``errors.csv``.
        figure: ``errors.png``, or None (flat features have no picture).
        rows: The sheet's rows, as written.
        n_dev: Dev examples.
        kept_tags: Tags of an earlier sheet carried over into this one.
    """

    path: Path
    figure: Path | None
    rows: list[dict[str, Any]]
    n_dev: int
    kept_tags: int = 0


def write_error_sheet(run_path: str | Path, top: int = FIGURE_EXAMPLES) -> ErrorSheet:
    """Write ``errors.csv`` (and ``errors.png`` for images and signals) into the run folder.

    Args:
        run_path: A run folder, or a recipe's folder (its latest finished run).
        top: How many of the highest-loss errors ``errors.png`` draws.

    Raises:
        ValueError: no dev split, or an ``errors.csv`` already there whose filled tags
            cannot all be carried over (nothing is written then).
    """
    run = load_run(run_path)
    if is_regressor(run.model):
        raise ValueError(
            f"`mlstrategy errors` sorts a classifier's misclassified dev examples; {run.run_dir} "
            "is a regression, whose errors are residuals: see residuals.png and "
            "predicted_vs_true.png in its report, or `mlstrategy predict` for every residual."
        )
    datamodule, analysis, n_dev = _dev_analysis(run)
    per_task = analysis.get("tasks")
    inputs = input_identities(datamodule, "dev")
    rows = [r for r in _dev_rows(analysis) if r["true"] != r["predicted"]]
    for row in rows:
        row["input"] = row.get("file") or inputs[row["index"]]
    rows.sort(key=lambda r: -r["loss"])  # stable: a multi-task sheet mixes its tasks by loss
    columns = (["task"] if per_task is not None else []) + SHEET_COLUMNS
    path = run.run_dir / ERRORS_FILE
    kept = keep_filled(path, rows, "tags", ["task", "index"], f"mlstrategy errors {run.run_dir}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[r.get(c, "") for c in columns] for r in rows])
    write_text_atomic(path, buffer.getvalue())
    figure = _draw(run, datamodule, analysis, rows[:top])
    return ErrorSheet(path, figure, rows, n_dev, kept)


def _dev_analysis(run: LoadedRun) -> tuple[Any, dict[str, Any], int]:
    """The run's data module, its analysis of every dev example, and the dev size."""
    datamodule = run_datamodule(run)
    splits = run.metrics["splits"]
    if "dev" not in splits:
        raise ValueError(f"The run {run.run_dir} has no dev split to analyse.")
    n_dev = int(splits["dev"]["n"])
    return datamodule, analyze_errors(run.model, datamodule, splits, k=n_dev), n_dev


def _dev_rows(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per dev example (per task for a multi-task run): index, true, predicted, ..."""
    per_task = analysis.get("tasks")
    found = per_task if per_task is not None else {"": analysis}
    return [
        {**({"task": task} if task else {}), **w}
        for task, result in found.items()
        for w in result.get("highest_loss") or []
    ]


def _draw(
    run: LoadedRun, datamodule: Any, analysis: dict[str, Any], rows: list[dict[str, Any]]
) -> Path | None:
    """``errors.png``: the highest-loss errors as pictures, when the examples are pictures."""
    from mlstrategy.reporting.plots import save_figure

    if not rows:
        return None
    if "highest_loss_x" in analysis:
        order = {w["index"]: k for k, w in enumerate(analysis["highest_loss"])}
        x = analysis["highest_loss_x"][[order[r["index"]] for r in rows]]
    else:
        data = evaluation_data(datamodule)
        if data is None:
            return None
        x = data.split_examples("dev", [r["index"] for r in rows]).numpy()
    x = _as_picture(x, datamodule)
    cells = [
        SheetCell(
            r["index"],
            f"{r['task']}={r['true']}" if "task" in r else r["true"],
            r["predicted"],
            r["p_true"],
            _file_name(r.get("file")),
        )
        for r in rows
    ]
    title = f"{run.run_dir}: the {len(rows)} misclassified dev examples with the highest loss"
    fig = contact_sheet_figure(x, cells, title=title)
    if fig is None:
        return None
    return save_figure(fig, run.run_dir / ERRORS_FIGURE)


def _file_name(file: str | None) -> str | None:
    """An image file as its cell names it: its class folder and its name (``cat/0042.jpg``)."""
    if not file:
        return None
    path = Path(file)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _as_picture(x: np.ndarray, datamodule: Any) -> np.ndarray:
    """Flat features of a known picture source drawn as one: 8x8 digits, MNIST-1D signals."""
    if x.ndim != 2:
        return x
    name = type(getattr(datamodule, "source", None)).__name__
    side = math.isqrt(x.shape[1])
    if name == "Digits" and side * side == x.shape[1]:
        return x.reshape(len(x), 1, side, side)
    if name == "MNIST1D":
        return x[:, None, :]
    return x


# --------------------------------------------------------------------------------- the tags
def tag_report(run_path: str | Path, sheet: str | Path) -> list[TagTable]:
    """The ceiling table of a tagged sheet, written into ``report.md`` and TensorBoard.

    Args:
        run_path: The run the sheet is of.
        sheet: The tagged ``errors.csv``.

    Returns:
        One table, or one per task for a multi-task run's sheet.

    Raises:
        ValueError: no such run, or a sheet without a ``tags`` column or without any tag.
    """
    from torch.utils.tensorboard import SummaryWriter

    from mlstrategy.reporting.error_tags import write_tag_report

    run_dir = find_run(run_path)
    dev = load_metrics(run_dir)["splits"].get("dev")
    if not dev:
        raise ValueError(f"The run {run_dir} has no dev split; its errors cannot be tagged.")
    path = Path(sheet).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Tags file {str(path)!r} does not exist. Write the sheet with `mlstrategy errors "
            f"{run_dir}` (it goes to {run_dir / ERRORS_FILE}), fill in its tags column, and "
            "give it."
        )
    table = read_csv_table(path)
    table.require(
        ["tags"],
        f"Give the {ERRORS_FILE} that `mlstrategy errors RUN_DIR` wrote, with its tags column "
        "filled in (several tags per row separated by ';').",
    )
    col = table.header.index("tags")
    task_col = table.header.index("task") if "task" in table.header else None
    groups: dict[str | None, list[list[str]]] = {}
    for row in table.rows:
        task = row[task_col].strip() if task_col is not None else None
        groups.setdefault(task, []).append(parse_tags(row[col]))
    tagged = {task: tags for task, tags in groups.items() if any(tags)} or groups
    tables = []
    for task, tags in tagged.items():  # tag_table refuses a sheet without any tag
        scores = dev if task is None else (dev.get("tasks") or {}).get(task)
        if not scores or not scores.get("confusion_matrix"):
            raise ValueError(
                f"{path}: the run {run_dir} has no dev confusion matrix for "
                f"{f'task {task!r}' if task else 'its dev split'}; is it this run's sheet?"
            )
        cm = np.asarray(scores["confusion_matrix"])
        tables.append(tag_table(tags, int(cm.sum() - np.trace(cm)), int(cm.sum()), task))
    _check_sheet_of_run(path, table, run_dir)
    writer = SummaryWriter(log_dir=str(run_dir))
    try:
        write_tag_report(run_dir / REPORT_FILE, tables, writer)
    finally:
        writer.close()
    return tables


_IDENTITY = ("task", "index", "true", "predicted")


def _identity(row: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
    """``((task, dev index), (true, predicted))`` of a sheet's row or an analysed example, as
    the sheet writes them ("" for the task of a single-task run).

    Example:
        >>> _identity({"index": 7, "true": 3, "predicted": 8})
        (('', '7'), ('3', '8'))
    """
    task, index, true, predicted = (str(row.get(k, "")).strip() for k in _IDENTITY)
    return (task, index), (true, predicted)


def _sheet_rows(table: Any) -> list[dict[str, str]]:
    return [dict(zip(table.header, r, strict=True)) for r in table.rows]


def _run_errors(run_dir: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """``(task, dev index) -> (true, predicted)``: every dev error in the run's own sheet when
    it has one (no model or data loaded), else every dev example the run's model scores."""
    own = run_dir / ERRORS_FILE
    if own.is_file():
        rows: list[dict[str, Any]] = _sheet_rows(read_csv_table(own))
    else:
        rows = _dev_rows(_dev_analysis(load_run(run_dir))[1])
    return dict(_identity(r) for r in rows)


def _check_sheet_of_run(path: Path, table: Any, run_dir: Path) -> None:
    """Refuse a sheet whose tagged rows are not this run's dev errors.

    A recipe's folder names its latest run, which may be a newer run than the one whose sheet
    was tagged: that run errs on other examples, so the tags would count the wrong errors.
    Each tagged row's dev index, true and predicted class must be one of this run's errors.
    """
    tagged = [r for r in _sheet_rows(table) if parse_tags(r["tags"])]
    fix = (
        f"Give the {ERRORS_FILE} that `mlstrategy errors {run_dir}` wrote, with its tags "
        "column filled in."
    )
    table.require(["index", "true", "predicted"], fix)
    own = run_dir / ERRORS_FILE
    if path.resolve() == own.resolve():
        return  # the run's own sheet (a rewrite keeps only tags whose rows are still there)
    errors = _run_errors(run_dir)
    wrong: list[str] = []
    for r in tagged:
        (task, index), given = _identity(r)
        found = errors.get((task, index))
        if found == given and given[0] != given[1]:
            continue
        where = f"task {task} " if task else ""
        if found is None:
            wrong.append(f"{where}dev index {index}: not one of this run's dev errors")
        elif found[0] == found[1]:
            wrong.append(
                f"{where}dev index {index}: the sheet says {given[1]} for {given[0]}, this run "
                f"classifies it correctly"
            )
        else:
            wrong.append(
                f"{where}dev index {index}: the sheet says true {given[0]}, predicted "
                f"{given[1]}; this run: true {found[0]}, predicted {found[1]}"
            )
    if not wrong:
        return
    sheet_run = path.resolve().parent
    if is_finished(sheet_run) and sheet_run != run_dir.resolve():
        origin = f"It is the sheet of the run {shown(sheet_run)}, the folder it is in."
        other = f"`mlstrategy errors {shown(sheet_run)} --tags {path}`"
    else:
        origin = "It was written for another run (or the run was trained again)."
        other = f"`mlstrategy errors RUN_DIR --tags {path}` with the run it was written for"
    raise ValueError(
        f"{path} is not a sheet of the run {shown(run_dir)}: {len(wrong)} of its "
        f"{len(tagged)} tagged rows are not that run's dev errors (e.g. "
        f"{'; '.join(wrong[:3])}). {origin} Tag the sheet of the run you analyse "
        f"(`mlstrategy errors {shown(run_dir)}` writes it to "
        f"{shown(run_dir / ERRORS_FILE)}), or give the sheet's own run: {other}. Nothing was "
        "written."
    )
