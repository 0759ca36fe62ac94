"""Image folders from two distributions: the course's web images and mobile-app images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mlstrategy.data.augment import per_example
from mlstrategy.data.images import ImageFiles, ImageFolderDataModule, read_image
from mlstrategy.data.mismatch import (
    SOURCE,
    TARGET,
    TRAINING,
    check_same_classes,
    check_target_in_train,
    count_origins,
    describe_origins,
    mismatch_splits,
    split_target,
)
from mlstrategy.data.normalization import Standardize
from mlstrategy.data.synthesis import pool_report

Files = tuple[list[Path], list[int]]


class MismatchImageFolderDataModule(ImageFolderDataModule):
    """:class:`ImageFolderDataModule` with a ``target_root``: dev and test from the target only.

    ``root`` holds the images you have plenty of (the source), ``target_root`` those from the
    distribution the system must work on (the target), each with one sub-folder per class (or
    ``train/``, ``dev/``, ``test/`` folders of them: every image of a folder is material, its
    split folders are pooled). Dev and test are ``dev_fraction`` and ``test_fraction`` of the
    target's images, seeded and stratified; the training mix is every source image plus
    ``target_in_train`` target images; ``train_dev_fraction`` of the mix is held out as
    train-dev. Normalization statistics come from the train split only (the mix, as the model
    sees it: synthesized when ``synthesis`` is set), never from dev or test. :attr:`origin`
    records each split's images' source.

    Synthesis, as in :class:`~mlstrategy.data.MismatchDataModule`: the ``synthesis``
    transforms (see :mod:`mlstrategy.data.synthesis`) are fit on up to
    ``synthesis_fit_images`` of the target's images outside dev and test (seeded, decoded as
    for evaluation; their pools come from these), and applied to each *source* image of the
    training mix with probability ``synthesis_probability``, in the worker that decodes it:
    after resizing and augmentation, on the image in [0, 1], a fresh draw per image and epoch.
    Target images are left as they are. Train and train-dev are scored on a fixed synthesized
    copy (each image's draw seeded by its place in its split), so train-dev keeps sharing
    train's distribution. Memory: a ``TargetNoise`` pool holds ``clips x 3 x image_size^2``
    floats (1,000 clips of 224 x 224 images: 600 MB); give small images or few clips.

    Args:
        root: The source's image folder.
        target_root: The target's image folder, with the same class folders.
        target_in_train: Target images added to training: a count, or a fraction of the
            target's images; at most what dev and test leave.
        dev_fraction: Fraction of the target's images in dev.
        test_fraction: Fraction of the target's images in test.
        train_dev_fraction: Fraction of the training mix held out as train-dev; 0 = none.
        synthesis: Transforms that make source images look like the target's, e.g.
            ``[{class_path: mlstrategy.data.TargetContrast}]``; null = none.
        synthesis_probability: Chance that a source image of the training mix is synthesized.
        synthesis_fit_images: Most target images (outside dev and test) the synthesis
            transforms are fit on.
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
        synthesis: list[nn.Module] | None = None,
        synthesis_probability: float = 1.0,
        synthesis_fit_images: int = 1000,
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
        if not 0 < synthesis_probability <= 1:
            raise ValueError(
                f"synthesis_probability={synthesis_probability} must be in (0, 1] (the chance a "
                "source image is synthesized); leave `synthesis` out for none."
            )
        if synthesis_fit_images < 1:
            raise ValueError(f"synthesis_fit_images={synthesis_fit_images} must be >= 1.")
        # Kept as text: checkpoints must load with weights_only=True, which refuses objects.
        self.hparams["synthesis"] = repr(synthesis) if synthesis else None
        self.target_root = Path(target_root)
        self.target_in_train = target_in_train
        self.train_dev_fraction = train_dev_fraction
        self.synthesis = nn.Sequential(*per_example(synthesis)) if synthesis else None
        self.synthesis_probability = synthesis_probability
        self.synthesis_fit_images = synthesis_fit_images
        self.origin: dict[str, np.ndarray] = {}
        self._fit_files: list[Path] = []  # the target's images outside dev and test
        self._fitted = False

    def _find(self) -> dict[str, Files]:
        if not self.target_root.is_dir():
            raise ValueError(
                f"target_root={str(self.target_root)!r} is not a folder. Give the image folder "
                "of the distribution the system must work on (the target: dev and test come "
                "from it only), with the same class sub-folders as "
                f"root={str(self.root)!r}."
            )
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
        self._fit_files = [target[0][i] for i in parts["left"]]
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
        found = self._find_in(root)  # the parent's checks and scan, splits pooled below
        files = [f for split in found.values() for f in split[0]]
        labels = [k for split in found.values() for k in split[1]]
        return files, labels

    def split_origins(self) -> dict[str, dict[str, int]]:
        """Per split, how many images came from the source and how many from the target."""
        self.split_files()
        return count_origins(self.origin)

    def describe_sources(self) -> dict[str, Any]:
        """The two folders, each split's origins and the synthesis pools, for the report."""
        origins = self.split_origins()
        out = {**describe_origins(str(self.root), str(self.target_root), origins)}
        out["synthesis"] = None
        if self.synthesis is not None:
            self._fit_synthesis()
            synthesized = origins.get("train", {}).get(SOURCE, 0)
            out["synthesis"] = pool_report(list(self.synthesis), synthesized)
            out["synthesis"]["probability"] = self.synthesis_probability
        return out

    # --------------------------------------------------------------------------- synthesis
    def _fit_synthesis(self) -> None:
        """Fit the transforms, once, on the target's images outside dev and test (seeded, at
        most ``synthesis_fit_images``, decoded as for evaluation)."""
        if self.synthesis is None or self._fitted:
            return
        self.split_files()  # finds the target's images outside dev and test
        files = self._fit_files
        if not files:
            raise ValueError(
                f"The target {str(self.target_root)!r} has no images outside dev and test to fit "
                "the synthesis transforms on; give it more images or smaller dev/test fractions."
            )
        rng = np.random.default_rng(self.seed)
        rows = rng.choice(len(files), min(self.synthesis_fit_images, len(files)), replace=False)
        transform = self.eval_transform()
        x = torch.stack([transform(read_image(files[i])) for i in sorted(rows)])
        for i, t in enumerate(self.synthesis):
            fit = getattr(t, "fit", None)
            if callable(fit):
                fit(x, self.seed + i)
        self._fitted = True

    def synthesized_images(self, split: str, train: bool = False) -> ImageFiles:
        """The images of ``split`` (train or train-dev) with their source images synthesized:
        a fresh draw per image for training, a fixed seeded one otherwise."""
        assert self.synthesis is not None and split in TRAINING
        self._fit_synthesis()
        files, labels = self.split_files()[split]
        return _SynthesizedImages(
            files,
            labels,
            self.train_transform() if train else self.eval_transform(),
            self.origin[split] == SOURCE,
            self.synthesis,
            self.synthesis_probability,
            None if train else self.seed * 7919 + TRAINING.index(split) * 1_000_003,
        )

    def _split(self, split: str, train: bool = False, keep: bool = False) -> DataLoader:
        if self.synthesis is None or split not in TRAINING:
            return super()._split(split, train, keep)
        return DataLoader(
            self.synthesized_images(split, train),
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.workers,
            pin_memory=self._on_cuda(),
            persistent_workers=keep and self.workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if train else None,
        )

    def input_normalizer(self, max_images: int = 256) -> Standardize | None:
        """Per-channel statistics of (up to ``max_images``, seeded) train images, as the
        model sees them: synthesized when ``synthesis`` is set (see the parent otherwise)."""
        if self.synthesis is None or not self.normalize:
            return super().input_normalizer(max_images)
        images = self.synthesized_images("train")
        rng = np.random.default_rng(self.seed)
        rows = rng.choice(len(images), min(max_images, len(images)), replace=False)
        norm = Standardize(self.input_shape)
        norm.fit(torch.stack([images[i][0] for i in sorted(rows)]), per_channel=True)
        return norm


class _SynthesizedImages(ImageFiles):
    """:class:`ImageFiles` whose ``synthesize[i]`` images go through ``synthesis`` (each with
    ``probability``): a fresh draw when ``seed`` is None, else one seeded by ``seed + i``."""

    def __init__(
        self,
        files: Sequence[Path],
        labels: Sequence[int],
        transform: nn.Module,
        synthesize: np.ndarray,
        synthesis: nn.Module,
        probability: float,
        seed: int | None,
    ) -> None:
        super().__init__(files, labels, transform)
        self.synthesize = synthesize
        self.synthesis = synthesis
        self.probability = probability
        self.seed = seed

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = super().__getitem__(i)
        if not self.synthesize[i]:
            return x, y
        if self.seed is None:
            return self._made(x), y
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + i)
            return self._made(x), y

    @torch.no_grad()
    def _made(self, x: torch.Tensor) -> torch.Tensor:
        if self.probability < 1 and float(torch.rand(())) >= self.probability:
            return x
        return self.synthesis(x[None])[0].to(x.dtype)


def _class_folders(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
