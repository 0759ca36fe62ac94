"""Image data: a folder of images per class (decoded by worker processes), and an offline source
of small RGB digit images for tests and demos of transfer learning.

Geometry (resizing, cropping, augmentation) belongs to the data; the normalization that follows
belongs to the model (a pretrained backbone brings its own mean and standard deviation, saved
with it, so ``predict`` applies the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mlstrategy.data.normalization import Standardize
from mlstrategy.data.sources import Arrays, ArraySource
from mlstrategy.data.splits import stratified_split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm")
_DEV_DIRS = ("dev", "val", "valid", "validation")


class DigitImages(ArraySource):
    """scikit-learn's 8x8 digits as ``size x size`` RGB images in [0, 1]: offline image data.

    Each 8x8 digit (grey levels 0..16) is upsampled bilinearly to the backbone's input size and
    copied into ``channels`` channels, so ImageNet backbones and small ConvNets take it as is.
    ``classes`` picks digits (relabelled ``0..k-1``, named by the digit), which makes a source
    task and a target task from one data set: pretrain on 0-4, transfer to 5-9.

    Args:
        size: Height and width of the images (8 = the originals). The arrays live in memory:
            1,797 images take ``1797 * channels * size^2 * 4`` bytes (22 MB at 32, 1 GB at 224).
        channels: 3 (RGB, what pretrained backbones take) or 1.
        classes: Digits to keep, e.g. ``[5, 6, 7, 8, 9]``; null = all ten.
        labels_per_class: Few labels: keep this many seeded examples of each class as the
            source's train split (the data module carves dev from it) and give every other
            example as the source's own test split. null = all examples, split by fractions.

    Example:
        >>> arrays = DigitImages(size=16, classes=[5, 6], labels_per_class=10).load(seed=0)
        >>> arrays.x.shape, arrays.class_names, float(arrays.x.max()) <= 1.0
        ((20, 3, 16, 16), ['5', '6'], True)
    """

    def __init__(
        self,
        size: int = 32,
        channels: int = 3,
        classes: list[int] | None = None,
        labels_per_class: int | None = None,
    ) -> None:
        if size < 8:
            raise ValueError(f"DigitImages: size={size} must be >= 8 (the digits are 8x8).")
        if channels not in (1, 3):
            raise ValueError(f"DigitImages: channels={channels} must be 1 or 3 (RGB).")
        if classes is not None and (
            len(set(classes)) < 2 or any(c not in range(10) for c in classes)
        ):
            raise ValueError(
                f"DigitImages: classes={classes} must be at least two distinct digits 0..9."
            )
        if labels_per_class is not None and labels_per_class < 2:
            raise ValueError(
                f"DigitImages: labels_per_class={labels_per_class} must be >= 2 (the data module "
                "carves a dev split from them), or null for all examples."
            )
        self.size = size
        self.channels = channels
        self.classes = list(classes) if classes is not None else None
        self.labels_per_class = labels_per_class

    def load(self, seed: int) -> Arrays:
        import torch.nn.functional as F
        from sklearn.datasets import load_digits

        data = load_digits()
        digits = self.classes if self.classes is not None else list(range(10))
        keep = np.isin(data.target, digits)
        y = np.searchsorted(np.array(sorted(digits)), data.target[keep]).astype(np.int64)
        images = torch.from_numpy(data.images[keep].astype(np.float32) / 16.0)[:, None]
        if self.size != 8:
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear")
        x = images.clamp(0, 1).expand(-1, self.channels, -1, -1).contiguous().numpy()
        names = [str(d) for d in sorted(digits)]
        if self.labels_per_class is None:
            return Arrays(x=x, y=y, class_names=names)
        rng = np.random.default_rng(seed)
        labelled = np.zeros(len(y), dtype=bool)
        for k in range(len(digits)):
            members = np.flatnonzero(y == k)
            if len(members) <= self.labels_per_class:
                raise ValueError(
                    f"DigitImages: labels_per_class={self.labels_per_class} leaves no test "
                    f"examples of digit {names[k]} ({len(members)} in all); use fewer."
                )
            labelled[rng.choice(members, self.labels_per_class, replace=False)] = True
        return Arrays(
            x=x[labelled],
            y=y[labelled],
            class_names=names,
            x_test=x[~labelled],
            y_test=y[~labelled],
        )


def write_image_folder(
    arrays: Arrays, root: str | Path, limit_per_class: int | None = None
) -> Path:
    """Write images in [0, 1] as PNG files, one sub-folder per class: an image folder to try
    :class:`ImageFolderDataModule` on without downloading anything.

    Example:
        >>> import tempfile
        >>> root = write_image_folder(DigitImages(size=16).load(0), tempfile.mkdtemp(), 2)
        >>> sorted(p.name for p in (root / "3").iterdir())
        ['00000.png', '00001.png']
    """
    from PIL import Image

    root = Path(root)
    names = arrays.class_names or [str(k) for k in range(int(arrays.y.max()) + 1)]
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        members = np.flatnonzero(arrays.y == k)[:limit_per_class]
        for i, row in enumerate(members):
            image = np.broadcast_to(arrays.x[row], (3, *arrays.x.shape[2:]))
            pixels = (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return root


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a ``uint8`` RGB tensor of shape ``(3, H, W)`` (decoded by Pillow)."""
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    try:
        with Image.open(path) as image:
            return pil_to_tensor(image.convert("RGB"))
    except (OSError, ValueError) as err:
        raise ValueError(f"Cannot decode the image {path}: {err}") from None


