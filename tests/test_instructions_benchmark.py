"""benchmarks/instructions.py: reading cachegrind's counts, placing functions, its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import figures  # noqa: E402
import instructions  # noqa: E402

CHECK_KERNEL = (
    "void c10::function_ref<void (char**, long const*, long, long)>::callback_fn<at::native::"
    "(anonymous namespace)::_amp_foreach_non_finite_check_and_unscale_cpu_kernel>(long, char**)"
)
# A cachegrind output file in the real format (valgrind 3.x, --cache-sim=yes), cut short: two
# functions of one file and one of another. The format lets a line leave out trailing zero
# counts (cachegrind itself writes them all).
CACHEGRIND = f"""\
desc: I1 cache:         32768 B, 64 B, 8-way associative
desc: D1 cache:         32768 B, 64 B, 8-way associative
desc: LL cache:         268435456 B, 64 B, direct-mapped
cmd: python instructions.py --child toolkit 2
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
fl=/tmp/python-build/Python-3.11.7/Python/ceval.c
fn=_PyEval_EvalFrameDefault
128 200 2 1 50 3 0 7 0 0
134 300 1 0 60 1
fn=initialize_locals
10 40
fl=???
fn={CHECK_KERNEL}
1 1000 0 0 400 20 0 0 0 0
summary: 1540 3 1 510 24 0 7 0 0
"""


def test_read_counts_gives_the_totals_and_each_functions_instructions(tmp_path):
    path = tmp_path / "out.cachegrind"
    path.write_text(CACHEGRIND)
    totals, per_fn = instructions.read_counts(path)
    assert totals["Ir"] == 1540 and totals["D1mr"] == 24 and totals["I1mr"] == 3
    ceval = "/tmp/python-build/Python-3.11.7/Python/ceval.c"
    assert per_fn[(ceval, "_PyEval_EvalFrameDefault")] == 500
    assert per_fn[(ceval, "initialize_locals")] == 40
    assert per_fn[("???", CHECK_KERNEL)] == 1000
    assert sum(per_fn.values()) == totals["Ir"]


def test_a_file_without_a_summary_is_named(tmp_path):
    path = tmp_path / "cut.cachegrind"
    path.write_text(CACHEGRIND.rsplit("summary:", 1)[0])
    with pytest.raises(SystemExit, match=r"cut\.cachegrind: no summary line"):
        instructions.read_counts(path)


@pytest.mark.parametrize(
    ("fl", "fn", "where"),
    [
        ("???", CHECK_KERNEL, "the guard's check"),
        ("/x/Python-3.11.7/Objects/dictobject.c", "_Py_dict_lookup", "the Python interpreter"),
        (
            "???",
            "at::TensorIteratorBase::build(at::TensorIteratorConfig&)",
            "torch's other operators",
        ),
        ("???", "void c10::function_ref<void (char**)>::callback_fn<at::native::add>", "torch's"),
        ("???", "GetterBase<PropertyGrad>::getter(THPVariable*, void*)", "torch's other operators"),
        ("???", "pybind11::detail::all_type_info_get_cache(_typeobject*)", "pybind11"),
        ("./malloc/./malloc/malloc.c", "_int_malloc", "memory allocation"),
        ("/x/Python-3.11.7/Objects/obmalloc.c", "_PyObject_Malloc", "the Python interpreter"),
        ("./elf/../sysdeps/x86_64/tls_get_addr.S", "__tls_get_addr", "other"),
    ],
)
def test_each_function_is_placed_by_its_names(fl, fn, where):
    assert instructions.place(fl, fn).startswith(where)


def test_per_epoch_is_the_difference_over_the_epochs_between_the_fits():
    first, last = {"Ir": 100, "D1mr": 7}, {"Ir": 1100, "D1mr": 27, "only": 50}
    span = instructions.EPOCHS[1] - instructions.EPOCHS[0]
    assert instructions.per_epoch(first, last) == {
        "Ir": 1000 / span,
        "D1mr": 20 / span,
        "only": 50 / span,
    }


def _main(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["instructions.py", *args])
    instructions.main()


def test_without_valgrind_the_script_says_what_to_install(monkeypatch):
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="needs valgrind on the PATH: apt install valgrind"):
        _main(monkeypatch)


def test_bad_seeds_are_named(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_:
        _main(monkeypatch, "--seeds", "0,one")
    assert exit_.value.code == 2
    assert "--seeds takes comma-separated integers" in capsys.readouterr().err


def _fake_run(counts: dict[tuple[str, int, int], dict[str, int]]):
    """A stand-in for one valgrind run: writes a cachegrind file with these per-function
    instructions (and a first-level miss per 10 instructions)."""

    def run(side: str, epochs: int, seed: int, out: Path, prefix: list[str]) -> Path:
        fns = counts[(side, epochs, seed)]
        lines = ["events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw"]
        for fn, ir in fns.items():
            lines += ["fl=???", f"fn={fn}", f"1 {ir} 1 0 0 {ir // 10}"]
        total = sum(fns.values())
        misses = f"{total} {total // 10} 0 {total} {total // 10} 0 {total} {total // 20} 0"
        lines.append(f"summary: {misses}")
        path = out / f"{side}.{epochs}.{seed}.cachegrind"
        path.write_text("\n".join(lines) + "\n")
        return path

    return run


def test_measure_gives_per_epoch_ratios_by_seed_and_the_extra_by_place(monkeypatch, tmp_path):
    py, check = "_PyEval_EvalFrameDefault", CHECK_KERNEL
    span = instructions.EPOCHS[1] - instructions.EPOCHS[0]
    start = {py: 5000, check: 0}
    # Per epoch: the floor runs 1000 Python instructions; the toolkit 1050 (seed 0) or 1030
    # (seed 1) and 20 in the check kernel.
    counts = {}
    for seed, tool_py in ((0, 1050), (1, 1030)):
        for e, n in zip(instructions.EPOCHS, (0, span), strict=True):
            counts[("floor", e, seed)] = {py: start[py] + 1000 * n}
            counts[("toolkit", e, seed)] = {py: start[py] + tool_py * n, check: 20 * n}
    monkeypatch.setattr(instructions, "_valgrind", _fake_run(counts))
    rows, parts = instructions.measure(tmp_path, [0, 1])
    ir = rows[0]
    assert ir[0] == "instructions"
    # The means: toolkit (1070 + 1050) / 2 = 1060 a epoch, floor 1000.
    assert ir[3] == "1.060x" and ir[4] == "1.070x, 1.050x"
    by_place = {r[0]: r for r in parts}
    assert by_place["the Python interpreter"][1] == "+0.00M"  # 40 instructions, in millions
    assert by_place["the Python interpreter"][2] == "+67%"  # 40 of the 60 extra
    assert by_place["the guard's check (its kernel and dispatch)"][2] == "+33%"
    assert by_place["all"][3] == "+6.00%"


def test_a_failed_run_is_named_and_cancels_the_rest(monkeypatch, tmp_path):
    calls = []

    def failing(side: str, epochs: int, seed: int, out: Path, prefix: list[str]) -> Path:
        calls.append((side, epochs, seed))
        raise SystemExit(f"valgrind {side} {epochs} epochs failed")

    monkeypatch.setattr(instructions, "_valgrind", failing)
    with pytest.raises(SystemExit, match="epochs failed"):
        instructions.measure(tmp_path, [0, 1, 2])
    assert len(calls) < 3 * len(instructions.SIDES) * len(instructions.EPOCHS)


def test_a_section_whose_program_is_missing_keeps_its_stored_figures(monkeypatch, tmp_path):
    stored = tmp_path / "figures.json"
    kept = {"machine": "m", "date": "2026-01-01", "commit": "abc", "seconds": 1.0}
    stored.write_text(json.dumps({"sections": {"a": {**kept, "figures": {"x": 1}}}}))
    monkeypatch.setattr(figures, "FIGURES", stored)
    monkeypatch.setattr(figures, "REPO", tmp_path)
    needs_nothing_here = figures._benchmark("a", needs="no-such-program-here")
    monkeypatch.setattr(
        figures, "SECTIONS", {"a": needs_nothing_here, "b": lambda scratch: {"y": 2}}
    )
    figures.SECTIONS["b"].__doc__ = "b"
    monkeypatch.setattr(sys, "argv", ["figures.py"])
    figures.main()
    written = json.loads(stored.read_text())["sections"]
    assert written["a"] == {**kept, "figures": {"x": 1}}
    assert written["b"]["figures"] == {"y": 2}


@pytest.mark.slow
def test_the_child_fits_both_sides():
    for side in instructions.SIDES:
        done = subprocess.run(
            [sys.executable, str(BENCH / "instructions.py"), "--child", side, "1"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
