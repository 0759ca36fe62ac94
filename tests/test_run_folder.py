"""Finding finished run folders; errors that say what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstrategy.run_folder import find_run, find_runs, load_metrics, load_settings, run_names

ERRORS = {"train": 0.1, "dev": 0.12, "test": 0.13}


def test_find_run_accepts_a_run_or_the_latest_under_a_folder(tmp_path, fake_run):
    old = fake_run(tmp_path / "logs" / "r" / "20250101-000000", ERRORS)
    new = fake_run(tmp_path / "logs" / "r" / "20250102-000000", ERRORS)
    (tmp_path / "logs" / "r" / "20250103-000000").mkdir()  # unfinished: ignored
    assert find_run(old) == old
    assert find_run(tmp_path / "logs" / "r") == new


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("failed", "the run failed (RuntimeError: boom)"),
        ("fit_only", "`mlstrategy fit` run"),
        ("a_file", "is a file"),
    ],
)
def test_find_run_errors(tmp_path, setup, message):
    target = tmp_path / "run"
    if setup == "failed":
        target.mkdir()
        (target / "FAILED").write_text("RuntimeError: boom\n")
    elif setup == "fit_only":
        (target / "checkpoints").mkdir(parents=True)
    elif setup == "a_file":
        target.write_text("x")
    with pytest.raises(ValueError) as err:
        find_run(target)
    assert message in str(err.value)


def test_find_runs_keeps_the_latest_run_of_each_recipe(tmp_path, fake_run):
    study = tmp_path / "logs" / "study"
    fake_run(study / "a" / "1", ERRORS)
    a2 = fake_run(study / "a" / "2", ERRORS)
    b1 = fake_run(study / "b" / "1", ERRORS)
    runs = find_runs([study])
    assert [r.resolve() for r in runs] == [a2.resolve(), b1.resolve()]
    assert len(find_runs([study], all_runs=True)) == 3
    # The same run named twice is compared once.
    assert len(find_runs([study, b1])) == 2


def test_find_runs_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no finished run"):
        find_runs([tmp_path / "empty"])


def test_run_names_are_short_and_unique():
    runs = [Path("logs/s/a/1"), Path("logs/s/b/1")]
    assert list(run_names(runs).values()) == ["a", "b"]
    runs = [Path("logs/s/a/1"), Path("logs/s/a/2")]
    assert list(run_names(runs).values()) == ["a/1", "a/2"]


def test_load_metrics_and_settings(tmp_path, fake_run):
    run = fake_run(tmp_path / "r" / "1", ERRORS, settings={"human_error": 0.02})
    assert load_metrics(run)["splits"]["dev"]["error"] == 0.12
    assert load_settings(run) == {"human_error": 0.02}
    (run / "diagnosis.json").unlink()
    (run / "config.yaml").write_text("evaluation:\n  human_error: 0.03\n")
    assert load_settings(run) == {"human_error": 0.03}
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_metrics(run)


def test_new_versions_never_share_a_folder(tmp_path):
    from mlstrategy.run_folder import new_run_version

    versions = [new_run_version(tmp_path, "r") for _ in range(3)]
    assert len(set(versions)) == 3
    assert all((tmp_path / "r" / v).is_dir() for v in versions)
    # Same second: the later ones get a suffix, so they still sort after the first.
    assert sorted(versions) == versions


def test_a_failed_run_is_marked_and_never_looks_finished(tmp_path):
    from mlstrategy.run_folder import clear_failed, is_finished, mark_failed

    run = tmp_path / "logs" / "r" / "1"
    mark_failed(run, RuntimeError("boom"))
    assert not is_finished(run)
    with pytest.raises(ValueError, match=r"the run failed \(RuntimeError: boom\)"):
        find_run(run)
    clear_failed(run)
    with pytest.raises(ValueError, match="not a run folder"):
        find_run(run)


def test_latest_run_is_the_newest_created_not_the_newest_written_to(tmp_path, fake_run):
    import os

    from mlstrategy.run_folder import latest_run

    assert latest_run(tmp_path, "r") is None
    # As new_run_version names them: a timestamp, then -1, -2, ... within the same second.
    names = ["20250101-120000", "20250101-120000-2", "20250101-120000-10"]
    for name in names:
        fake_run(tmp_path / "r" / name, ERRORS)
    (tmp_path / "r" / "20250101-120000-10" / "metrics.json").unlink()  # unfinished counts
    for i, name in enumerate(reversed(names)):  # the oldest was written to last
        os.utime(tmp_path / "r" / name, (1000 + i, 1000 + i))
    assert latest_run(tmp_path, "r") == tmp_path / "r" / "20250101-120000-10"
    # find_run (the latest *finished* run) uses the same order.
    assert find_run(tmp_path / "r") == tmp_path / "r" / "20250101-120000-2"
    fake_run(tmp_path / "r" / "20250101-120000-10", ERRORS)
    assert find_run(tmp_path / "r") == tmp_path / "r" / "20250101-120000-10"
    assert find_runs([tmp_path / "r"]) == [tmp_path / "r" / "20250101-120000-10"]


def test_new_versions_in_one_second_keep_their_creation_order_past_ten(tmp_path, monkeypatch):
    from datetime import datetime

    from mlstrategy import run_folder
    from mlstrategy.run_folder import new_run_version, recipe_runs

    monkeypatch.setattr(run_folder, "_now", lambda: datetime(2025, 1, 1, 12, 0, 0))  # one second
    versions = [new_run_version(tmp_path, "r") for _ in range(12)]
    assert versions[-1] == "20250101-120000-11"
    assert [p.name for p in recipe_runs(tmp_path, "r")] == versions


def test_run_checkpoint_finds_best_then_last_in_a_run_or_its_recipe_folder(tmp_path, fake_run):
    from mlstrategy.run_folder import checkpoint_path, run_checkpoint

    run = fake_run(tmp_path / "logs" / "r" / "20250101-000000", ERRORS)
    checkpoint_path(run, "last").parent.mkdir()
    checkpoint_path(run, "last").write_bytes(b"")
    assert run_checkpoint(tmp_path / "logs" / "r") == run / "checkpoints" / "last.ckpt"
    checkpoint_path(run, "best").write_bytes(b"")
    assert run_checkpoint(run) == run / "checkpoints" / "best.ckpt"
    assert run_checkpoint(run / "checkpoints" / "last.ckpt").name == "last.ckpt"
    with pytest.raises(FileNotFoundError, match=r"does not exist\. Run the source task first"):
        run_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no finished run"):
        run_checkpoint(tmp_path / "empty")
