"""Render the READMEs' measured figures from benchmarks/figures.json.

Each figure a README quotes sits between two markers::

    <!-- figures: NAME -->
    ...rendered from figures.json by the template NAME below...
    <!-- /figures -->

`make figures` measures (benchmarks/figures.py) and then runs this script, which rewrites
those sections. `--check` rewrites nothing and exits 1 when a section differs from what the
file gives; the test suite runs that check, so no quoted figure can drift from its source.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "benchmarks" / "figures.json"
READMES = (REPO / "README.md", REPO / "benchmarks" / "README.md")
SECTION = re.compile(r"(<!-- figures: (\S+) -->\n)(.*?)(<!-- /figures -->)", re.DOTALL)

Figures = dict[str, Any]


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _pts(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}"


def _section(figures: Figures, name: str) -> Any:
    try:
        return figures["sections"][name]["figures"]
    except KeyError:
        raise KeyError(
            f"benchmarks/figures.json has no section {name!r}: run "
            f"`python benchmarks/figures.py --only {name}`"
        ) from None


def _table(header: list[str], rows: list[list[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column (``l`` or ``r``)."""
    rule = [("---:" if a == "r" else "---") for a in align.ljust(len(header), "l")]
    lines = [header, rule, *[[str(c) for c in r] for r in rows]]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def stamp(figures: Figures) -> str:
    """Where and when the figures on the page were measured."""
    sections = figures["sections"].values()
    commits = sorted({s["commit"] for s in sections})
    dates = sorted({s["date"] for s in sections})
    minutes = sum(s["seconds"] for s in sections) / 60
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return (
        f"Measured by `make figures` on {figures['machine']}; {when}, "
        f"commit {', '.join(commits)}; {minutes:.0f} minutes in all. The numbers are in "
        "`benchmarks/figures.json`.\n"
    )


def demo(figures: Figures) -> str:
    """The scores `make demo` prints, drawn by the code that prints them."""
    from rich.console import Console

    from mlstrategy.reporting.tables import summary_table

    run = _section(figures, "quickstart")["quickstart"]
    console = Console(file=io.StringIO(), width=100, record=True, color_system=None)
    console.print(summary_table({"splits": run["splits"]}))
    return "```\n" + console.export_text().rstrip() + "\n```\n"


def recipes(figures: Figures) -> str:
    runs = _section(figures, "quickstart")
    rows = [
        [
            "`recipes/quickstart.yaml`",
            "logistic regression, batch gradient descent",
            "breast cancer (569 x 30)",
            f"{runs['quickstart']['splits']['test']['accuracy']:.3f}",
        ],
        [
            "`recipes/softmax_digits.yaml`",
            "softmax regression, Adam, mini-batch 64",
            "digits (1,797 x 64)",
            f"{runs['softmax_digits']['splits']['test']['accuracy']:.3f}",
        ],
    ]
    return _table(["recipe", "model", "data", "test accuracy (measured)"], rows)


def strategy(figures: Figures) -> str:
    s = _section(figures, "strategy")
    logistic, wide = s["runs"]["flower_logistic"], s["runs"]["flower_wide_net"]
    lg, wd = logistic["diagnosis"], wide["diagnosis"]
    cmp = s["comparison"]
    return (
        "`recipes/strategy/` is a study that shows both verdicts on the flower data (measured):\n"
        f"logistic regression has train error {_pct(logistic['splits']['train']['error'])} "
        f"against human {_pct(lg['human_error'], 0)}, so **{lg['largest'].replace('_', ' ')}** "
        f"({_pts(lg['avoidable_bias'])}\npoints) is largest; a wide net gets train error "
        f"{_pct(wide['splits']['train']['error'])} and dev error "
        f"{_pct(wide['splits']['dev']['error'], 2)}, so **{wd['largest'].replace('_', ' ')}**\n"
        f"({_pts(wd['variance'])} points) is largest. The study ends with the comparison table, "
        f"and `{cmp['winner']}` wins\non {cmp['optimize']} ({cmp['value']:.3f}).\n"
    )


