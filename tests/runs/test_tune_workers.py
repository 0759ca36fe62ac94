"""Workers sharing one study: two `mlstrategy tune` workers (a process of its own and this
one) on a journal file, and on a real PostgreSQL server started from Debian's binaries; N
trials in all, none lost or duplicated."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from mlstrategy.cli import main
from mlstrategy.runs.tune_storage import open_storage

RECIPE = {
    "model": {
        "class_path": "mlstrategy.models.LogisticRegression",
        "init_args": {"optimizer": "gd", "learning_rate": 0.5},
    },
    "data": {
        "class_path": "mlstrategy.data.ArrayDataModule",
        "init_args": {"source": {"class_path": "mlstrategy.data.BreastCancer"}, "batch_size": None},
    },
    "trainer": {"max_epochs": 2},
    "evaluation": {"optimize": "dev/error", "latency_repeats": 3},
    "search": {"model.init_args.learning_rate": {"low": 0.01, "high": 1.0, "log": True}},
}


# Each trial, as it starts fitting, waits (four minutes at most) until both workers have
# started one: a worker that started late (importing torch on a loaded machine) would
# otherwise find the budget spent.
BARRIER = """
import os, time
from pathlib import Path
from lightning.pytorch.callbacks import Callback


class BothWorkersStarted(Callback):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_fit_start(self, trainer, pl_module) -> None:
        self.folder.mkdir(exist_ok=True)
        (self.folder / str(os.getpid())).touch()
        deadline = time.monotonic() + 240
        while len(list(self.folder.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
"""


def _two_workers(
    cwd: Path, storage: str, trials: int, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, str]]:
    """Two workers on one study, started together: an `mlstrategy tune` process, and this
    process running the same command; both run trials, side by side (BARRIER)."""
    hooks = cwd / "hooks"
    hooks.mkdir()
    (hooks / "tune_barrier.py").write_text(BARRIER)
    monkeypatch.syspath_prepend(str(hooks))
    barrier = {
        "class_path": "tune_barrier.BothWorkersStarted",
        "init_args": {"folder": str(cwd / "started")},
    }
    recipe = cwd / "shared.yaml"
    recipe.write_text(
        yaml.safe_dump({**RECIPE, "trainer": {**RECIPE["trainer"], "callbacks": [barrier]}})
    )
    args = ["tune", str(recipe), "--trials", str(trials), "--storage", storage]
    args += ["--study", "shared", "--pruner", "none", "--allow-module", "tune_barrier"]
    exe = Path(sys.executable).with_name("mlstrategy")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(hooks)}
    other = subprocess.Popen(
        [str(exe), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        here = main(args)
        out, _ = other.communicate(timeout=300)
    finally:
        if other.poll() is None:
            other.kill()
    return [(other.returncode, out), (here, "")]


def _check_shared_study(storage: str, trials: int, cwd: Path) -> None:
    study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    ran = [t for t in study.trials if not t.user_attrs.get("surplus")]
    assert sorted(t.number for t in ran) == list(range(trials))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in ran)
    rates = [t.params["model.init_args.learning_rate"] for t in ran]
    assert len(set(rates)) == trials  # no point sampled twice
    folders = {t.user_attrs["run_dir"] for t in ran}
    assert len(folders) == trials and all((cwd / f / "metrics.json").is_file() for f in folders)
    assert len({t.user_attrs["worker"] for t in ran}) == 2  # both workers ran trials


@pytest.mark.slow
def test_two_workers_on_one_journal_file_run_n_trials_in_all(in_tmp, monkeypatch):
    storage = f"journal:{in_tmp / 'study.journal'}"
    for returncode, out in _two_workers(in_tmp, storage, trials=4, monkeypatch=monkeypatch):
        assert returncode == 0, out[-3000:]
    _check_shared_study(f"journal:{in_tmp / 'study.journal'}", 4, in_tmp)


def _postgres_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    bindir = Path(
        subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
    )
    return bindir if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file() else None


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root: run the server as the postgres system user then.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture
def postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 and a free port, in a temporary folder; stopped after."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (pg_config --bindir)")
    root = Path(tempfile.mkdtemp(prefix="mlstrategy-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    subprocess.run(
        # -N: no fsync of a throwaway cluster (initdb's slowest part).
        _as_postgres(
            [str(bindir / "initdb"), "-N", "-D", str(data), "-A", "trust", "-U", "postgres"]
        ),
        check=True,
        capture_output=True,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w"]
    subprocess.run(_as_postgres([*ctl, "-o", options, "start"]), check=True, capture_output=True)

    def stop() -> None:
        subprocess.run(_as_postgres([*ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    request.addfinalizer(stop)
    for _ in range(50):  # -w waits for it; be sure it takes connections
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.mark.slow
def test_two_workers_on_a_postgresql_server_share_one_study(in_tmp, postgres, monkeypatch):
    for returncode, out in _two_workers(in_tmp, postgres, trials=2, monkeypatch=monkeypatch):
        assert returncode == 0, out[-3000:]
    _check_shared_study(postgres, 2, in_tmp)
