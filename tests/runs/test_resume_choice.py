"""Which run ``mlstrategy run RECIPE --resume [RUN_DIR]`` continues: the newest created, not
the newest written to, and a folder that does not exist is named as such."""

from __future__ import annotations

import os
import time
import warnings

import pytest

from mlstrategy.cli import main
from mlstrategy.run_folder import checkpoint_path, is_finished


@pytest.mark.slow
def test_resume_continues_the_newest_run_after_an_older_one_was_written_to(tiny_recipe, capsys):
    for _ in range(3):
        assert main(["run", str(tiny_recipe)]) == 0
    a, b, c = sorted((tiny_recipe.parent / "logs" / "tiny").iterdir())
    # C stopped mid-fit: a last checkpoint, no metrics.json (the file a run writes last).
    (c / "metrics.json").unlink()
    assert checkpoint_path(c, "last").is_file()
    # Later, a verb writes into the finished B (as `mlstrategy errors B` does), so B is the
    # folder modified last.
    (b / "errors.csv").write_text("id,true,predicted\n")
    later = time.time() + 60
    os.utime(b, (later, later))
    capsys.readouterr()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["run", str(tiny_recipe), "--resume"]) == 0

    # The resumed fit saves into the checkpoints/ it saved into before: no warning about it.
    assert not [w for w in caught if "is not empty" in str(w.message)]
    out = capsys.readouterr().out
    assert f"resuming from logs/tiny/{c.name}/checkpoints/last.ckpt" in out
    assert "finished already" not in out
    assert is_finished(c)
    assert sorted(p.name for p in c.parent.iterdir()) == [a.name, b.name, c.name]  # no new run


def test_resume_of_a_folder_that_does_not_exist_says_so_and_lists_the_runs(tiny_recipe, capsys):
    runs = tiny_recipe.parent / "logs" / "tiny"
    for name in ("20261201-144656", "20261201-150000"):
        checkpoint_path(runs / name, "last").parent.mkdir(parents=True)
        checkpoint_path(runs / name, "last").write_bytes(b"")

    assert main(["run", str(tiny_recipe), "--resume", "logs/tiny/2026120-144656"]) == 2

    err = " ".join(capsys.readouterr().err.split())  # as one line, however the console wrapped
    assert "'logs/tiny/2026120-144656' does not exist" in err
    assert "newest last: logs/tiny/20261201-144656, logs/tiny/20261201-150000." in err
    assert "last.ckpt" not in err
    assert not (runs / "2026120-144656").exists()  # nothing created


def test_resume_of_a_folder_that_does_not_exist_without_any_run(tiny_recipe, capsys):
    assert main(["run", str(tiny_recipe), "--resume", "logs/tiny/nope"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'logs/tiny/nope' does not exist" in err
    assert "'tiny' has no run folders under logs/tiny/: start it without --resume" in err


def test_resume_of_the_recipe_s_folder_continues_its_newest_run(tiny_recipe):
    from mlstrategy.runs.run import resume_dir

    runs = tiny_recipe.parent / "logs" / "tiny"
    for name in ("20261201-150000-2", "20261201-150000-10", "20261201-144656"):
        checkpoint_path(runs / name, "last").parent.mkdir(parents=True)
        checkpoint_path(runs / name, "last").write_bytes(b"")
    (runs / "20261201-150000-10" / "errors.csv").write_text("later writes do not count\n")
    newest = runs / "20261201-150000-10"  # -10 after -2, and later writes do not count
    for given in ("logs/tiny", "logs/tiny/", str(runs)):
        assert resume_dir(given, tiny_recipe).resolve() == newest.resolve()
    one = resume_dir("logs/tiny/20261201-144656", tiny_recipe)
    assert one.resolve() == (runs / "20261201-144656").resolve()
