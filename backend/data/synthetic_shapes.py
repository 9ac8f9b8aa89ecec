"""`shapes`: a built-in vision task of procedurally drawn 32x32 RGB images, generated from a fixed seed.

Ten classes: five shapes (circle, hexagon, square, triangle, cross) each plain or with a small dot at its centre
("<shape>_dot"). The classes are graded in similarity: a plain shape and its dotted twin differ only in a few
pixels at the centre; a circle and a hexagon of the same area differ only along their edges; every dotted class
shares its mark with the other four. Each image draws its own position, size (all shapes of one size have the same
area, so size tells nothing), rotation, colours (a bright shape on a darker background gradient, hues at random;
the mark's colour is only guaranteed to differ a little from the shape's), 0-3 distractors (dots like the mark and short bars, anywhere,
over the shape too), an occluding patch in some images and pixel noise. So a dot alone says nothing (the
distractors are dots too) and the label is not read off any one feature; where a distractor or the patch
hides the mark, or the mark's colour is close to the shape's, an image is genuinely ambiguous. There is no label
noise: every label is what was drawn.

numpy only; the same arrays on every call (the job's seed only splits them). 10,000 images in about 2 s.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("circle", "hexagon", "square", "triangle", "cross")
CLASS_NAMES = [f"{shape}{suffix}" for shape in SHAPES for suffix in ("", "_dot")]
SIZE = 32  # pixels a side, as stored (uint8)
GENERATION_SEED = 20_22  # fixed: the images never depend on a job's seed
N_IMAGES = 10_000
CHUNK = 500

# Difficulty knobs (tuned only toward the teacher accuracy band of the quick preset; see README "Built-in tasks").
RADIUS = (4.5, 9.0)  # equal-area radius of the shape, pixels at 32x32
MARK_RADIUS = (1.1, 1.6)  # pixels
MAX_DISTRACTORS = 3
OCCLUSION_P = 0.25
NOISE_SIGMA = 0.06  # of the [0, 1] range
MIN_MARK_CONTRAST = 0.15  # the least colour distance (RGB, [0, 1]) between the mark and the shape
MIN_SHAPE_CONTRAST = 0.35  # and between the shape and the background
# Dark backgrounds, bright shapes (each channel drawn in these ranges, so hues still vary). With either drawn from
# the whole range, ResNet-18 stayed at chance (10% validation accuracy) through 6 of the quick preset's 8 epochs.
BACKGROUND = (0.0, 0.35)
FOREGROUND = (0.55, 1.0)
ROTATION = 2 * np.pi  # rotations drawn in [0, ROTATION)


def _polygon(u: np.ndarray, v: np.ndarray, sides: int) -> np.ndarray:
    """Signed distance (about; in radii) to a regular polygon whose area is that of the unit circle."""
    circumradius = np.sqrt(2 * np.pi / (sides * np.sin(2 * np.pi / sides)))
    apothem = circumradius * np.cos(np.pi / sides)
    reach = u.copy()  # angle 0
    for k in range(1, sides):
        angle = 2 * np.pi * k / sides
        np.maximum(reach, u * np.float32(np.cos(angle)) + v * np.float32(np.sin(angle)), out=reach)
    return reach - np.float32(apothem)


def _shape_distance(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (about; in radii, negative inside) to shape `kind` (index into SHAPES) of the unit circle's
    area, in its local coordinates."""
    if kind == 0:
        return np.sqrt(u * u + v * v) - 1
    if kind in (1, 2, 3):
        return _polygon(u, v, {1: 6, 2: 4, 3: 3}[kind])
    arm, half = 0.42, 1.145  # a plus of area pi: 2 * (2*half) * (2*arm) - (2*arm)^2
    au, av = np.abs(u), np.abs(v)
    return np.minimum(np.maximum(au - arm, av - half), np.maximum(av - arm, au - half))


