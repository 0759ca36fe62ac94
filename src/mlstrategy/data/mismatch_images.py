"""Image folders from two distributions: the course's web images and mobile-app images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mlstrategy.data.images import ImageFolderDataModule
from mlstrategy.data.mismatch import (
    SOURCE,
    TARGET,
    check_same_classes,
    check_target_in_train,
    count_origins,
    describe_origins,
    mismatch_splits,
    split_target,
)

Files = tuple[list[Path], list[int]]


class MismatchImageFolderDataModule(ImageFolderDataModule):
    """:class:`ImageFolderDataModule` with a ``target_root``: dev and test from the target only.

    ``root`` holds the images you have plenty of (the source), ``target_root`` those from the
    distribution the system must work on (the target), each with one sub-folder per class (or
    ``train/``, ``dev/``, ``test/`` folders of them: every image of a folder is material, its
    split folders are pooled). Dev and test are ``dev_fraction`` and ``test_fraction`` of the
    target's images, seeded and stratified; the training mix is every source image plus
    ``target_in_train`` target images; ``train_dev_fraction`` of the mix is held out as
    train-dev. Normalization statistics come from the train split (the mix). :attr:`origin`
    records each split's images' source.

    Args:
        root: The source's image folder.
        target_root: The target's image folder, with the same class folders.
        target_in_train: Target images added to training: a count, or a fraction of the
            target's images; at most what dev and test leave.
        dev_fraction: Fraction of the target's images in dev.
        test_fraction: Fraction of the target's images in test.
        train_dev_fraction: Fraction of the training mix held out as train-dev; 0 = none.
        image_size: As :class:`ImageFolderDataModule`.
        resize_size: As :class:`ImageFolderDataModule`.
        preprocessing: As :class:`ImageFolderDataModule`.
        augment: As :class:`ImageFolderDataModule` (training images only).
        batch_size: Training mini-batch size.
        eval_batch_size: Batch size for evaluation and prediction.
        num_workers: Worker processes decoding images.
        normalize: Offer per-channel statistics of the train images.
        predict_dir: A folder of images for ``mlstrategy predict``.
        seed: Seed of the splits and the shuffle order.
    """

    def __init__(
        self,
        root: str,
        target_root: str,
        target_in_train: int | float = 0,
        dev_fraction: float = 0.2,
        test_fraction: float = 0.2,
        train_dev_fraction: float = 0.1,
        image_size: int | None = None,
        resize_size: int | None = None,
        preprocessing: str | None = None,
        augment: bool | list[nn.Module] = True,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 2,
        normalize: bool = True,
        predict_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root,
            image_size=image_size,
            resize_size=resize_size,
            preprocessing=preprocessing,
            augment=augment,
            dev_fraction=dev_fraction,
            test_fraction=test_fraction,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            normalize=normalize,
            predict_dir=predict_dir,
            seed=seed,
        )
        check_target_in_train(target_in_train)
        if not 0 <= train_dev_fraction < 1:
            raise ValueError(f"train_dev_fraction={train_dev_fraction} must be in [0, 1).")
        self.target_root = Path(target_root)
        self.target_in_train = target_in_train
        self.train_dev_fraction = train_dev_fraction
        self.origin: dict[str, np.ndarray] = {}

    def _find(self) -> dict[str, Files]:
        source = self._pool(self.root)  # sets self.class_names from the source's folders
        names = list(self.class_names)
        where = (f"image folder {str(self.root)!r}", f"image folder {str(self.target_root)!r}")
        target_names = _class_folders(self._train_dir(self.target_root))
        present = set(range(len(names)))
        if target_names == names:
            target = self._pool(self.target_root)
            present = set(target[1])
        check_same_classes(names, target_names, present, *where)
        self.class_names = names
        y = np.asarray(target[1], dtype=np.int64)
        parts = split_target(
            y,
            dev_fraction=self.dev_fraction,
            test_fraction=self.test_fraction,
            target_in_train=self.target_in_train,
            seed=self.seed,
            target=f"image folder {str(self.target_root)!r}",
        )
        pools = {SOURCE: source, TARGET: target}
        found: dict[str, Files] = {}
        for split, (origin, rows) in mismatch_splits(
            np.asarray(source[1], dtype=np.int64), y, parts, self.train_dev_fraction, self.seed
        ).items():
            found[split] = (
                [pools[o][0][i] for o, i in zip(origin, rows, strict=True)],
                [pools[o][1][i] for o, i in zip(origin, rows, strict=True)],
            )
            self.origin[split] = origin
        return found

    @staticmethod
    def _train_dir(root: Path) -> Path:
        return root / "train" if (root / "train").is_dir() else root

    def _pool(self, root: Path) -> Files:
        """Every image under ``root``: its class folders, or those of its split folders."""
        if not root.is_dir():
            raise ValueError(
                f"{str(root)!r} is not a folder. Give a folder with one sub-folder of images per "
                "class (or train/, dev/ and test/ folders holding those)."
            )
        found = self._find_in(root)  # the parent's checks and scan, splits pooled below
        files = [f for split in found.values() for f in split[0]]
        labels = [k for split in found.values() for k in split[1]]
        return files, labels

    def split_origins(self) -> dict[str, dict[str, int]]:
        """Per split, how many images came from the source and how many from the target."""
        self.split_files()
        return count_origins(self.origin)

    def describe_sources(self) -> dict[str, Any]:
        """The two folders and each split's origins, for the report."""
        origins = self.split_origins()
        return {
            **describe_origins(str(self.root), str(self.target_root), origins),
            "synthesis": None,
        }


def _class_folders(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
