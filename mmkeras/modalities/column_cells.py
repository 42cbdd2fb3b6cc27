"""What a manifest column holds, read the way `Modality.propose` asks (`mmkeras init`)."""

import os

import numpy as np
import tensorflow as tf


def present_cells(cells):
    """The cells that hold a value (not None, not blank), as stripped strings
    (JSON numbers as their text)."""
    return [str(cell).strip() for cell in cells if cell is not None and str(cell).strip() != ""]


def sampled_files(cells, folder, count=50):
    """`(present cells, paths of the first `count` that name existing files)`;
    None when fewer than 4 in 5 of those name a file (not a file column)."""
    present = present_cells(cells)
    checked = present[:count]
    paths = [cell if "://" in cell or os.path.isabs(cell) else os.path.join(folder, cell) for cell in checked]
    paths = [path for path in paths if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)]
    if not checked or len(paths) < 0.8 * len(checked):
        return None
    return present, paths


def starts_with(path, signatures):
    """Whether a file's first bytes are one of `signatures` (each a bytes
    prefix, or `(offset, bytes)`)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(16)
    return any(head[offset:offset + len(magic)] == magic
               for offset, magic in ((0, s) if isinstance(s, bytes) else s for s in signatures))


def numbers(cells):
    """The present cells as floats, or None when one is not a finite number."""
    try:
        values = np.asarray([float(cell) for cell in present_cells(cells)], "float64")
    except ValueError:
        return None
    return values if values.size and np.isfinite(values).all() else None