def _colours(
    rng: np.random.Generator,
    n: int,
    away_from: np.ndarray | None = None,
    distance: float = 0,
    span: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """[n, 3] random RGB colours in `span`, each at least `distance` from its row of `away_from`."""
    colours = _uniform(rng, *span, (n, 3))
    if away_from is None:
        return colours
    while (redo := np.linalg.norm(colours - away_from, axis=1) < distance).any():
        colours[redo] = _uniform(rng, *span, (int(redo.sum()), 3))
    return colours


def _paint(canvas: np.ndarray, distance: np.ndarray, colours: np.ndarray, on: np.ndarray | None = None) -> None:
    """Paint each image's shape (signed distance in pixels [n, H, W]) in its colour [n, 3], edges antialiased;
    `on` [n] bool: only those images."""
    alpha = np.clip(0.5 - distance, 0, 1)
    if on is not None:
        alpha *= on[:, None, None]
    alpha = alpha[..., None]
    canvas *= 1 - alpha
    canvas += alpha * colours[:, None, None, :]


def _uniform(rng: np.random.Generator, low: float, high: float, size) -> np.ndarray:
    return rng.uniform(low, high, size).astype(np.float32)


def _draw(rng: np.random.Generator, labels: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Images of `labels` as float32 [n, H, W, 3] in [0, 1]."""
    n = len(labels)
    kind, marked = np.divmod(labels, 2)
    col = lambda a: a[:, None, None]  # noqa: E731  [n] -> [n, 1, 1]
    # background: a random colour with a random linear gradient
    base = _uniform(rng, *BACKGROUND, (n, 3))
    phi = _uniform(rng, 0, 2 * np.pi, n)
    ramp = (xs * col(np.cos(phi)) + ys * col(np.sin(phi))) / SIZE  # [n, H, W] in [-1.4, 1.4]
    canvas = np.clip(base[:, None, None, :] + _uniform(rng, -0.25, 0.25, (n, 1, 1, 3)) * ramp[..., None], 0, 1)

    # the shape
    shape_colour = _colours(rng, n, base, MIN_SHAPE_CONTRAST, FOREGROUND)
    radius = _uniform(rng, *RADIUS, n)
    cx, cy = _uniform(rng, 0.3 * SIZE, 0.7 * SIZE, (2, n))
    theta = _uniform(rng, 0, ROTATION, n)
    dx, dy = (xs - col(cx)) / col(radius), (ys - col(cy)) / col(radius)
    u = dx * col(np.cos(theta)) + dy * col(np.sin(theta))
    v = dy * col(np.cos(theta)) - dx * col(np.sin(theta))
    distance = np.empty_like(u)
    for k in range(len(SHAPES)):
        rows = kind == k
        distance[rows] = _shape_distance(k, u[rows], v[rows])
    _paint(canvas, distance * col(radius), shape_colour)

    # the mark: a dot at the centre, in a colour a little away from the shape's
    mark_colour = _colours(rng, n, shape_colour, MIN_MARK_CONTRAST)
    mark_r = _uniform(rng, *MARK_RADIUS, n)
    _paint(canvas, np.hypot(xs - col(cx), ys - col(cy)) - col(mark_r), mark_colour, marked == 1)

    # distractors: dots like the mark and short bars, anywhere
    count = rng.integers(0, MAX_DISTRACTORS + 1, n)
    for slot in range(MAX_DISTRACTORS):
        px, py = _uniform(rng, 0.05 * SIZE, 0.95 * SIZE, (2, n))
        colour = _colours(rng, n)
        dot = rng.random(n) < 0.6
        r = _uniform(rng, *MARK_RADIUS, n)
        angle = _uniform(rng, 0, np.pi, n)
        length, width = _uniform(rng, 2, 6, n), _uniform(rng, 0.6, 1.2, n)
        ex, ey = xs - col(px), ys - col(py)
        along = np.abs(ex * col(np.cos(angle)) + ey * col(np.sin(angle)))
        across = np.abs(ey * col(np.cos(angle)) - ex * col(np.sin(angle)))
        dots = np.hypot(ex, ey) - col(r)
        bars = np.maximum(along - col(length), across - col(width))
        _paint(canvas, np.where(col(dot), dots, bars), colour, count > slot)

    # an occluding patch in some images (it may hide the mark)
    occluded = rng.random(n) < OCCLUSION_P
    w, h = _uniform(rng, 5, 12, (2, n))
    x0, y0 = rng.random(n, np.float32) * (SIZE - w), rng.random(n, np.float32) * (SIZE - h)
    box = np.maximum(np.abs(xs - col(x0 + w / 2)) - col(w / 2), np.abs(ys - col(y0 + h / 2)) - col(h / 2))
    _paint(canvas, box, _colours(rng, n), occluded)
    return canvas


def generate(n: int = N_IMAGES, seed: int = GENERATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(`images` uint8 [n, 3, 32, 32], `labels` int64 [n]): balanced classes (label i % 10), in a fixed order."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + np.float32(0.5)
    labels = np.arange(n, dtype=np.int64) % len(CLASS_NAMES)
    images = np.empty((n, 3, SIZE, SIZE), np.uint8)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        canvas = _draw(rng, labels[start:stop], ys, xs)
        canvas += rng.normal(0, NOISE_SIGMA, canvas.shape).astype(np.float32)
        images[start:stop] = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    return images, labels
