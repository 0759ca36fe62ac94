"""Data: sources, splits, normalization and fast in-memory batches."""

from mlstrategy.data.augment import (
    GaussianBlurPerExample,
    HorizontalFlipPerExample,
    PerExample,
    RandomCropPerExample,
    WholeBatch,
)
from mlstrategy.data.batches import InMemoryBatches
from mlstrategy.data.datamodule import ArrayDataModule
from mlstrategy.data.images import DigitImages, ImageFolderDataModule
from mlstrategy.data.mismatch import MismatchDataModule
from mlstrategy.data.mismatch_images import MismatchImageFolderDataModule
from mlstrategy.data.multitask import (
    LabelledArrays,
    LabelsFile,
    MismatchMultiTaskDataModule,
    MultiTaskDataModule,
)
from mlstrategy.data.normalization import Standardize
from mlstrategy.data.phone_digits import PhoneDigits
from mlstrategy.data.regression import Diabetes, NoisyCurve, RegressionDataModule
from mlstrategy.data.scenes import StreetScenes
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
from mlstrategy.data.synthesis import Shift, TargetContrast, TargetNoise
from mlstrategy.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "MNIST",
    "MNIST1D",
    "ArrayDataModule",
    "ArrayFile",
    "ArraySource",
    "Arrays",
    "BreastCancer",
    "Diabetes",
    "DigitImages",
    "Digits",
    "FashionMNIST",
    "Flower",
    "GaussianBlurPerExample",
    "HorizontalFlipPerExample",
    "ImageFolderDataModule",
    "InMemoryBatches",
    "LabelledArrays",
    "LabelsFile",
    "MismatchDataModule",
    "MismatchImageFolderDataModule",
    "MismatchMultiTaskDataModule",
    "Moons",
    "MultiTaskDataModule",
    "NoisyCurve",
    "PerExample",
    "PhoneDigits",
    "RandomCropPerExample",
    "RegressionDataModule",
    "Shift",
    "Standardize",
    "StreetScenes",
    "TargetContrast",
    "TargetNoise",
    "WholeBatch",
    "stratified_split",
]