TRANSFER = ("1_scratch", "2_freeze", "3_finetune", "4_gradual")


def transfer(figures: Figures) -> str:
    s = _section(figures, "transfer")
    seed0, seed1 = s["seed0"], s["seed1"]
    rows = []
    for name in TRANSFER:
        r = seed0[name]
        rows.append(
            [
                name.split("_", 1)[1],
                f"{r['splits']['test']['f1']:.3f}",
                _pct(r["splits"]["test"]["error"]),
                f"{r['fit_seconds']:.1f}",
                f"{r['trainable_params']:,}",
            ]
        )
    pretrain = _pct(seed0["0_pretrain"]["splits"]["test"]["error"])
    table = _table(
        ["strategy", "test F1", "test error", "fit s", "trainable params (at the end)"], rows
    )
    again = " / ".join(f"{seed1[n]['splits']['test']['f1']:.3f}" for n in TRANSFER)
    return (
        f"`mlstrategy run recipes/transfer/` pretrains a ConvNet on digits 0-4 ({pretrain} test "
        "error),\nthen learns digits 5-9 from 10 labelled images per class (measured, seed 0):\n\n"
        f"{table}\nWith seed 1 (weights and data), test F1 in the same order: {again}.\n"
    )


MULTITASK = ("small_multitask", "small_single_task", "large_multitask", "large_single_task")


def multitask(figures: Figures) -> str:
    s = _section(figures, "multitask")
    tasks = list(s[MULTITASK[0]]["test_f1"])
    header = [
        "test F1",
        "multi-task, 200 scenes",
        "single-task nets, 200",
        "multi-task, 2,000",
        "single-task nets, 2,000",
    ]
    rows = [[t.replace("_", " "), *(f"{s[r]['test_f1'][t]:.3f}" for r in MULTITASK)] for t in tasks]
    rows.append(["mean", *(f"{s[r]['mean_test_f1']:.3f}" for r in MULTITASK)])
    rows.append(["parameters", *(f"{s[r]['params']:,}" for r in MULTITASK)])
    gaps = [s[r]["largest_gap"].get("pedestrian", "") for r in MULTITASK]
    named = sum(g == "avoidable_bias" for g in gaps)
    mean = {r: s[r]["mean_test_f1"] for r in MULTITASK}
    share = s["large_multitask"]["params"] / s["large_single_task"]["params"]
    small = (
        "the multi-task net is ahead"
        if mean["small_multitask"] > mean["small_single_task"]
        else "the single-task nets are ahead, so this seed does not show multi-task learning "
        "helping the small tasks"
    )
    return (
        _table(header, rows) + f"\nAt 2,000 scenes one multi-task net reaches a mean test F1 of "
        f"{mean['large_multitask']:.3f} against {mean['large_single_task']:.3f} for four "
        f"single-task nets, with {share:.0%} of their parameters; at 200 scenes "
        f"({mean['small_multitask']:.3f} against {mean['small_single_task']:.3f}) {small}. "
        "Pedestrians are the hardest task; the largest gap of their per-task diagnosis is "
        + ", ".join(g.replace("_", " ") for g in gaps)
        + f" in the four runs above (avoidable bias in {named} of 4).\n"
    )


def end_to_end(figures: Figures) -> str:
    s = _section(figures, "end_to_end")
    errors = s["test_error"]
    names = list(errors)
    header = ["m (training canvases)", *(n.replace("_", " ") for n in names)]
    rows = [
        [f"{m:,}", *(_pct(errors[n][i]) for n in names)] for i, m in enumerate(s["train_sizes"])
    ]
    crossings = "".join(f"- {c['summary']}\n" for c in s["crossover"].values())
    largest = str(max(s["train_sizes"]))
    ceiling = {row["component"]: row for row in s["ceiling"][names[1]][largest]}
    system, localize = ceiling["overall system"], ceiling["localize"]
    classify = ceiling["classify"]["stage_error"]
    by_parts = (
        f"\nThe by-parts table for the {names[1]} at m = {int(largest):,}: "
        f"{_pct(system['error'])} error as it is, {_pct(localize['error'])} with the localizer "
        f"replaced by ground truth, so the localizer is responsible for "
        f"{_pts(localize['gain'], 1)} points; the classifier's own {_pct(classify)} on clean "
        "digits is the last row.\n"
    )
    return _table(header, rows, "r" * len(header)) + "\n" + crossings + by_parts


