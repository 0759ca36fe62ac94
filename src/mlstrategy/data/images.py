"""Image data: a folder of images per class, decoded by worker processes. (The offline digit
images for tests and demos, :class:`DigitImages` and :func:`write_image_folder`, live in
:mod:`mlstrategy.data.digit_images` and are importable from here too.)

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
from torch.utils.data import DataLoader, Dataset, Subset

from mlstrategy.data.digit_images import DigitImages, write_image_folder
from mlstrategy.data.normalization import Standardize
from mlstrategy.data.splits import stratified_split
from mlstrategy.data.workers import worker_count

__all__ = ["DigitImages", "ImageFiles", "ImageFolderDataModule", "read_image", "write_image_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm")
_DEV_DIRS = ("dev", "val", "valid", "validation")


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
    ``test_fraction``). ``train_dev_fraction`` holds out a train-dev split from the train
    images the same way: from the training distribution, never trained on, so the diagnosis
    tells variance (train-dev - train) from data mismatch (dev - train-dev).

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
        train_dev_fraction: Fraction of the train folder's images held out as train-dev
            (evaluated like dev: resized and cropped, never augmented), in [0, 1); 0 = none.
            Dev and test are the same with or without it (they are carved first).
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
        train_dev_fraction: float = 0.0,
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
        if not 0 <= train_dev_fraction < 1:
            raise ValueError(
                f"train_dev_fraction={train_dev_fraction} is outside [0, 1) (0 = no train-dev "
                "split). It is the fraction of the train folder's images held out as train-dev; "
                "typical values are 0.1 to 0.2."
            )
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
        self.train_dev_fraction = train_dev_fraction
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self._workers_said: set[int] = set()  # the capped counts already said
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
        return self._find_in(self.root, self.train_dev_fraction)

    def _find_in(
        self, root: Path, train_dev_fraction: float = 0.0
    ) -> dict[str, tuple[list[Path], list[int]]]:
        """The splits of the image folder ``root``; sets :attr:`class_names` from its own.
        ``train_dev_fraction`` of its train images are held out as train-dev."""
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
        if missing or train_dev_fraction > 0:
            found.update(self._carve(found["train"], missing, train_dev_fraction))
        return {k: found[k] for k in _SPLITS if k in found}

    def _carve(
        self, train: tuple[list[Path], list[int]], missing: list[str], train_dev_fraction: float
    ) -> dict[str, tuple[list[Path], list[int]]]:
        """The ``missing`` splits (dev, test) and a train-dev split carved from the train
        images, and the train images left.

        :func:`stratified_split` carves its ``test`` part first, then ``dev``, then
        ``train_dev``, each from what is left, seeded: the parts are named after the splits
        they become, so dev and test do not change when a train-dev split is added.
        """
        files, labels = train
        carve = missing + (["train_dev"] if train_dev_fraction > 0 else [])
        fractions = {
            "dev": self.dev_fraction,
            "test": self.test_fraction,
            "train_dev": train_dev_fraction,
        }
        first = carve[0]  # stratified_split's "dev" part (the only one it requires)
        both = len(missing) == 2
        with_train_dev = "train_dev" in carve and first != "train_dev"
        index = stratified_split(
            np.array(labels),
            dev_fraction=fractions[first],
            test_fraction=fractions["test"] if both else None,
            train_dev_fraction=train_dev_fraction if with_train_dev else 0.0,
            seed=self.seed,
        )
        index[first] = index.pop("dev")
        return {
            split: ([files[i] for i in rows], [labels[i] for i in rows])
            for split, rows in index.items()
        }

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
        """The splits, in order: train, [train_dev], dev, [test]."""
        return list(self.split_files())

    # ------------------------------------------- what evaluation reads (data.EvaluationData)
    def _files(self, split: str) -> tuple[list[Path], list[int]]:
        splits = self.split_files()
        if split not in splits:
            raise ValueError(f"No {split!r} split; this data module has {self.split_names}.")
        return splits[split]

    def split_labels(self, split: str) -> torch.Tensor:
        """The labels of ``split``, in file order."""
        return torch.tensor(self._files(split)[1], dtype=torch.long)

    def split_size(self, split: str) -> int:
        """How many images ``split`` holds."""
        return len(self._files(split)[0])

    def example_files(self, split: str) -> list[Path]:
        """The image file of each example of ``split``, in order."""
        return list(self._files(split)[0])

    def split_examples(self, split: str, rows: Sequence[int]) -> torch.Tensor:
        """The images at positions ``rows`` of ``split``, decoded with the evaluation
        transforms (as :meth:`eval_dataloader` gives them), stacked."""
        if not len(rows):
            return torch.empty((0, *self.input_shape))
        dataset = self.eval_dataloader(split).dataset  # what scoring reads
        loader = DataLoader(
            Subset(dataset, [int(i) for i in rows]),
            batch_size=self.eval_batch_size,
            num_workers=self.workers if len(rows) > self.eval_batch_size else 0,
        )
        return torch.cat([x for x, _ in loader])

    def distribution_features(self, x: torch.Tensor) -> np.ndarray:
        """Per image, each channel's mean, then each channel's standard deviation: what the
        dev/test check compares (a few numbers an image, not every pixel of a large one)."""
        flat = x.flatten(2).double()
        return torch.cat([flat.mean(dim=2), flat.std(dim=2, correction=0)], dim=1).numpy()

    @property
    def distribution_feature_names(self) -> list[str]:
        """``mean of channel R``, ..., ``std of channel B``."""
        return [f"{s} of channel {c}" for s in ("mean", "std") for c in ("R", "G", "B")]

    def keep_train(self, rows: np.ndarray) -> None:
        """Keep only the train images at positions ``rows`` (a learning curve's subset): what
        training, the normalization statistics and the train scores then see. Per-split
        arrays kept beside the files (a mismatch module's :attr:`origin`) follow."""
        files, labels = self._files("train")
        keep = [int(i) for i in rows]
        assert self._splits is not None
        self._splits["train"] = ([files[i] for i in keep], [labels[i] for i in keep])
        origin = getattr(self, "origin", None)
        if isinstance(origin, dict) and len(origin.get("train", ())) == len(files):
            origin["train"] = np.asarray(origin["train"])[keep]

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

    @property
    def workers(self) -> int:
        """The loaders' worker processes: ``num_workers``, at most one per CPU."""
        return worker_count(self.num_workers, self._workers_said)

    def _loader(self, files: list[Path], labels: list[int], train: bool, keep: bool) -> DataLoader:
        dataset = ImageFiles(
            files, labels, self.train_transform() if train else self.eval_transform()
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.workers,
            pin_memory=self._on_cuda(),
            persistent_workers=keep and self.workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if train else None,
        )

    def _split(self, split: str, train: bool = False, keep: bool = False) -> DataLoader:
        return self._loader(*self._files(split), train=train, keep=keep)

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


_SPLITS = ("train", "train_dev", "dev", "test")


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
