"""Every behaviour claim in the READMEs names its tests in a ``<!-- tested: ... -->`` comment
beside it; each named test must exist, and no claim may silently lose its comment."""

from __future__ import annotations

import re

import pytest

from conftest import REPO

READMES = [REPO / "README.md", REPO / "benchmarks" / "README.md"]
COMMENT = re.compile(r"<!--\s*tested:\s*(.*?)\s*-->", re.S)
# Comments placed when the claims were annotated (README.md 48, benchmarks/README.md 6).
MIN_COMMENTS = {"README.md": 48, "benchmarks/README.md": 6}


def claim_tests(text: str) -> list[list[str]]:
    """The test ids of each ``tested`` comment, in order.

    >>> claim_tests("a <!-- tested: tests/x.py::test_a tests/y.py::test_b[1] --> b")
    [['tests/x.py::test_a', 'tests/y.py::test_b[1]']]
    """
    return [match.group(1).split() for match in COMMENT.finditer(text)]


def _ids() -> list[str]:
    return sorted(
        {
            test_id
            for readme in READMES
            for ids in claim_tests(readme.read_text())
            for test_id in ids
        }
    )


def test_each_readme_keeps_its_claim_tests():
    for readme in READMES:
        name = readme.relative_to(REPO).as_posix()
        comments = claim_tests(readme.read_text())
        assert len(comments) >= MIN_COMMENTS[name], f"{name} lost tested comments"
        assert all(comments), f"{name} has an empty tested comment"


@pytest.mark.parametrize("test_id", _ids())
def test_every_named_test_exists(test_id):
    path, sep, name = test_id.partition("::")
    assert sep and path.startswith("tests/") and path.endswith(".py"), f"{test_id}: not a test id"
    file = REPO / path
    assert file.is_file(), f"{test_id}: no file {path}"
    function = re.sub(r"\[.*\]$", "", name)  # a parametrized id names its function
    assert re.search(rf"^\s*def {re.escape(function)}\(", file.read_text(), re.M), (
        f"{test_id}: {path} has no def {function}"
    )


def test_a_missing_test_is_caught(tmp_path):
    assert claim_tests("<!--tested:\n  tests/a.py::test_x\n-->") == [["tests/a.py::test_x"]]
    with pytest.raises(AssertionError, match="no file"):
        test_every_named_test_exists("tests/not_a_file.py::test_nothing")
    with pytest.raises(AssertionError, match="has no def test_nothing"):
        test_every_named_test_exists("tests/test_readme_claims.py::test_nothing[1]")