LESSONS = {
    "init": ("zeros", "small_random", "he"),
    "regularization": ("none", "dropout", "l2", "early_stopping"),
    "optimizers": ("gd", "momentum", "rmsprop", "adam"),
    "lr_decay": ("none", "exponential", "step", "inverse_sqrt", "inverse_time"),
    "batch_norm": ("plain", "batch_norm"),
    "activation": ("logistic", "linear", "tanh", "relu"),
    "minibatch": ("batch", "minibatch", "stochastic"),
}


def lessons(figures: Figures) -> str:
    s = _section(figures, "lessons")

    def acc(lesson: str, run: str, split: str) -> str:
        return _pct(s[lesson][run]["splits"][split]["accuracy"])

    def each(lesson: str, text: Callable[[str], str]) -> str:
        return ", ".join(f"{run} {text(run)}" for run in LESSONS[lesson])

    epochs = {k: max(r["epochs"] for r in s[k].values()) for k in s}
    rows = [
        ["`init/`", "dev accuracy: " + each("init", lambda r: acc("init", r, "dev"))],
        [
            "`regularization/`",
            "train / dev accuracy: "
            + each(
                "regularization",
                lambda r: (
                    f"{acc('regularization', r, 'train')} / {acc('regularization', r, 'dev')}"
                ),
            ),
        ],
        [
            "`optimizers/`",
            f"dev accuracy after {epochs['optimizers']} epochs: "
            + each("optimizers", lambda r: acc("optimizers", r, "dev")),
        ],
        [
            "`lr_decay/`",
            f"mean training-batch cost in epoch {epochs['lr_decay']}: "
            + each("lr_decay", lambda r: f"{s['lr_decay'][r]['final_train_cost']:.3f}"),
        ],
        [
            "`batch_norm/`",
            f"a 5-layer sigmoid net with plain GD, dev accuracy after "
            f"{epochs['batch_norm']} epochs: "
            + each("batch_norm", lambda r: acc("batch_norm", r, "dev")),
        ],
        [
            "`activation/`",
            "on the flower, 4 hidden layers of 8 units, dev accuracy: "
            + each("activation", lambda r: acc("activation", r, "dev"))
            + " (a deep linear net is one linear map: no better than logistic regression)",
        ],
        ["`minibatch/`", _minibatch(s)],
    ]
    return _table(["`mlstrategy run recipes/deep/...`", "what it showed"], rows)


MISMATCH = ("1_source_only", "2_target_in_train", "3_synthesis", "4_both")


