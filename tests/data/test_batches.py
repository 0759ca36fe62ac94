import pytest
import torch

from mlstrategy.data import ArrayDataModule, Digits, InMemoryBatches


def _epoch(batches: InMemoryBatches, epoch: int) -> list[torch.Tensor]:
    batches.sampler.set_epoch(epoch)
    return [y for _, y in batches]


def test_shuffled_epoch_visits_every_example_once_in_a_seeded_order():
    x = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10)
    batches = InMemoryBatches(x, y, batch_size=4, shuffle=True, seed=1)
    first = _epoch(batches, 0)
    assert [len(b) for b in first] == [4, 4, 2] and len(batches) == 3
    assert sorted(torch.cat(first).tolist()) == list(range(10))
    # Features travel with their labels through the gather.
    for xb, yb in batches:
        assert torch.equal(xb[:, 0].long(), yb)
    assert all(torch.equal(a, b) for a, b in zip(first, _epoch(batches, 0), strict=True))
    assert not torch.equal(torch.cat(first), torch.cat(_epoch(batches, 1)))


def test_null_batch_size_is_the_whole_set_and_unshuffled_batches_are_views():
    x, y = torch.randn(7, 3), torch.arange(7)
    whole = list(InMemoryBatches(x, y, batch_size=None))
    assert len(whole) == 1 and torch.equal(whole[0][0], x)
    first_x, _ = next(iter(InMemoryBatches(x, y, batch_size=3)))
    assert first_x.data_ptr() == x.data_ptr()  # a slice, not a copy


def test_distributed_ranks_split_the_data_without_overlap():
    x, y = torch.zeros(10, 1), torch.arange(10)
    seen = [
        torch.cat([b for _, b in InMemoryBatches(x, y, 2, shuffle=True, rank=r, world_size=2)])
        for r in (0, 1)
    ]
    assert len(seen[0]) == len(seen[1]) == 5
    assert set(seen[0].tolist()).isdisjoint(seen[1].tolist())


def test_a_split_smaller_than_the_process_count_is_refused_naming_it_and_the_fix():
    # Two dev examples on two processes: one each, evaluated in order, none twice.
    x, y = torch.zeros(2, 1), torch.arange(2)
    shares = [
        [b.tolist() for _, b in InMemoryBatches(x, y, 4, rank=r, world_size=2)] for r in (0, 1)
    ]
    assert shares == [[[0]], [[1]]]
    # One example on two: the second process would have no batch, skip its loop and leave the
    # first waiting in the epoch's reduction. Refused before any process starts one.
    with pytest.raises(ValueError, match=r"^The dev split has 1 example\(s\), fewer than the 2 "):
        InMemoryBatches(x[:1], y[:1], 4, rank=1, world_size=2, name="the dev split")
    with pytest.raises(ValueError, match=r"--trainer\.devices"):
        InMemoryBatches(x[:1], y[:1], 4, shuffle=True, rank=0, world_size=2)
    # The datamodule names its split.
    dm = ArrayDataModule(Digits(), dev_fraction=0.1, batch_size=8)
    assert dm._batch_kwargs(False, "dev")["name"] == "the dev split"


def test_state_dict_resumes_mid_epoch_in_the_same_order():
    x, y = torch.zeros(10, 1), torch.arange(10)
    batches = InMemoryBatches(x, y, batch_size=3, shuffle=True, seed=4)
    batches.sampler.set_epoch(2)
    full = [b.tolist() for _, b in batches]
    it = iter(batches)
    next(it), next(it)
    state = batches.state_dict()
    assert state == {"epoch": 2, "served": 2}

    resumed = InMemoryBatches(x, y, batch_size=3, shuffle=True, seed=4)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    assert [b.tolist() for _, b in resumed] == full[2:]
    # A state saved at the end of an epoch does not shorten the next one.
    resumed.load_state_dict({"epoch": 2, "served": 4})
    resumed.sampler.set_epoch(3)
    assert len([b for _, b in resumed]) == 4
