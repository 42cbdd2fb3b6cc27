"""Drawing helpers for the demo images: coordinate grids, anti-aliased shapes, blending.

Images are drawn as float arrays on a `[size, size]` grid of pixel centres in
(0, 1), so a shape's position and extent do not depend on the image size.

Example:
>>> yy, xx = grid(6)
>>> disc = ellipse(yy, xx, 0.5, 0.5, 0.3, 0.3, 6)  # soft-edged, so small shapes survive
>>> to_uint8(blend(np.zeros((6, 6)), 255.0, disc))[2]
array([  0, 183, 255, 255, 183,   0], dtype=uint8)
"""

import numpy as np


def grid(size):
    """Pixel-centre coordinates `(yy, xx)` in (0, 1), each `[size, size]`."""
    centres = (np.arange(size) + 0.5) / size
    return np.meshgrid(centres, centres, indexing="ij")


def coverage(signed_distance, size):
    """Anti-aliased inside-ness (0..1) from a signed distance (negative inside)."""
    return np.clip(0.5 - signed_distance * size, 0.0, 1.0)


def ellipse(yy, xx, cy, cx, ry, rx, size):
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return coverage((radius - 1.0) * min(ry, rx), size)


def gaussian(yy, xx, cy, cx, sigma):
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * sigma**2))


def polyline_distance(yy, xx, points):
    """Distance from each pixel to the nearest of the densely sampled `points`."""
    dy = yy[..., None] - points[:, 0]
    dx = xx[..., None] - points[:, 1]
    return np.sqrt(dy**2 + dx**2).min(axis=-1)


def blend(image, colour, alpha):
    """Alpha-blends a colour (scalar or RGB) into a float image."""
    alpha = alpha[..., None] if image.ndim == 3 else alpha
    return image * (1.0 - alpha) + np.asarray(colour, dtype=float) * alpha


def to_uint8(image):
    return np.clip(np.round(image), 0, 255).astype(np.uint8)

