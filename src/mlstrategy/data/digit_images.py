"""Offline image data: scikit-learn's 8x8 digits as small RGB images, and a writer of image
folders (one sub-folder per class) to try :class:`~mlstrategy.data.ImageFolderDataModule` on
without downloading anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mlstrategy.data.sources import Arrays, ArraySource


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
