"""Generated street scenes: the course's multi-task example, small enough to train on a CPU.

Each image is a small RGB street (sky, buildings and poles as clutter, a road, pixel noise)
with objects of four kinds drawn at random places and sizes: a pedestrian, a car, a stop sign
and a traffic light. Each image has one label per kind (1 if that kind was drawn), and a
chosen fraction of labels is hidden as missing (-1), as when annotators skipped some questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mlstrategy.data.multitask import MISSING_CLASS, LabelledArrays, MultiTaskSource

KINDS = ("pedestrian", "car", "stop_sign", "traffic_light")


@dataclass(frozen=True)
class SceneObject:
    """One object drawn in a scene: its kind and its bounding box in pixels.

    Attributes:
        kind: One of :data:`KINDS`.
        top: Row of the box's top edge.
        left: Column of the box's left edge.
        height: Box height.
        width: Box width.
    """

    kind: str
    top: int
    left: int
    height: int
    width: int


@lru_cache(maxsize=256)
def _disc(h: int, w: int) -> np.ndarray:
    """A filled ellipse touching the edges of an ``h x w`` box, as a (read-only) boolean mask."""
    r, c = np.mgrid[:h, :w]
    mask = ((r + 0.5 - h / 2) / (h / 2)) ** 2 + ((c + 0.5 - w / 2) / (w / 2)) ** 2 <= 1.0
    mask.flags.writeable = False
    return mask


def _size(kind: str, rng: np.random.Generator, image_size: int) -> tuple[int, int]:
    """Height and width of an object of ``kind``, scaled to the image."""
    s = image_size / 24
    if kind == "pedestrian":
        h = int(rng.integers(8, 12) * s)
        return max(h, 5), max(h // 2, 3)
    if kind == "car":
        w = int(rng.integers(9, 14) * s)
        return max(int(w * 0.6), 4), max(w, 6)
    if kind == "stop_sign":
        d = max(int(rng.integers(5, 8) * s), 4)
        return d + max(d // 2, 2), d
    w = max(int(rng.integers(3, 5) * s), 3)  # traffic light
    return 3 * w + max(w // 2, 1), w


def _paint(image: np.ndarray, top: int, left: int, mask: np.ndarray, color: np.ndarray) -> None:
    """Paint ``color`` (RGB) where ``mask`` is true, with the mask's top-left at (top, left)."""
    h, w = mask.shape
    patch = image[:, top : top + h, left : left + w]
    patch[:, mask] = color[:, None]


