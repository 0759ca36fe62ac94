"""scripts/tensorboard_screenshots.py: the URLs and commands it builds, a TensorBoard it starts
on 127.0.0.1 and stops, and (where Chromium is installed) the three screenshots."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "tensorboard_screenshots", REPO / "scripts" / "tensorboard_screenshots.py"
)
assert _spec is not None and _spec.loader is not None
shots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shots)


def _tiny_logs(root: Path) -> Path:
    """A logs folder with one run: a cost scalar per epoch and one image."""
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(root / "logs" / "quickstart" / "1")) as writer:
        for epoch, cost in enumerate((0.7, 0.5, 0.4)):
            writer.add_scalar("cost", cost, epoch)
        writer.add_image("confusion_matrix", np.zeros((3, 8, 8), dtype=np.uint8), 0)
    return root / "logs"


def test_urls_name_each_tab_on_this_machine_only():
    assert shots.tab_url(6123, "images") == "http://127.0.0.1:6123/#images"
    assert shots.tab_url(6123, "scalars").startswith("http://127.0.0.1:6123/#scalars")
    with pytest.raises(ValueError, match="one of"):
        shots.tab_url(6123, "graphs ")


def test_the_server_command_binds_127_0_0_1_and_never_all_interfaces(tmp_path):
    command = shots.tensorboard_command(tmp_path, 6123)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "6123"
    assert command[command.index("--logdir") + 1] == str(tmp_path)
    assert "--bind_all" not in command


def test_a_free_port_is_one_nothing_listens_on():
    port = shots.free_port()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow  # TensorBoard takes a few seconds to start (Chromium as many)
def test_the_server_serves_the_logs_runs_then_is_stopped(tmp_path):
    logdir = _tiny_logs(tmp_path)
    with shots.tensorboard_server(logdir) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{base}/data/runs", timeout=5) as response:
            assert json.loads(response.read()) == ["quickstart/1"]
        port = int(base.rsplit(":", 1)[1])
        if shutil.which("chromium") is not None:  # the browser part, where there is one
            url = shots.tab_url(port, "images")
            png = shots.screenshot("chromium", url, tmp_path / "i.png", (800, 600), 3000)
            data = png.read_bytes()
            assert data[:4] == b"\x89PNG"
            size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
            assert size == (800, 600)
    with socket.socket() as sock:  # stopped: nothing listens there any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_missing_logs_folder_is_named(tmp_path):
    with (
        pytest.raises(FileNotFoundError, match="is not a folder"),
        shots.tensorboard_server(tmp_path / "nope"),
    ):
        pass
