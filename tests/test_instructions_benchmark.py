"""benchmarks/instructions.py: reading cachegrind's counts, placing functions, its errors."""

from __future__ import annotations

import os
import subprocess
import sys

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
# functions of one file and one of another; trailing zero counts may be left out of a line.
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
        ("???", CHECK_KERNEL, "the guard's check kernel"),
        ("/x/Python-3.11.7/Objects/dictobject.c", "_Py_dict_lookup", "the Python interpreter"),
        ("???", "at::TensorIteratorBase::build(at::TensorIteratorConfig&)", "torch's operator"),
        ("???", "void c10::function_ref<void (char**)>::callback_fn<at::native::add>", "torch's"),
        ("???", "GetterBase<PropertyGrad>::getter(THPVariable*, void*)", "torch's operator"),
        ("???", "pybind11::detail::all_type_info_get_cache(_typeobject*)", "pybind11"),
        ("./malloc/./malloc/malloc.c", "_int_malloc", "memory allocation"),
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


def _script(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"PATH": path} if path is not None else {})}
    return subprocess.run(
        [sys.executable, str(BENCH / "instructions.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_without_valgrind_the_script_says_what_to_install(tmp_path):
    done = _script(path=str(tmp_path))  # a PATH with no valgrind on it
    assert done.returncode != 0
    assert "needs valgrind on the PATH: apt install valgrind" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_seeds_are_named():
    done = _script("--seeds", "0,one")
    assert done.returncode == 2 and "--seeds takes comma-separated integers" in done.stderr


def test_a_section_whose_program_is_missing_is_skipped_not_failed(tmp_path):
    section = figures._benchmark("instructions", needs="no-such-program-here")
    with pytest.raises(figures.Skipped, match="needs no-such-program-here"):
        section(tmp_path)


@pytest.mark.slow
def test_the_child_fits_both_sides(tmp_path):
    for side in instructions.SIDES:
        done = _script("--child", side, "1")
        assert done.returncode == 0, done.stderr[-2000:]
