"""Train / validation / test splits of `Examples`, and the record a run keeps of its split.

A manifest with a `split` column says which rows go where (`Examples.splits`);
otherwise the split is random, seeded. A run writes the rows of each split to
`split.json`, so `mmkeras evaluate` scores the model on rows it never trained on.
"""

import json
import os

import numpy as np

from mmkeras.data.manifest import Examples

SPLIT_NAMES = ("train", "validation", "test")
SPLIT_FILE = "split.json"


def split_examples(examples, validation_fraction, test_fraction, seed=0):
    """Train / validation / test `Examples`: as the manifest's `split` column
    says where it has one (`examples.splits`), else a seeded random split.

    Example:
    >>> examples = Examples({"x": np.zeros((10, 1), "float32")}, np.zeros(10, "int32"), list(range(1, 11)))
    >>> [part.rows for part in split_examples(examples, 0.2, 0.2)]
    [[1, 2, 4, 6, 9, 10], [3, 8], [5, 7]]
    >>> examples.splits = np.array(["test", "train", "validation"] + ["train"] * 7, object)
    >>> [part.rows for part in split_examples(examples, 0.2, 0.2)]
    [[2, 4, 5, 6, 7, 8, 9, 10], [3], [1]]
    """
    if examples.splits is not None:
        parts = tuple(np.flatnonzero(examples.splits == name) for name in SPLIT_NAMES)
        how = "the manifest's split column"
    else:
        order = np.random.default_rng(seed).permutation(len(examples))
        num_test = int(round(len(order) * test_fraction))
        num_val = int(round(len(order) * validation_fraction))
        parts = (order[num_test + num_val:], order[num_test:num_test + num_val], order[:num_test])
        how = f"validation_fraction={validation_fraction} and test_fraction={test_fraction}"
    empty = [name for name, part in zip(SPLIT_NAMES, parts) if len(part) == 0]
    if empty:
        raise ValueError(f"{len(examples)} example(s) with {how} leave the {' and '.join(empty)} "
                         f"split(s) empty; use more data or another split.")
    return tuple(subset(examples, np.sort(indices)) for indices in parts)


def subset(examples, indices):
    """The `Examples` at `indices` (positions, not manifest rows)."""
    return Examples({name: values[indices] for name, values in examples.columns.items()},
                    examples.labels[indices], [examples.rows[i] for i in indices],
                    None if examples.splits is None else examples.splits[indices])


def write_split(work_dir, manifest, seed, train, val, test):
    """Records which manifest rows went to which split, for `mmkeras evaluate`."""
    record = {"manifest": os.path.abspath(manifest), "seed": seed,
              "rows": {"train": train.rows, "validation": val.rows, "test": test.rows}}
    path = os.path.join(work_dir, SPLIT_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)


def recorded_test_split(app, work_dir):
    """The test examples of the run in `work_dir` (the rows its model never trained on),
    read again from its manifest with `app.load_examples`."""
    path = os.path.join(work_dir, SPLIT_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {SPLIT_FILE} in {work_dir}: run `mmkeras run` or `mmkeras train` "
                                f"there first, or pass --data to evaluate on another manifest.")
    with open(path) as f:
        record = json.load(f)
    examples, _ = app.load_examples(record["manifest"], on_error="skip",
                                    report_path=os.path.join(work_dir, "skipped_rows.csv"))
    position = {row: i for i, row in enumerate(examples.rows)}
    gone = [row for row in record["rows"]["test"] if row not in position]
    if gone:
        raise ValueError(
            f"{len(gone)} of the {len(record['rows']['test'])} test rows of the run in {work_dir} are no "
            f"longer valid rows of {record['manifest']} (rows {gone[:10]}); the manifest or its files "
            f"changed since. Evaluate on a manifest with --data, or run again.")
    return subset(examples, np.asarray([position[row] for row in record["rows"]["test"]]))
