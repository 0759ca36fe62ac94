"""Where a tune keeps its Optuna study: SQLite in the study folder, a journal file, or a database.

Optuna is the distributed engine: workers on one machine share a journal file
(``journal:PATH``), workers on many machines a PostgreSQL or MySQL URL, and every worker runs the
same ``mlstrategy tune`` command. The toolkit writes no coordination of its own.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from mlstrategy.run_folder import TUNE_STORAGE_FILE

_RDB_SCHEMES = ("sqlite", "postgresql", "mysql")
_FORMS = (
    "Give journal:PATH (an Optuna journal file, for workers on one machine or a shared disk), "
    "sqlite:///PATH, or a database URL as Optuna takes it: postgresql://USER:PASSWORD@HOST/DB "
    "or mysql://USER:PASSWORD@HOST/DB (workers on many machines). Without --storage the study "
    f"lives in the study folder's {TUNE_STORAGE_FILE}."
)
# A worker that dies mid-trial stops beating; after the grace period another worker's next
# trial marks it failed (RDB storages; the journal has no heartbeat, see reclaim_dead_trials).
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
WORKER_ATTR = "worker"
INTERRUPTED_ATTR = "interrupted"


def storage_url(given: str | None, study_dir: Path) -> str:
    """The storage as written down in ``study.json``: ``given``, or SQLite in ``study_dir``.

    Raises:
        ValueError: a scheme Optuna does not take here (with the forms it does).

    Example:
        >>> storage_url(None, Path("/s"))
        'sqlite:////s/study.db'
        >>> storage_url("redis://host", Path("/s"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --storage 'redis://host' has the unknown scheme 'redis'. Give journal:PATH...
    """
    if given is None:
        return f"sqlite:///{(study_dir / TUNE_STORAGE_FILE).resolve()}"
    if given.startswith("journal:"):
        path = given.split(":", 1)[1]
        if not path:
            raise ValueError(f"--storage {given!r} names no file. {_FORMS}")
        return f"journal:{Path(path).resolve()}"
    scheme = given.split("://", 1)[0].split("+", 1)[0] if "://" in given else ""
    if scheme not in _RDB_SCHEMES:
        shown = repr(scheme) if scheme else "no scheme"
        raise ValueError(f"--storage {given!r} has the unknown scheme {shown}. {_FORMS}")
    return given


def open_storage(url: str) -> BaseStorage:
    """The Optuna storage ``url`` names, connected (tables created on first use).

    Raises:
        ValueError: the database cannot be reached, or its driver is not installed.
    """
    if url.startswith("journal:"):
        path = Path(url.split(":", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    connect: dict[str, Any] = {} if scheme == "sqlite" else {"connect_timeout": 10}
    if url.startswith("postgresql://") and not find_spec("psycopg") and find_spec("psycopg2"):
        # SQLAlchemy 2.1 reads postgresql:// as psycopg 3; the dev extra installs psycopg2.
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    if scheme == "sqlite" and url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            return _rdb(url, connect)
        except ImportError:
            driver = {"postgresql": "psycopg2-binary", "mysql": "PyMySQL (URL mysql+pymysql://)"}
            raise ValueError(
                f"--storage {_hide_password(url)}: the database driver for {scheme} is not "
                f"installed. pip install {driver.get(scheme, 'the driver SQLAlchemy names')}."
            ) from None
        except Exception as err:  # sqlalchemy's OperationalError and friends: not reachable
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            if attempt < 2 and ("duplicate key" in reason or "already exists" in reason):
                # Workers started together all create Optuna's tables; the losers retry and
                # find them made.
                time.sleep(1.0 + attempt)
                continue
            raise ValueError(
                f"--storage {_hide_password(url)}: cannot reach the database ({reason}). Check "
                "that the server runs and accepts connections from this machine, and the user, "
                "password and database name in the URL."
            ) from None
    raise AssertionError("unreachable")


def _rdb(url: str, connect: dict[str, Any]) -> RDBStorage:
    with warnings.catch_warnings():
        # Heartbeats are "experimental" in Optuna 5; the toolkit relies on them knowingly.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs={"connect_args": connect} if connect else None,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=_mark_interrupted,
        )


def _hide_password(url: str) -> str:
    """``url`` with any password replaced by ``***``.

    Example:
        >>> _hide_password("postgresql://me:secret@db:5432/optuna")
        'postgresql://me:***@db:5432/optuna'
    """
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def worker_id() -> str:
    """This process, as recorded on each trial it runs: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _mark_interrupted(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's callback for a trial whose worker stopped beating: not a result, not counted."""
    study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)


def reclaim_dead_trials(study: optuna.Study) -> int:
    """Mark failed (and interrupted) the running trials whose worker was this machine's and is
    gone: a tune killed with SIGKILL, rerun at once. Returns how many.

    Workers on other machines are reclaimed by Optuna's heartbeat on database storages.
    """
    host = socket.gethostname()
    reclaimed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        reclaimed += 1
    return reclaimed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