def mismatch(figures: Figures) -> str:
    """The data-mismatch study's table and what it shows, each figure from its runs."""
    from mlstrategy.evaluation.diagnosis import GAP_TITLES

    s = _section(figures, "mismatch")
    runs = [s["runs"][name] for name in MISMATCH]
    rows = []
    for name, r in zip(MISMATCH, runs, strict=True):
        gap, se = r["gaps"]["data_mismatch"], r["gap_standard_errors"]["data_mismatch"]
        rows.append(
            [
                name,
                f"{r['target_in_train']:,}",
                "yes" if r["synthesis"] else "no",
                *(_pts(r["errors"][k]) for k in ("train", "train_dev", "dev", "test")),
                f"{_pts(gap)} ± {_pts(se)}",
                GAP_TITLES[r["largest"]] + (" (pool warning)" if r["pool_warning"] else ""),
            ]
        )
    header = ["run", "target in train", "synthesis", "train", "train-dev", "dev", "test"]
    minutes, seconds = divmod(round(s["seconds"]), 60)
    first, target, synthesis, both = runs
    e, gap = first["errors"], first["gaps"]["data_mismatch"]
    auc = f", and the domain classifier tells train from dev with AUC {first['train_dev_auc']:.2f}"
    shrinks = all(r["gaps"]["data_mismatch"] < gap for r in runs[1:])

    def dev(r: dict[str, Any]) -> str:
        change = "falls" if r["errors"]["dev"] < e["dev"] else "rises"
        gap = _pts(r["gaps"]["data_mismatch"], 1)
        return f"{change} to {_pct(r['errors']['dev'])} (data mismatch {gap} points)"

    harder = (
        f"The synthesized training set is harder to fit (train error "
        f"{_pct(synthesis['errors']['train'], 0)}), so the largest gap of {MISMATCH[2]} is "
        f"{GAP_TITLES[synthesis['largest']]}"
        + (": the next knob is a bigger network or longer training." if synthesis["largest"] ==
           "avoidable_bias" else ".")
    )  # fmt: skip
    p3, p4, n = synthesis["errors"]["dev"], both["errors"]["dev"], both["dev_examples"]
    resolution = 2 * ((p3 * (1 - p3) + p4 * (1 - p4)) / n) ** 0.5
    apart = "less" if abs(p3 - p4) < resolution else "more"
    return (
        f"Measured by `make figures` on {s['cores']} CPU cores, seed 0, {minutes} min {seconds} s "
        f"for the four runs (errors in %, human level {_pct(e['human'], 0)} assumed, data "
        "mismatch ± one standard error):\n\n"
        + _table([*header, "data mismatch", "largest gap"], rows)
        + f"\nTrained on clean digits alone, the network's train error is {_pct(e['train'])}, "
        f"and train-dev is within {_pts(e['train_dev'] - e['train'], 1)} points of it. It errs "
        f"on {_pct(e['dev'])} of the phone digits, so the largest gap is "
        f"{GAP_TITLES[first['largest']]}"
        + (" (" if first["largest"] == "data_mismatch" else "; data mismatch is ")
        + f"{_pts(gap, 1)} points, {gap / first['gap_standard_errors']['data_mismatch']:.1f} "
        + ("standard errors)" if first["largest"] == "data_mismatch" else "standard errors")
        + (auc if first["train_dev_auc"] is not None else "")
        + ". "
        + ("Each remedy shrinks the mismatch. " if shrinks else "")
        + f"With {target['target_in_train']:,} phone digits in training, dev error "
        f"{dev(target)}. With synthesis and no target labels at all, it {dev(synthesis)}; with "
        f"both, it {dev(both)}. {harder} The last two runs' dev errors "
        f"differ by {_pts(abs(p3 - p4), 1)} points, {apart} than twice the standard error of "
        f"that difference on {n} dev examples ({_pts(resolution, 1)} points).\n"
    )


def _minibatch(s: dict[str, Any]) -> str:
    """The mini-batch lesson's row: cost in the last epoch and fit time per batch size."""
    if "minibatch" not in s:
        return "not measured yet: `python benchmarks/figures.py --only lessons`"
    runs = s["minibatch"]
    epochs = max(r["epochs"] for r in runs.values())
    cost = ", ".join(f"{r} {runs[r]['final_train_cost']:.3f}" for r in LESSONS["minibatch"])
    fit = ", ".join(f"{r} {runs[r]['fit_seconds']:.0f} s" for r in LESSONS["minibatch"])
    return f"mean training-batch cost in epoch {epochs}: {cost}; fit time: {fit}"


def mnist1d(figures: Figures) -> str:
    s = _section(figures, "mnist1d")
    what = {
        "logistic": ("`logistic.yaml` (softmax regression)", "32%"),
        "mlp": ("`mlp.yaml` (256-256, dropout, L2, shift augmentation)", "68%"),
        "cnn": ("`cnn.yaml` (32-32-64-64, batch norm)", "94%"),
    }
    rows = [
        [recipe, paper, _pct(s[k]["splits"]["test"]["accuracy"]), f"{s[k]['fit_seconds']:.0f} s"]
        for k, (recipe, paper) in what.items()
    ]
    rows.append(["human", "96%", "", ""])
    return _table(["recipe", "paper", "measured test accuracy", "fit time"], rows)


