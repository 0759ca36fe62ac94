"""Screenshots of TensorBoard's Scalars, HParams and Images tabs for a logs folder.

Starts ``tensorboard --logdir LOGS --host 127.0.0.1 --port <a free port>`` (this machine
only, never ``--bind_all``), waits until it has read the runs, takes one headless-Chromium
screenshot per tab (``chromium --headless --screenshot=... --window-size=...
--virtual-time-budget=...``, so the page's scripts run and draw before the picture is taken),
writes ``scalars.png``, ``hparams.png`` and ``images.png``, and stops the server it started.

    python scripts/tensorboard_screenshots.py logs --out screenshots

Needs Chromium (``apt-get install chromium`` on Debian; ``--chromium PATH`` for another
build, e.g. google-chrome) and the project's virtual environment (for TensorBoard).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
# TensorBoard's dashboards, by the plugin name its URL fragment uses, and extra URL state:
# Scalars without smoothing (the course's cost curves as logged).
TABS = {"scalars": "&_smoothingWeight=0", "hparams": "", "images": ""}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tab_url(port: int, tab: str, host: str = HOST) -> str:
    """The URL of one TensorBoard dashboard.

    Example:
        >>> tab_url(6006, "scalars")
        'http://127.0.0.1:6006/#scalars&_smoothingWeight=0'
        >>> tab_url(6006, "hparams")
        'http://127.0.0.1:6006/#hparams'
    """
    if tab not in TABS:
        raise ValueError(f"tab={tab!r}: one of {sorted(TABS)}.")
    return f"http://{host}:{port}/#{tab}{TABS[tab]}"


def tensorboard_command(logdir: Path, port: int, host: str = HOST) -> list[str]:
    """TensorBoard from this Python's environment, serving ``logdir`` on ``host:port`` only."""
    beside = Path(sys.executable).with_name("tensorboard")
    program = [str(beside)] if beside.is_file() else [sys.executable, "-m", "tensorboard.main"]
    return [*program, "--logdir", str(logdir), "--host", host, "--port", str(port)]


def chromium_command(
    browser: str,
    url: str,
    png: Path,
    window: tuple[int, int] = (1920, 1080),
    budget_ms: int = 20_000,
    profile: Path | None = None,
) -> list[str]:
    """Headless Chromium taking one screenshot of ``url`` once ``budget_ms`` of virtual time
    have passed (the page's timers and requests run; idle time is skipped).

    Example:
        >>> cmd = chromium_command("chromium", "http://127.0.0.1:1/#hparams", Path("h.png"))
        >>> [a for a in cmd if a.startswith(("--screenshot", "--window", "--virtual"))]
        ['--screenshot=h.png', '--window-size=1920,1080', '--virtual-time-budget=20000']
    """
    width, height = window
    return [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        *([f"--user-data-dir={profile}"] if profile is not None else []),
        f"--screenshot={png}",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
        url,
    ]


def find_browser(given: str | None = None) -> str:
    """The Chromium to use: ``given``, or the first of :data:`BROWSERS` on the PATH.

    Raises:
        FileNotFoundError: none found.
    """
    for name in [given] if given else BROWSERS:
        found = shutil.which(name) if name else None
        if found:
            return found
    raise FileNotFoundError(
        f"No Chromium found ({given or ', '.join(BROWSERS)}). Install it (Debian: "
        "apt-get install -y chromium) or pass --chromium PATH."
    )


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


@contextlib.contextmanager
def tensorboard_server(
    logdir: Path, port: int | None = None, timeout: float = 90.0, host: str = HOST
) -> Iterator[str]:
    """Run TensorBoard on ``logdir`` until the block ends; yield its base URL once it answers
    and lists at least one run. The server is stopped (terminated, then killed) on the way out.

    Raises:
        FileNotFoundError: ``logdir`` does not exist.
        RuntimeError: the server exited, or had no runs after ``timeout`` seconds.
    """
    if not logdir.is_dir():
        raise FileNotFoundError(f"{logdir} is not a folder; pass the logs folder to show.")
    port = port or free_port(host)
    base = f"http://{host}:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            tensorboard_command(logdir, port, host), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_for_runs(server, log, f"{base}/data/runs", timeout, logdir)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_for_runs(server: Any, log: Any, runs_url: str, timeout: float, logdir: Path) -> None:
    """Until the server answers with at least one run (it reads the logs in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"tensorboard exited with {server.returncode}:\n{tail}")
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            if json.loads(_get(runs_url)):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"tensorboard listed no runs of {logdir} in {timeout:g} s.")
        time.sleep(0.5)


def screenshot(
    chromium: str,
    url: str,
    png: Path,
    window: tuple[int, int] = (1920, 1080),
    budget_ms: int = 20_000,
) -> Path:
    """One headless-Chromium screenshot of ``url`` written to ``png`` (a fresh profile)."""
    png = png.resolve()
    with tempfile.TemporaryDirectory() as profile:
        command = chromium_command(chromium, url, png, window, budget_ms, Path(profile))
        subprocess.run(command, check=True, capture_output=True, timeout=budget_ms / 1000 + 60)
    if not png.is_file():
        raise RuntimeError(f"{chromium} wrote no {png}.")
    return png


def take_screenshots(
    logdir: Path,
    out: Path,
    tabs: Sequence[str] = tuple(TABS),
    browser: str | None = None,
    window: tuple[int, int] = (1920, 1080),
    budget_ms: int = 20_000,
) -> list[Path]:
    """One PNG per tab of TensorBoard showing ``logdir``; returns their paths."""
    chromium = find_browser(browser)
    out.mkdir(parents=True, exist_ok=True)
    with tensorboard_server(logdir) as base:
        port = int(base.rsplit(":", 1)[1])
        return [
            screenshot(chromium, tab_url(port, tab), out / f"{tab}.png", window, budget_ms)
            for tab in tabs
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logdir", type=Path, help="the logs folder (tensorboard --logdir)")
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="PNG folder")
    parser.add_argument("--tabs", default=",".join(TABS), help="comma-separated tabs")
    parser.add_argument("--chromium", help="the browser to run (default: chromium on PATH)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument(
        "--budget-ms", type=int, default=20_000, help="virtual time to let the page draw"
    )
    args = parser.parse_args(argv)
    tabs = [t.strip() for t in args.tabs.split(",") if t.strip()]
    for tab in tabs:
        tab_url(0, tab)  # an unknown tab fails before anything starts
    paths = take_screenshots(
        args.logdir, args.out, tabs, args.chromium, (args.width, args.height), args.budget_ms
    )
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
