"""Atomic writes: a kill at any moment leaves the previous version loadable."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

from mlstrategy.io import AtomicCheckpointIO, write_bytes_atomic, write_json_atomic

_WRITER = """
import sys, torch
from mlstrategy.io import AtomicCheckpointIO
io = AtomicCheckpointIO()
i = 0
while True:
    i += 1
    # ~8 MB per write so a kill often lands mid-write.
    io.save_checkpoint({"step": i, "w": torch.full((2_000_000,), float(i))}, sys.argv[1])
"""


@pytest.mark.slow
def test_killed_while_writing_checkpoints_the_previous_one_always_loads(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 0, "w": torch.zeros(2_000_000)}, path)
    rng = random.Random(0)
    for _ in range(3):
        before = path.stat().st_mtime_ns
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
        deadline = time.monotonic() + 60
        while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
            time.sleep(0.01)  # wait for the writer's first complete write
        time.sleep(rng.uniform(0.0, 0.2))  # then kill it somewhere in a later write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = AtomicCheckpointIO().load_checkpoint(path)
        assert torch.all(ckpt["w"] == ckpt["step"])  # whole, never a mix or a torn file
    assert ckpt["step"] > 0


def test_json_write_replaces_whole_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_mode_the_umask_gives_like_open(tmp_path, umask):
    previous = os.umask(umask)
    try:
        (tmp_path / "plain.txt").write_text("x")  # the reference: what open() makes
        write_json_atomic(tmp_path / "metrics.json", {"a": 1})
        write_bytes_atomic(tmp_path / "figure.png", b"\x89PNG")
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(2)}, tmp_path / "last.ckpt")
    finally:
        os.umask(previous)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~umask
    for name in ("metrics.json", "figure.png", "last.ckpt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
