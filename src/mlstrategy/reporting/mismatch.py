"""Training and testing on different distributions, in the report: the course's ladder of errors
(human level, train, train-dev, dev, test) with the gap between each rung, where each split's
examples came from, the synthesis pools, and the five errors as bars (per run, and per study)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlstrategy.evaluation.diagnosis import GAP_TITLES, Diagnosis
from mlstrategy.evaluation.human_level import LEVELS as HUMAN_LEVELS
from mlstrategy.io import write_text_atomic
from mlstrategy.reporting.human_level import distributions_lines, gap_text
from mlstrategy.reporting.markdown import md_table, pct

FIGURE_FILE = "mismatch_errors.png"  # beside a run's report
STUDY_REPORT = "mismatch_study.md"  # in a study's folder of runs, logs/<study>/
STUDY_FIGURE = "mismatch_study.png"

# The rungs of the course's ladder, and the gap between each and the one above it.
LEVELS = (
    ("human level", "human_error", None),
    ("train", "train_error", "avoidable_bias"),
    ("train-dev", "train_dev_error", "variance"),
    ("dev", "dev_error", "data_mismatch"),
    ("test", "test_error", "dev_overfitting"),
)


def _errors(diagnosis: Diagnosis) -> dict[str, float | None]:
    return {label: getattr(diagnosis, field) for label, field, _ in LEVELS}


def ladder_lines(diagnosis: Diagnosis) -> list[str]:
    """The errors as the course draws them, each rung with the gap to the one above.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> d = diagnose(0.01, 0.11, test_error=0.12, train_dev_error=0.015, human_error=0.005)
        >>> ladder_lines(d)[5]
        '| dev | 11.00% | data mismatch | 9.50% | **largest** |'
    """
    ses = diagnosis.gap_standard_errors
    rows = []
    for label, field, gap in LEVELS:
        error = getattr(diagnosis, field)
        if error is None and gap in (None, "dev_overfitting"):
            continue
        if gap is None:  # human level: the proxy, and which level it is when several
            who = f" ({HUMAN_LEVELS[diagnosis.human_proxy]})" if diagnosis.human_proxy else ""
            rows.append([label + who, pct(error), "", "", ""])
            continue
        value = diagnosis.gaps[gap]
        if gap == "variance" and diagnosis.train_dev_error is None:
            continue  # no train-dev rung: variance is read off dev, in the table below
        size = pct(value) if value is not None else "-"
        if value is not None and ses.get(gap) is not None:
            size += f" ± {pct(ses[gap])}"
        mark = "**largest**" if gap == diagnosis.largest else ""
        size = gap_text(diagnosis, gap, size)
        rows.append([label, pct(error) if error is not None else "-", GAP_TITLES[gap], size, mark])
    return [*md_table(["level", "error", "gap to the level above", "size (± 1 SE)", ""], rows), ""]


def sources_lines(
    sources: Mapping[str, Any] | None,
    image: str | None = None,
    table: Mapping[str, Any] | None = None,
) -> list[str]:
    """The report's section on the two distributions, or nothing for one distribution;
    ``table`` is the course's 2x3 table (from
    :func:`~mlstrategy.evaluation.human_level.distributions_table`)."""
    if not sources:
        return []
    out = [
        "## Two distributions",
        "",
        f"Source (the data there is plenty of): `{sources['source']}`.",
        "",
        f"Target (the distribution the system must work on): `{sources['target']}`. Dev and test "
        f"come from it only; {sources['target_in_train']:,} of its examples joined the training "
        "mix, and train-dev is carved from that mix, so dev - train-dev is the data mismatch.",
        "",
    ]
    out += md_table(
        ["split", "from the source", "from the target"],
        [[s, f"{o['source']:,}", f"{o['target']:,}"] for s, o in sources["splits"].items()],
    )
    out.append("")
    out += distributions_lines(table)
    if image:
        out += [f"![the five errors]({image})", ""]
    return out + synthesis_lines(sources.get("synthesis"))


def synthesis_lines(synthesis: Mapping[str, Any] | None) -> list[str]:
    """The synthesis transforms, their pools against the examples synthesized, and warnings."""
    if not synthesis:
        return []
    n = int(synthesis["synthesized"])
    out = [
        "### Artificial data synthesis",
        "",
        f"{n:,} source examples of the train split are synthesized to look like the target "
        f"(each with probability {synthesis.get('probability', 1.0):g}, fresh draws every batch).",
        "",
    ]
    rows = []
    for t in synthesis["transforms"]:
        pool = t.get("pool")
        stats = ", ".join(
            f"{k} {v:g}" for k, v in t.items() if k in ("noise_std", "target_mean", "target_std")
        )
        rows.append(
            [
                t["transform"],
                f"{pool:,} {t.get('unit', '')}" if pool else "new draws (no pool)",
                f"{t['reuse']:g}" if "reuse" in t else "-",
                stats,
            ]
        )
    out += md_table(["transform", "distinct inputs", "uses per input per epoch", "fit"], rows)
    out.append("")
    for warning in synthesis.get("warnings") or []:
        out += [f"> Warning: {warning}", ""]
    return out


def five_errors_figure(runs: Mapping[str, Mapping[str, float | None]]) -> Any:
    """Grouped bars: for each run, its human-level, train, train-dev, dev and test errors."""
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [label for label, _, _ in LEVELS]
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(runs) + 2), 3.6))
    x = np.arange(len(runs))
    for i, label in enumerate(labels):
        values = [r.get(label) for r in runs.values()]
        heights = [100 * v if v is not None else 0.0 for v in values]
        bars = ax.bar(x + (i - 2) * width, heights, width, label=label)
        for bar, v in zip(bars, values, strict=True):
            if v is not None:
                ax.annotate(
                    f"{100 * v:.1f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                )
    ax.set_xticks(x, list(runs), fontsize=8)
    ax.set_ylabel("error (%)")
    ax.set_title("Human level, train, train-dev, dev and test error")
    ax.legend(fontsize=7, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return fig


def mismatch_figures(diagnosis: Diagnosis | str, analysis: Mapping[str, Any]) -> dict[str, Any]:
    """``{"mismatch_errors": figure}`` for a run on two distributions, else ``{}``."""
    if not analysis.get("sources") or not isinstance(diagnosis, Diagnosis):
        return {}
    return {"mismatch_errors": five_errors_figure({"this run": _errors(diagnosis)})}


def write_mismatch_study(
    folder: Path, runs: Sequence[tuple[str, Diagnosis | str, Mapping[str, Any]]]
) -> dict[str, Path]:
    """A study's comparison of runs on two distributions: one table and one figure.

    Args:
        folder: The study's folder of runs (``logs/<study>``).
        runs: ``(name, diagnosis, analysis)`` of each run; those without ``sources`` in their
            analysis (one distribution) are left out.

    Returns:
        ``{"report": path, "figure": path}``, or ``{}`` when no run had two distributions.
    """
    from mlstrategy.reporting.plots import save_figure

    chosen = [(n, d, a) for n, d, a in runs if a.get("sources") and isinstance(d, Diagnosis)]
    if not chosen:
        return {}
    rows = []
    for name, d, a in chosen:
        assert isinstance(d, Diagnosis)
        ses = d.gap_standard_errors
        mismatch = pct(d.data_mismatch) if d.data_mismatch is not None else "-"
        if ses.get("data_mismatch") is not None:
            mismatch += f" ± {pct(ses['data_mismatch'])}"
        synthesis = (a["sources"].get("synthesis") or {}).get("warnings")
        rows.append(
            [
                name,
                f"{a['sources']['target_in_train']:,}",
                "yes" if a["sources"].get("synthesis") else "no",
                *(pct(v) if v is not None else "-" for v in _errors(d).values()),
                mismatch,
                GAP_TITLES[d.largest] + (" (pool warning)" if synthesis else ""),
            ]
        )
    header = ["run", "target in train", "synthesis", "human", "train", "train-dev", "dev", "test"]
    lines = [
        f"# Training and testing on different distributions: {folder.name}",
        "",
        "Each run's errors as the course draws them; data mismatch = dev - train-dev (± one "
        "standard error).",
        "",
        *md_table([*header, "data mismatch", "largest gap"], rows),
        "",
        f"![the five errors per run]({STUDY_FIGURE})",
        "",
    ]
    figure = five_errors_figure({name: _errors(d) for name, d, _ in chosen})  # type: ignore[arg-type]
    written = {"figure": save_figure(figure, folder / STUDY_FIGURE)}
    written["report"] = folder / STUDY_REPORT
    write_text_atomic(written["report"], "\n".join(lines))
    return written
