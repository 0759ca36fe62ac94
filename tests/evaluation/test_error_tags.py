"""The course's tag table: counts, shares and ceilings checked against numbers done by hand."""

from __future__ import annotations

import pytest

from mlstrategy.evaluation.error_tags import parse_tags, tag_table


def test_ceilings_of_a_hand_made_sheet_equal_the_hand_computed_numbers():
    # 200 dev examples, 10 errors, every one tagged (several tags on some rows).
    sheet = [
        "blurry",
        "blurry;dog",
        "dog",
        "great cat",
        "blurry",
        "blurry; mislabelled",
        "dog",
        "mislabelled",
        "blurry;great cat",
        "blurry",
    ]
    table = tag_table([parse_tags(c) for c in sheet], dev_errors=10, n_dev=200)
    by_tag = {r.tag: r for r in table.rows}
    # count, share = count / 10, ceiling = (10 - count) / 200
    expected = {"blurry": 6, "dog": 3, "great cat": 2, "mislabelled": 2}
    for tag, count in expected.items():
        assert by_tag[tag].count == count
        assert by_tag[tag].share == pytest.approx(count / 10)
        assert by_tag[tag].ceiling == pytest.approx((10 - count) / 200)
        assert by_tag[tag].gain == pytest.approx(count / 200)
    assert [r.tag for r in table.rows] == ["blurry", "dog", "great cat", "mislabelled"]
    assert table.dev_error == pytest.approx(0.05)
    assert table.examined == 10 and table.untagged == 0 and not table.notes


def test_a_sample_of_the_errors_scales_its_shares_to_all_of_them():
    # 100 of 400 errors tagged (the course's sample); 25 of them "blurry": a quarter of all.
    tags = [["blurry"]] * 25 + [["other"]] * 75 + [[]] * 300
    table = tag_table(tags, dev_errors=400, n_dev=5000)
    blurry = next(r for r in table.rows if r.tag == "blurry")
    assert blurry.share == pytest.approx(0.25)
    assert blurry.ceiling == pytest.approx(0.08 * 0.75)  # dev error 8%, a quarter fixed
    assert table.examined == 100 and table.untagged == 300
    assert "100 of 400" in table.notes[0]


def test_a_tag_repeated_in_one_row_counts_once():
    assert parse_tags("dog; dog ;") == ["dog"]
    table = tag_table([["dog", "dog"], ["cat"]], dev_errors=2, n_dev=10)
    assert {r.tag: r.count for r in table.rows} == {"dog": 1, "cat": 1}


def test_sheets_that_cannot_be_this_runs_are_refused():
    with pytest.raises(ValueError, match="No row of the sheet has a tag"):
        tag_table([[], []], dev_errors=2, n_dev=10)
    with pytest.raises(ValueError, match="3 tagged rows, but the run has only 2"):
        tag_table([["a"], ["b"], ["c"]], dev_errors=2, n_dev=10)
