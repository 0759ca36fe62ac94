"""The READMEs' figures are rendered from benchmarks/figures.json and cannot drift from it.

`make figures` measures (benchmarks/figures.py) and renders (benchmarks/readme_figures.py);
these tests only read the file, they never re-run the recipes.
"""

from __future__ import annotations

import copy
import json
import re
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import figures as measure
import readme_figures

FIGURES = json.loads(readme_figures.FIGURES.read_text())


def test_every_marked_readme_section_equals_what_figures_json_gives():
    assert readme_figures.drifted(FIGURES) == [], (
        "a README section differs from benchmarks/figures.json: run "
        "`python benchmarks/readme_figures.py` (or `make figures` to measure again)"
    )


def test_every_section_is_measured_and_records_machine_date_and_commit():
    assert set(FIGURES["sections"]) == set(measure.SECTIONS)
    for name, section in FIGURES["sections"].items():
        assert section["machine"] and section["commit"], name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", section["date"]), name
        assert section["seconds"] > 0, name
    assert FIGURES["machine"] and FIGURES["commit"] and FIGURES["date"]


def test_each_readme_renders_every_template_it_marks():
    marked = {
        m.group(2)
        for path in readme_figures.READMES
        for m in readme_figures.SECTION.finditer(path.read_text())
    }
    assert marked == set(readme_figures.TEMPLATES)


def test_a_changed_number_is_reported_as_drift():
    changed = copy.deepcopy(FIGURES)
    split = changed["sections"]["mnist1d"]["figures"]["cnn"]["splits"]["test"]
    split["accuracy"] = split["accuracy"] - 0.05
    assert readme_figures.drifted(changed) == ["README.md: mnist1d"]


def test_an_unknown_marker_or_a_missing_section_is_an_error():
    with pytest.raises(KeyError, match="names no template"):
        readme_figures.render("<!-- figures: nope -->\nx\n<!-- /figures -->", FIGURES)
    empty = {**FIGURES, "sections": {}}
    with pytest.raises(KeyError, match="--only mnist1d"):
        readme_figures.render("<!-- figures: mnist1d -->\n<!-- /figures -->", empty)


def test_the_instructions_parts_read_as_savings_when_the_toolkit_does_less_than_the_floor():
    parts = {
        "header": [
            "where the extra instructions run",
            "per epoch",
            "of the extra",
            "of the floor's",
        ],
        "rows": [
            ["the Python interpreter", "-2.00M", "+200%", "-2.00%"],
            ["the guard's check", "+1.00M", "-100%", "+1.00%"],
            ["all", "-1.00M", "+100%", "-1.00%"],
        ],
    }
    saved = readme_figures._instruction_parts(parts)
    assert "of the extra" not in saved and "+200%" not in saved
    assert "| the Python interpreter | -2.00M | -2.00% |" in saved
    assert "toolkit less floor" in saved
    parts["rows"][2] = ["all", "+1.00M", "+100%", "+1.00%"]
    spent = readme_figures._instruction_parts(parts)
    assert spent.startswith("| where the extra instructions run | per epoch | of the extra |")