def _bench(figures: Figures, name: str) -> dict[str, Any]:
    table = _section(figures, name)
    return {"title": table["title"], "header": table["header"], "rows": table["rows"]}


def _bench_table(figures: Figures, name: str) -> str:
    t = _bench(figures, name)
    return _table(t["header"], t["rows"])


def performance(figures: Figures) -> str:
    loop = _bench(figures, "loop_overhead")["rows"]
    tta = _bench(figures, "time_to_accuracy")["rows"]
    batching = _bench(figures, "batching")["rows"]
    # With the dev cost per epoch, as every run trains.
    mlp = next(r for r in loop if r[0].startswith("MLP") and r[1] != "train only")
    cnn = next(r for r in loop if r[0].startswith("CNN") and r[1] != "train only")
    return (
        f"Latest figures: the digits MLP reaches scikit-learn's `MLPClassifier` test accuracy in "
        f"{tta[0][5]} its\nfit time; in-memory batching is {batching[0][3]} `DataLoader` at "
        f"batch {batching[0][0]}; training (with the dev cost per epoch) costs {mlp[4]} a\n"
        f"hand-written loop for the tiny 64-128-64-10 MLP and {cnn[4]} for the MNIST-1D CNN\n"
        "(see the benchmarks page).\n"
    )


def loop_overhead(figures: Figures) -> str:
    t = _bench(figures, "loop_overhead")
    costs = {r[0].split(",")[0]: r[5] for r in t["rows"] if r[1] == "train only"}
    targets = {"MLP": 1.3, "CNN": 1.1}
    verdicts = ", ".join(
        f"{r[0].split(' ')[0]} {r[4]} against <= {targets[r[0].split(' ')[0]]}x "
        f"({'met' if _ratio(r[4]) <= targets[r[0].split(' ')[0]] else 'not met'})"
        for r in t["rows"]
        if r[1] != "train only"
    )
    return (
        f"{t['title']}:\n\n{_table(t['header'], t['rows'])}\nTargets against the hand loop, "
        f"with the dev cost per epoch: {verdicts}. Both sides do the same work: "
        "after one epoch their training costs agree to 1e-5 (the script fails otherwise). "
        "Over the 20 epochs, last-bit differences in summation order grow (train only: "
        f"{costs.get('MLP 64-128-64-10')} for the MLP, {costs.get('CNN 1-D')} for the CNN).\n"
    )


# The target for the toolkit's training against Lightning's floor.
FLOOR_TARGET = 1.05


def floor(figures: Figures) -> str:
    """The toolkit against a bare LightningModule, and where its time goes."""
    t = _section(figures, "loop_overhead")
    ratio = t["header"].index("toolkit / floor")
    spread = t["header"].index("95% CI") if "95% CI" in t["header"] else None

    def verdicts(rows: list[list[str]]) -> str:
        return ", ".join(
            f"{r[0].split(',')[0]} {r[ratio]} "
            f"({'met' if _ratio(r[ratio]) <= FLOOR_TARGET else 'not met'}"
            + (f"; 95% confidence interval {r[spread]}" if spread is not None else "")
            + ")"
            for r in rows
        )

    with_dev = verdicts([r for r in t["rows"] if r[1] != "train only"])
    train_only = verdicts([r for r in t["rows"] if r[1] == "train only"])
    parts = t["breakdown"]
    text = (
        f"Toolkit / Lightning floor against the {FLOOR_TARGET}x target, with the dev cost per "
        f"epoch (as every run trains): {with_dev}. Train only: {train_only}.\n\n"
        "Where the toolkit's time goes (train + dev cost per epoch; each part switched off in "
        "turn, all variants interleaved round by round in one process; the share is the median "
        "of each round's):\n\n" + _table(parts["header"], parts["rows"])
    )
    if "parts" in t:
        inside = t["parts"]
        text += (
            "\nThe time inside each part of the fit, from Lightning's `SimpleProfiler` (train + "
            "dev cost per epoch; for each part the fastest of the fits, toolkit and floor fits "
            "alternating):\n\n" + _table(inside["header"], inside["rows"])
        )
    return text


