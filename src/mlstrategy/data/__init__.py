"""Data: sources, splits, normalization and fast in-memory batches."""

from mlstrategy.data.batches import InMemoryBatches
from mlstrategy.data.datamodule import ArrayDataModule
from mlstrategy.data.normalization import Standardize
from mlstrategy.data.sources import (
    MNIST1D,
    ArrayFile,
    Arrays,
    ArraySource,
    BreastCancer,
    Digits,
    Flower,
    Moons,
)
from mlstrategy.data.splits import stratified_split

__all__ = [
    "MNIST1D",
    "ArrayDataModule",
    "ArrayFile",
    "ArraySource",
    "Arrays",
    "BreastCancer",
    "Digits",
    "Flower",
    "InMemoryBatches",
    "Moons",
    "Standardize",
    "stratified_split",
]
