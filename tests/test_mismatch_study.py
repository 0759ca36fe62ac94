"""The data-mismatch study (recipes/mismatch/): trained on clean digits alone, the diagnosis names
data mismatch; 500 phone digits in training shrink it; one table and one figure for the study."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO
from mlstrategy.cli import main

STUDY = REPO / "recipes" / "mismatch"


@pytest.mark.slow
def test_source_only_names_data_mismatch_and_target_data_shrinks_it(in_tmp, capsys):
    study = in_tmp / "recipes" / "mismatch"
    study.mkdir(parents=True)
    for name in ("_base.yaml", "1_source_only.yaml", "2_target_in_train.yaml"):
        shutil.copy(STUDY / name, study / name)
    fast = ["--trainer.max_epochs=15", "--evaluation.latency_repeats=2"]
    assert main(["run", str(study), *fast]) == 0
    logs = in_tmp / "logs" / "mismatch"
    found = {}
    for run in ("1_source_only", "2_target_in_train"):
        (path,) = (logs / run).glob("*/diagnosis.json")
        found[run] = json.loads(path.read_text())
    first = found["1_source_only"]
    assert first["largest"] == "data_mismatch"
    assert first["data_mismatch"] > 2 * first["gap_standard_errors"]["data_mismatch"]
    assert first["sources"]["splits"]["dev"] == {"source": 0, "target": 180}
    assert found["2_target_in_train"]["sources"]["target_in_train"] == 500
    assert found["2_target_in_train"]["data_mismatch"] < first["data_mismatch"]
    assert found["2_target_in_train"]["dev_error"] < first["dev_error"]
    table = (logs / "mismatch_study.md").read_text()
    assert "| 1_source_only | 0 | no |" in table and "data mismatch" in table
    assert (logs / "mismatch_study.png").read_bytes()[:4] == b"\x89PNG"
    report = next((logs / "1_source_only").glob("*/report.md")).read_text()
    assert "| dev | " in report and "## Two distributions" in report
    assert "mismatch_errors.png" in report