class ImageFiles(Dataset):
    """``(transform(image), label)`` for a list of image files, decoded when indexed (in the
    DataLoader's worker processes)."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], transform: nn.Module) -> None:
        self.files = list(files)
        self.labels = list(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(read_image(self.files[i])), self.labels[i]


class ImageFolderDataModule(L.LightningDataModule):
    """Images in one sub-folder per class, decoded and augmented by DataLoader workers.

    Two layouts: ``root/train/<class>/*.jpg`` with optional ``root/dev`` (or ``val``) and
    ``root/test`` holding the same class folders; or ``root/<class>/*.jpg``. Splits that have no
    folder are carved from the train images, stratified and seeded (``dev_fraction``,
    ``test_fraction``).

    Every image is resized so its shorter side is ``resize_size`` and center-cropped to
    ``image_size`` (torchvision's evaluation preprocessing: 256 then 224 for its ImageNet
    weights); training images are augmented instead (random resized crop and horizontal flip by
    default), dev, test and predict images never are. Pixels come out as floats in [0, 1]; the
    model normalizes them (a pretrained :class:`~mlstrategy.models.TransferNet` with its
    weights' mean and std; other models with per-channel statistics of the train images, see
    :meth:`input_normalizer`).

    On a GPU, batches are collated into pinned memory, so Lightning's copies to the device
    (``non_blocking``) overlap with compute.

    Args:
        root: The image folder.
        image_size: Side of the square images the model sees; null = 224, or the crop size of
            ``preprocessing``.
        resize_size: Shorter side before cropping; null = ``image_size * 8 / 7`` (224 -> 256), or
            the resize size of ``preprocessing``.
        preprocessing: Take the sizes and interpolation from torchvision weights'
            ``transforms()``, e.g. ``ResNet18_Weights.DEFAULT`` or
            ``EfficientNet_B0_Weights.DEFAULT`` (bicubic). Reads metadata only; downloads nothing.
        augment: Training-only augmentation: true = ``RandomResizedCrop(image_size, scale=(0.5,
            1))`` and ``RandomHorizontalFlip``; false = none; or a list of transforms
            (``torchvision.transforms.v2``) applied to the resized ``uint8`` image, before the
            final center crop.
        dev_fraction: Fraction of the train images carved as dev when there is no dev folder.
        test_fraction: Fraction carved as test when there is no test folder.
        batch_size: Training mini-batch size.
        eval_batch_size: Batch size for evaluation and prediction.
        num_workers: Worker processes decoding images (0 = in the main process).
        normalize: Offer per-channel statistics of the train images to models without
            normalization of their own.
        predict_dir: A folder of images (searched recursively) for ``mlstrategy predict``.
        seed: Seed of the carved splits and the shuffle order.
    """

    def __init__(
        self,
        root: str,
        image_size: int | None = None,
        resize_size: int | None = None,
        preprocessing: str | None = None,
        augment: bool | list[nn.Module] = True,
        dev_fraction: float = 0.2,
        test_fraction: float = 0.2,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 2,
        normalize: bool = True,
        predict_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from torchvision.transforms import InterpolationMode

        for arg, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ValueError(f"{arg}={value} must be >= 1.")
        if num_workers < 0:
            raise ValueError(f"num_workers={num_workers} must be >= 0 (0 = the main process).")
        interpolation = InterpolationMode.BILINEAR
        if preprocessing is not None:
            sizes = _weights_preprocessing(preprocessing)
            image_size = image_size or sizes["crop_size"]
            resize_size = resize_size or sizes["resize_size"]
            interpolation = sizes["interpolation"]
        image_size = image_size or 224
        resize_size = resize_size or round(image_size * 8 / 7)
        if image_size < 1 or resize_size < image_size:
            raise ValueError(
                f"image_size={image_size}, resize_size={resize_size}: need 1 <= image_size <= "
                "resize_size (resize the shorter side, then crop the center square)."
            )
        self.save_hyperparameters(ignore=["augment"])
        self.hparams["augment"] = augment if isinstance(augment, bool) else repr(augment)
        self.root = Path(root)
        self.image_size, self.resize_size = int(image_size), int(resize_size)
        self.interpolation = interpolation
        self.augment = augment
        self.dev_fraction, self.test_fraction = dev_fraction, test_fraction
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.normalize = normalize
        self.predict_dir = predict_dir
        self.seed = seed
        self.class_names: list[str] = []
        self._splits: dict[str, tuple[list[Path], list[int]]] | None = None
        self.predict_files: list[Path] = []

    # ------------------------------------------------------------------------------- files
    def split_files(self) -> dict[str, tuple[list[Path], list[int]]]:
        """Find the images once: ``{split: (files, labels)}``."""
        if self._splits is None:
            self._splits = self._find()
        return self._splits

    def _find(self) -> dict[str, tuple[list[Path], list[int]]]:
        return self._find_in(self.root)

    def _find_in(self, root: Path) -> dict[str, tuple[list[Path], list[int]]]:
        """The splits of the image folder ``root``; sets :attr:`class_names` from its own."""
        if not root.is_dir():
            raise ValueError(
                f"root={str(root)!r} is not a folder. Give a folder with one sub-folder of "
                "images per class (or train/, dev/ and test/ folders holding those)."
            )
        layered = (root / "train").is_dir()
        train_dir = root / "train" if layered else root
        self.class_names = sorted(
            d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        if len(self.class_names) < 2:
            raise ValueError(
                f"{train_dir} has {len(self.class_names)} class folder(s) "
                f"{self.class_names}; a classifier needs at least 2 (one sub-folder per class)."
            )
        found: dict[str, tuple[list[Path], list[int]]] = {"train": self._scan(train_dir)}
        empty = [c for k, c in enumerate(self.class_names) if k not in set(found["train"][1])]
        if empty:
            raise ValueError(
                f"{train_dir}: the class folder(s) {empty} hold no images "
                f"({', '.join(IMAGE_EXTENSIONS)}); every class needs training images. Add "
                "some, or remove the folder."
            )
        if layered:
            dev = next((root / d for d in _DEV_DIRS if (root / d).is_dir()), None)
            if dev is not None:
                found["dev"] = self._scan(dev)
            if (root / "test").is_dir():
                found["test"] = self._scan(root / "test")
        missing = [s for s in ("dev", "test") if s not in found]
        if missing:
            files, labels = found["train"]
            # stratified_split carves "dev" first, then optionally "test"; name its parts.
            fractions = {"dev": self.dev_fraction, "test": self.test_fraction}
            first, second = missing[0], missing[1] if len(missing) > 1 else None
            index = stratified_split(
                np.array(labels),
                dev_fraction=fractions[first],
                test_fraction=fractions[second] if second else None,
                seed=self.seed,
            )
            if first != "dev":
                index[first] = index.pop("dev")
            for split, rows in index.items():
                found[split] = ([files[i] for i in rows], [labels[i] for i in rows])
        return {k: found[k] for k in _SPLITS if k in found}

    def _scan(self, folder: Path) -> tuple[list[Path], list[int]]:
        files: list[Path] = []
        labels: list[int] = []
        known = set(self.class_names)
        for class_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
            if class_dir.name.startswith("."):
                continue
            if class_dir.name not in known:
                raise ValueError(
                    f"{class_dir} is a class the train images do not have (train classes: "
                    f"{self.class_names}). Every split needs the same class folders."
                )
            images = _image_files(class_dir)
            files += images
            labels += [self.class_names.index(class_dir.name)] * len(images)
        if not files:
            raise ValueError(
                f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in class sub-folders."
            )
        return files, labels

    @property
    def split_names(self) -> list[str]:
        """The splits, in order: train, dev, test."""
        return list(self.split_files())

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, image_size, image_size)``."""
        return (3, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        """Number of class folders."""
        self.split_files()
        return len(self.class_names)

    # -------------------------------------------------------------------------- transforms
    def eval_transform(self) -> nn.Module:
        """Resize the shorter side, center-crop, scale to floats in [0, 1]."""
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.Resize(self.resize_size, interpolation=self.interpolation, antialias=True),
                v2.CenterCrop(self.image_size),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def train_transform(self) -> nn.Module:
        """Resize, augment (training only), center-crop to size, scale to [0, 1]."""
        from torchvision.transforms import v2

        if self.augment is True:
            augment: list[nn.Module] = [
                v2.RandomResizedCrop(
                    self.image_size,
                    scale=(0.5, 1.0),
                    interpolation=self.interpolation,
                    antialias=True,
                ),
                v2.RandomHorizontalFlip(),
            ]
        else:
            augment = list(self.augment or [])
        return v2.Compose(
            [
                v2.Resize(self.resize_size, interpolation=self.interpolation, antialias=True),
                *augment,
                v2.CenterCrop(self.image_size),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def input_normalizer(self, max_images: int = 256) -> Standardize | None:
        """Per-channel mean and std of (up to ``max_images``, seeded) train images, as a
        :class:`Standardize` of the input shape; None when ``normalize`` is false."""
        if not self.normalize:
            return None
        files, _ = self.split_files()["train"]
        rng = np.random.default_rng(self.seed)
        rows = rng.choice(len(files), min(max_images, len(files)), replace=False)
        transform = self.eval_transform()
        x = torch.stack([transform(read_image(files[i])) for i in sorted(rows)])
        mean = x.mean(dim=(0, 2, 3)).view(3, 1, 1)
        std = x.std(dim=(0, 2, 3), correction=0).clamp_min(1e-8).view(3, 1, 1)
        norm = Standardize(self.input_shape)
        norm.mean.copy_(mean.expand(self.input_shape))
        norm.std.copy_(std.expand(self.input_shape))
        return norm

    # ---------------------------------------------------------------------------- loaders
    def _on_cuda(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader(self, files: list[Path], labels: list[int], train: bool, keep: bool) -> DataLoader:
        dataset = ImageFiles(
            files, labels, self.train_transform() if train else self.eval_transform()
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            pin_memory=self._on_cuda(),
            persistent_workers=keep and self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if train else None,
        )

    def _split(self, split: str, train: bool = False, keep: bool = False) -> DataLoader:
        splits = self.split_files()
        if split not in splits:
            raise ValueError(f"No {split!r} split; this data module has {self.split_names}.")
        return self._loader(*splits[split], train=train, keep=keep)

    def train_dataloader(self) -> DataLoader:
        return self._split("train", train=True, keep=True)

    def val_dataloader(self) -> DataLoader:
        return self._split("dev", keep=True)

    def test_dataloader(self) -> DataLoader:
        return self._split("test" if "test" in self.split_files() else "dev")

    def eval_dataloader(self, split: str) -> DataLoader:
        """Any split in order, unaugmented, for evaluation (e.g. train error in eval mode)."""
        return self._split(split)

    def predict_dataloader(self) -> DataLoader:
        """The images of ``predict_dir`` (file order in :attr:`predict_files`), else test."""
        if self.predict_dir is None:
            return self.test_dataloader()
        folder = Path(self.predict_dir)
        if not folder.is_dir():
            raise ValueError(f"predict_dir={self.predict_dir!r} is not a folder of images.")
        self.predict_files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not self.predict_files:
            raise ValueError(f"predict_dir={self.predict_dir!r} holds no images.")
        return self._loader(self.predict_files, [-1] * len(self.predict_files), False, False)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "class_names": self.class_names}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The class names the checkpoint was trained with name the predicted classes.
        self.class_names = list(state_dict.get("class_names") or self.class_names)


_SPLITS = ("train", "dev", "test")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _weights_preprocessing(name: str) -> dict[str, Any]:
    """Crop size, resize size and interpolation of torchvision weights' ``transforms()``."""
    from torchvision.models import get_weight

    try:
        transforms = get_weight(name).transforms()
    except (ValueError, KeyError, AttributeError):
        raise ValueError(
            f"preprocessing={name!r} is not torchvision weights; give e.g. "
            "'ResNet18_Weights.DEFAULT', 'MobileNet_V3_Small_Weights.DEFAULT' or "
            "'EfficientNet_B0_Weights.DEFAULT'."
        ) from None
    return {
        "crop_size": int(transforms.crop_size[0]),
        "resize_size": int(transforms.resize_size[0]),
        "interpolation": transforms.interpolation,
    }