def instructions(figures: Figures) -> str:
    """The toolkit's work against the floor's, counted by valgrind (no timing noise)."""
    t = _section(figures, "instructions")
    ir = next(r for r in t["rows"] if r[0] == "instructions")
    seeds = [_ratio(cell) for cell in ir[4].split(", ")]
    if max(seeds) <= FLOOR_TARGET:
        verdict = f"within the {FLOOR_TARGET}x target for every hash seed"
    elif min(seeds) > FLOOR_TARGET:
        verdict = f"above the {FLOOR_TARGET}x target for every hash seed"
    else:
        verdict = f"at the {FLOOR_TARGET}x target: the hash seeds fall on either side ({ir[4]})"
    return (
        f"{t['title']}:\n\n{_table(t['header'], t['rows'])}\nBy instructions the toolkit "
        f"does {ir[3]} the floor's work per epoch, {verdict}.\n\n"
        f"{_instruction_parts(t['parts'])}"
    )


def _instruction_parts(parts: dict[str, Any]) -> str:
    """Where the toolkit's instructions differ from the floor's, by library.

    A share "of the extra" only reads as one when the toolkit does more work than the floor;
    when it does less (the total negative), the table keeps each place's signed difference
    and its share of the floor's work, and says which way the total went.
    """
    header, rows = parts["header"], parts["rows"]
    total = next(r for r in rows if r[0] == "all")
    if not total[1].startswith("-"):
        return _table(header, rows)
    keep = [i for i, name in enumerate(header) if name != "of the extra"]
    return (
        "Where the instructions differ, toolkit less floor (the toolkit does less in all, so "
        "a negative figure is work the toolkit saves):\n\n"
        + _table(
            ["where the instructions run", *[header[i] for i in keep[1:]]],
            [[row[i] for i in keep] for row in rows],
        )
    )


def _ratio(cell: str) -> float:
    return float(cell.rstrip("x"))


def time_to_accuracy(figures: Figures) -> str:
    t = _bench(figures, "time_to_accuracy")
    mlp, logistic = t["rows"]
    verdict = "meets" if _ratio(mlp[5]) <= 1 else "misses"
    return (
        f"{t['title']}:\n\n{_table(t['header'], t['rows'])}\nThe MLP {verdict} the target "
        f"(its fit in at most `MLPClassifier`'s time). scikit-learn's L-BFGS solves the 455 x 30 "
        f"logistic regression in {float(logistic[2]) * 1000:.0f} ms, while gradient descent "
        f"(Adam, full batch) needs {logistic[4]} steps.\n"
    )


def batching(figures: Figures) -> str:
    t = _bench(figures, "batching")
    at64 = next(r for r in t["rows"] if r[0] == "64")
    verdict = "met" if _ratio(at64[3]) >= 10 else "not met"
    return (
        f"{t['title']}:\n\n{_table(t['header'], t['rows'])}\nTarget (>= 10x at batch 64) "
        f"{verdict}.\n"
    )


def scaling(figures: Figures) -> str:
    t = _bench(figures, "scaling")
    first, last = t["rows"][0], t["rows"][-1]
    base_mb, per_row = float(first[3]), float(last[4])
    fits = (24 * 1024 - base_mb) * 2**20 / per_row / 1e6
    return (
        f"{t['title']}:\n\n{_table(t['header'], t['rows'])}\nEpoch time grows linearly "
        f"({last[2]} us per row at {last[0]} rows, once the fixed cost is amortized). Memory "
        f"grows by about {per_row:.0f} bytes per row for 64 float32 features (256 bytes of data, "
        f"plus the split's copy while it is made) over a fixed {base_mb:.0f} MB for torch "
        f"itself, so 24 GiB holds roughly {fits:.0f} million such rows.\n"
    )


