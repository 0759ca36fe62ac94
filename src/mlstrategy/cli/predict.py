"""``mlstrategy predict RUN_DIR [INPUT] [--output FILE]``: a finished run's model on new data."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

PREDICT_HELP = """\
Predict with a finished run's model and write one CSV row per example.

RUN_DIR is a run folder that `mlstrategy run` wrote (logs/<recipe>/<timestamp>), or a
recipe's folder (logs/<recipe>) for its latest finished run. The model comes from its best
checkpoint, with the input normalization fit on its train split and the class names of its
training data. INPUT is one of:

  data.csv     the training feature columns, by name and in the training order (other
               columns may be anywhere and are ignored; an `id` column names the rows). A
               missing or misplaced column is named. When the training label column is there
               too, each row also gets its true label and whether the prediction was right.
  data.npz     the features array (X, or the name the run's ArrayFile used), shaped like the
               training inputs; labels (y) are optional.
  FOLDER/      images, for a run on an image folder (images kept in class folders count as
               labelled).
  (nothing)    the run's own test split.

The CSV has: id, predicted (the class name), p_<class> for every class, and, with labels,
true and correct. A multi-task run gets one such group per task (columns <task>_predicted,
<task>_p_<class>, ...). It goes to the run folder (predictions.csv for the test split,
predictions_<INPUT name>.csv for INPUT) unless --output names a file, or a folder for
that name.

`mlstrategy predict --config RECIPE --ckpt_path CHECKPOINT` is LightningCLI's predict verb
(options first), unchanged.

examples:
  mlstrategy predict logs/quickstart
  mlstrategy predict logs/my_csv/20250101-120000 new_rows.csv --output predictions.csv
"""

_SHOWN_ROWS = 5


def main(argv: list[str], console: Console) -> int:
    """Predict with the run folder named on the command line; print where the CSV went."""
    from mlstrategy.run_folder import shown
    from mlstrategy.runs.predict import predict_run

    parser = argparse.ArgumentParser(
        prog="mlstrategy predict",
        description=PREDICT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a recipe's folder")
    parser.add_argument(
        "input", metavar="INPUT", nargs="?", help="a .csv, an .npz or an image folder"
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="where the CSV goes: a file in an existing folder, or an existing folder (the CSV "
        "gets its default name there)",
    )
    args = parser.parse_args(argv)
    result = predict_run(args.run_dir, args.input, args.output)
    # Plain text: an input's name or a class may hold "[...]".
    table = Table(*map(escape, result.header[:8]), title=f"first rows of {len(result.rows)}")
    for row in result.rows[:_SHOWN_ROWS]:
        table.add_row(*(escape(str(cell)) for cell in row[:8]))
    console.print(table)
    console.print(f"{len(result.rows)} predictions written to {shown(result.path)}", markup=False)
    return 0