def _draw_object(image: np.ndarray, obj: SceneObject, rng: np.random.Generator) -> None:
    t, lft, h, w = obj.top, obj.left, obj.height, obj.width
    jitter = rng.uniform(-0.08, 0.08, size=3)
    if obj.kind == "pedestrian":
        head = max(w - 1, 2)
        skin = np.clip(np.array([0.85, 0.65, 0.5]) + jitter, 0, 1)
        cloth = rng.uniform(0.0, 1.0, size=3)
        _paint(image, t, lft + (w - head) // 2, _disc(head, head), skin)
        body = np.zeros((h - head, w), dtype=bool)
        body[: (h - head) * 3 // 5, :] = True  # torso
        body[(h - head) * 3 // 5 :, : max(w // 3, 1)] = True  # legs
        body[(h - head) * 3 // 5 :, w - max(w // 3, 1) :] = True
        _paint(image, t + head, lft, body, cloth)
    elif obj.kind == "car":
        paint = rng.uniform(0.1, 0.9, size=3)
        cabin = np.zeros((h, w), dtype=bool)
        cabin[: h // 2, w // 4 : w - w // 4] = True
        _paint(image, t, lft, cabin, np.clip(paint * 0.8, 0, 1))
        window = np.zeros((h, w), dtype=bool)
        window[1 : h // 2, w // 4 + 1 : w - w // 4 - 1] = True
        _paint(image, t, lft, window, np.clip(np.array([0.7, 0.85, 0.95]) + jitter, 0, 1))
        body = np.zeros((h, w), dtype=bool)
        body[h // 2 : h - 1, :] = True
        _paint(image, t, lft, body, paint)
        wheel = max(h // 3, 2)
        for c in (1, w - 1 - wheel):
            _paint(image, t + h - wheel, lft + c, _disc(wheel, wheel), np.array([0.05, 0.05, 0.05]))
    elif obj.kind == "stop_sign":
        d = w
        post = np.zeros((h - d, w), dtype=bool)
        post[:, w // 2 : w // 2 + 1] = True
        _paint(image, t + d, lft, post, np.array([0.55, 0.55, 0.55]))
        _paint(image, t, lft, _disc(d, d), np.clip(np.array([0.85, 0.08, 0.08]) + jitter, 0, 1))
        bar = np.zeros((d, d), dtype=bool)
        bar[d // 2 : d // 2 + 1, 1 : d - 1] = True
        _paint(image, t, lft, bar, np.array([0.95, 0.95, 0.95]))
    else:  # traffic light: a dark box with three lamps, one of them lit
        box = np.ones((3 * w, w), dtype=bool)
        _paint(image, t, lft, box, np.array([0.08, 0.08, 0.1]) + abs(jitter) / 4)
        post = np.zeros((h - 3 * w, w), dtype=bool)
        post[:, w // 2 : w // 2 + 1] = True
        _paint(image, t + 3 * w, lft, post, np.array([0.4, 0.4, 0.4]))
        lamps = (np.array([1.0, 0.1, 0.1]), np.array([1.0, 0.85, 0.1]), np.array([0.1, 0.9, 0.2]))
        lit = int(rng.integers(3))
        lamp = max(w - 2, 1)
        for k, color in enumerate(lamps):
            shade = color if k == lit else color * 0.3
            _paint(
                image, t + k * w + (w - lamp) // 2, lft + (w - lamp) // 2, _disc(lamp, lamp), shade
            )


def _draw_background(image: np.ndarray, rng: np.random.Generator, clutter: int) -> None:
    size = image.shape[1]
    horizon = int(rng.integers(size // 3, size // 2 + 1))
    image[:] = np.clip(np.array([0.55, 0.7, 0.9]) + rng.uniform(-0.15, 0.1, 3), 0, 1)[:, None, None]
    road = np.clip(np.array([0.35, 0.35, 0.37]) + rng.uniform(-0.1, 0.1), 0, 1)
    image[:, horizon:, :] = road[:, None, None]
    for _ in range(clutter):
        # Buildings, poles and signboards in any colour, red and dark ones included, so colour
        # alone never tells a stop sign or a traffic light.
        h = int(rng.integers(2, size // 2 + 1))
        w = int(rng.integers(1, size // 3 + 1))
        top = int(rng.integers(0, size - h + 1))
        left = int(rng.integers(0, size - w + 1))
        image[:, top : top + h, left : left + w] = rng.uniform(0, 1, size=3)[:, None, None]


def draw_scene(
    rng: np.random.Generator,
    kinds: tuple[str, ...] | list[str],
    image_size: int = 24,
    clutter: int = 4,
    noise: float = 0.05,
) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw one scene holding one object of each kind in ``kinds``.

    Objects never overlap one another (each is placed where it fits, by rejection sampling),
    so every object drawn is fully visible; one that finds no free place after 50 tries is
    left out, and the returned list says what was actually drawn. Clutter is drawn first and
    may lie behind objects.

    Args:
        rng: The random generator (the scene is a function of its state).
        kinds: Kinds of object to draw, from :data:`KINDS`.
        image_size: Height and width of the image in pixels.
        clutter: Number of clutter rectangles (buildings, poles, signboards) behind objects.
        noise: Standard deviation of the Gaussian pixel noise added at the end.

    Returns:
        ``(image, objects)``: the image, shape ``(3, image_size, image_size)``, float32 in
        [0, 1], and the objects drawn.

    Example:
        >>> image, objects = draw_scene(np.random.default_rng(0), ["car"], noise=0.0)
        >>> image.shape, [o.kind for o in objects]
        ((3, 24, 24), ['car'])
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds={unknown} are not scene kinds; use some of {list(KINDS)}.")
    image = np.empty((3, image_size, image_size), dtype=np.float64)
    _draw_background(image, rng, clutter)
    free = np.ones((image_size, image_size), dtype=bool)
    objects: list[SceneObject] = []
    for kind in kinds:
        h, w = _size(kind, rng, image_size)
        h, w = min(h, image_size), min(w, image_size)
        for _ in range(50):
            top = int(rng.integers(0, image_size - h + 1))
            left = int(rng.integers(0, image_size - w + 1))
            if free[top : top + h, left : left + w].all():
                obj = SceneObject(kind, top, left, h, w)
                _draw_object(image, obj, rng)
                # A one-pixel margin keeps objects apart, so none hides part of another.
                free[max(top - 1, 0) : top + h + 1, max(left - 1, 0) : left + w + 1] = False
                objects.append(obj)
                break
    if noise > 0:
        image += rng.normal(0.0, noise, size=image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32), objects


def make_scenes(
    n: int,
    seed: int = 0,
    image_size: int = 24,
    object_probability: float = 0.5,
    clutter: int = 4,
    noise: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, list[list[SceneObject]]]:
    """Generate ``n`` scenes and their complete labels (nothing hidden yet).

    Each kind appears in a scene independently with probability ``object_probability``.

    Returns:
        ``(x, labels, objects)``: images ``(n, 3, S, S)`` float32; labels ``(n, len(KINDS))``
        int64, ``labels[i, k] = 1`` when an object of kind ``KINDS[k]`` was drawn in scene
        ``i``; and the objects drawn in each scene.

    Example:
        >>> x, labels, objects = make_scenes(3, seed=1)
        >>> x.shape, labels.shape
        ((3, 3, 24, 24), (3, 4))
    """
    rng = np.random.default_rng(seed)
    x = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    labels = np.zeros((n, len(KINDS)), dtype=np.int64)
    objects: list[list[SceneObject]] = []
    for i in range(n):
        wanted = [k for k in KINDS if rng.random() < object_probability]
        order = rng.permutation(len(wanted))
        x[i], drawn = draw_scene(
            rng, [wanted[j] for j in order], image_size=image_size, clutter=clutter, noise=noise
        )
        for obj in drawn:
            labels[i, KINDS.index(obj.kind)] = 1
        objects.append(drawn)
    return x, labels, objects


class StreetScenes(MultiTaskSource):
    """Generated street scenes with a label per kind of object, some labels missing.

    Images are RGB, ``(3, image_size, image_size)``; the label columns are ``pedestrian``,
    ``car``, ``stop_sign`` and ``traffic_light`` (1 = at least one in the picture). Each label
    is hidden (set to -1, missing) independently with probability ``missing_fraction``.
    The same seed gives the same images and the same hidden labels.

    Args:
        n_samples: Number of scenes.
        image_size: Height and width in pixels (16 to 64; 24 draws every kind legibly).
        object_probability: Chance that each kind appears in a scene, in (0, 1).
        clutter: Clutter rectangles per scene (buildings, poles, signboards of any colour).
        noise: Standard deviation of the pixel noise.
        missing_fraction: Fraction of labels hidden as missing, in [0, 1).

    Example:
        >>> arrays = StreetScenes(n_samples=50, missing_fraction=0.3).load(seed=0)
        >>> arrays.x.shape, arrays.label_names[0], float((arrays.y == -1).mean()) > 0.1
        ((50, 3, 24, 24), 'pedestrian', True)
    """

    def __init__(
        self,
        n_samples: int = 2000,
        image_size: int = 24,
        object_probability: float = 0.5,
        clutter: int = 4,
        noise: float = 0.05,
        missing_fraction: float = 0.3,
    ) -> None:
        if n_samples < 10:
            raise ValueError(f"StreetScenes: n_samples={n_samples} is too small; use at least 10.")
        if not 16 <= image_size <= 64:
            raise ValueError(
                f"StreetScenes: image_size={image_size} must be in [16, 64] pixels (smaller "
                "cannot draw every kind; larger is slow to generate)."
            )
        if not 0 < object_probability < 1:
            raise ValueError(
                f"StreetScenes: object_probability={object_probability} must be in (0, 1)."
            )
        if clutter < 0:
            raise ValueError(f"StreetScenes: clutter={clutter} must be >= 0.")
        if noise < 0:
            raise ValueError(f"StreetScenes: noise={noise} must be >= 0.")
        if not 0 <= missing_fraction < 1:
            raise ValueError(
                f"StreetScenes: missing_fraction={missing_fraction} must be in [0, 1) (0 = every "
                "label known)."
            )
        self.n_samples = n_samples
        self.image_size = image_size
        self.object_probability = object_probability
        self.clutter = clutter
        self.noise = noise
        self.missing_fraction = missing_fraction

    def load(self, seed: int) -> LabelledArrays:
        x, labels, _ = make_scenes(
            self.n_samples,
            seed=seed,
            image_size=self.image_size,
            object_probability=self.object_probability,
            clutter=self.clutter,
            noise=self.noise,
        )
        # A separate stream for what is hidden, so the images do not depend on it.
        hide = np.random.default_rng([seed, 1]).random(labels.shape) < self.missing_fraction
        y = np.where(hide, MISSING_CLASS, labels).astype(np.float32)
        return LabelledArrays(
            x=x,
            y=y,
            label_names=list(KINDS),
            class_names={k: ["absent", "present"] for k in KINDS},
        )