def suspects(figures: Figures) -> str:
    """What `mlstrategy suspects` marks on the clean digits run, and where the two examples
    looked at in its picture rank."""
    s = _section(figures, "suspects")
    seven, one = s["examples"]["train 959"], s["examples"]["train 80"]
    # The prose describes what the picture shows: these labels, and the model reading them so.
    seen = (seven["given"], seven["suggested"], one["given"], one["suggested"])
    if seen != ("9", "7", "8", "1"):
        raise ValueError(f"train #959 / #80 (given, model's class): {seen}; look at the picture")
    return (
        f"On the clean `recipes/softmax_digits.yaml` run, `mlstrategy suspects "
        f"logs/softmax_digits` took {s['seconds']:.0f} s; confident learning marks "
        f"{s['marked']} of {s['ranked']:,} labels. I looked at `suspect_labels.png`: a grid of "
        "the 24 most suspect 8x8 digits, each titled with its split, index, the given label, "
        "the model's class and p(given). Many are badly drawn digits that could be either "
        f"class, but some read as what the model says: train #959, labelled 9, looks like a 7 "
        f"(rank {seven['rank']}, p(given) = {float(seven['p_given']):.4f}, the model says "
        f"{seven['suggested']}); train #80, labelled 8, is a thin vertical stroke like a 1 "
        f"(rank {one['rank']}, the model says {one['suggested']}).\n"
    )


def predict(figures: Figures) -> str:
    """`mlstrategy predict` on four new iris rows: what it prints and the CSV it writes."""
    p = _section(figures, "predict")
    return (
        "Measured (2-core CPU, seed 0): softmax regression trained on scikit-learn's iris "
        "written as a user's CSV with string labels (`ArrayFile(path: iris.csv, target: "
        f"species)`, {p['epochs']} epochs, test accuracy {p['test_accuracy']:.3f}), then rows "
        f"0, 60, 120 and 149 (true classes {', '.join(p['true'])}) without their labels:\n\n"
        f"```\n$ mlstrategy predict logs/iris new.csv\n{p['printed']}\n"
        f"$ cat {p['csv_path']}\n{p['csv']}\n```\n"
    )


TEMPLATES: dict[str, Callable[[Figures], str]] = {
    f.__name__: f
    for f in (
        stamp,
        demo,
        recipes,
        strategy,
        transfer,
        multitask,
        end_to_end,
        lessons,
        mismatch,
        mnist1d,
        suspects,
        predict,
        performance,
        loop_overhead,
        floor,
        instructions,
        time_to_accuracy,
        batching,
        scaling,
    )
}


def render(text: str, figures: Figures) -> str:
    """``text`` with every marked section rendered from ``figures``.

    Raises:
        KeyError: a marker names no template, or the figures lack a section.
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in TEMPLATES:
            raise KeyError(f"<!-- figures: {name} --> names no template; known: {list(TEMPLATES)}")
        return match.group(1) + TEMPLATES[name](figures) + match.group(4)

    return SECTION.sub(one, text)


def drifted(figures: Figures, readmes: tuple[Path, ...] = READMES) -> list[str]:
    """``FILE: section`` for each marked section that differs from what ``figures`` gives."""
    out = []
    for path in readmes:
        text = path.read_text()
        for match in SECTION.finditer(text):
            if match.group(0) != render(match.group(0), figures):
                out.append(f"{path.relative_to(REPO)}: {match.group(2)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on drift")
    args = parser.parse_args()
    figures = json.loads(FIGURES.read_text())
    if args.check:
        stale = drifted(figures)
        for line in stale:
            print(f"differs from benchmarks/figures.json: {line}", file=sys.stderr)
        return 1 if stale else 0
    for path in READMES:
        text = path.read_text()
        path.write_text(render(text, figures))
        print(f"rendered {len(SECTION.findall(text))} sections of {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
