"""Train / validation / test splits of `Examples`, and the record a run keeps of its split.

A manifest with a `split` column says which rows go where (`Examples.splits`);
otherwise the split is seeded and, for single-label data, stratified by class so
a rare class is in every split. A run writes the rows of each split, and how
they were made, to `split.json`, so `mmkeras evaluate` scores the model on rows
it never trained on.
"""

import json
import os

import numpy as np

from mmkeras.data.manifest import Examples

SPLIT_NAMES = ("train", "validation", "test")
SPLIT_FILE = "split.json"


class Split(tuple):
    """`(train, validation, test)` `Examples`, unpacked like a tuple, with `how`
    they were made: `{"method": "manifest" | "stratified" | "random", "note": str | None}`."""

    def __new__(cls, parts, how):
        split = super().__new__(cls, parts)
        split.how = how
        return split


def split_examples(examples, validation_fraction, test_fraction, seed=0, labels=None):
    """Train / validation / test `Examples`: as the manifest's `split` column
    says where it has one (`examples.splits`), else a seeded split, stratified
    by class for single-label data.

    Stratified, each class with at least 3 examples has one in every split and
    about its share of each fraction. A class with fewer (or multi-label
    targets) makes the split random, with a note saying why.

    Args:
        examples: `Examples` from `load_examples`.
        validation_fraction: share of the examples in the validation split.
        test_fraction: share of the examples in the test split.
        seed: seed of the split.
        labels: class names, for the notes (default: class ids).

    Returns:
        A `Split`: `(train, validation, test)` with `.how`.

    Example:
    >>> labels = np.array([0] * 7 + [1] * 3)  # rows 8, 9 and 10 are class 1
    >>> examples = Examples({"x": np.zeros((10, 1), "float32")}, labels, list(range(1, 11)))
    >>> split = split_examples(examples, 0.2, 0.2)
    >>> [part.rows for part in split], split.how["method"]
    ([[1, 2, 4, 6, 7, 8], [5, 10], [3, 9]], 'stratified')
    >>> examples.splits = np.array(["test", "train", "validation"] + ["train"] * 7, object)
    >>> [part.rows for part in split_examples(examples, 0.2, 0.2)]
    [[2, 4, 5, 6, 7, 8, 9, 10], [3], [1]]
    """
    if examples.splits is not None:
        parts = tuple(np.flatnonzero(examples.splits == name) for name in SPLIT_NAMES)
        how = {"method": "manifest", "note": None}
        used = "the manifest's split column"
    else:
        parts, how = _seeded_split(np.asarray(examples.labels), validation_fraction, test_fraction, seed,
                                   labels)
        used = f"validation_fraction={validation_fraction} and test_fraction={test_fraction}"
    empty = [name for name, part in zip(SPLIT_NAMES, parts) if len(part) == 0]
    if empty:
        raise ValueError(f"{len(examples)} example(s) with {used} leave the {' and '.join(empty)} "
                         f"split(s) empty; use more data or another split.")
    absent = _absent_classes(np.asarray(examples.labels), parts, labels)
    if absent:  # a manifest's split or a random one can still miss a class; say so
        how = {**how, "note": "; ".join(filter(None, [how["note"], absent]))}
    return Split(tuple(subset(examples, np.sort(indices)) for indices in parts), how)


def _class_name(labels, k):
    return repr(labels[k]) if labels is not None and k < len(labels) else str(k)


def _seeded_split(targets, validation_fraction, test_fraction, seed, labels):
    """(train, validation, test) positions and how they were made."""
    rng = np.random.default_rng(seed)
    num_test = int(round(len(targets) * test_fraction))
    num_val = int(round(len(targets) * validation_fraction))
    if targets.ndim != 1:
        note = "multi-label targets: a random split (label sets are not stratified)"
        return _random_split(len(targets), num_val, num_test, rng), {"method": "random", "note": note}
    classes, counts = np.unique(targets, return_counts=True)
    small = [(k, n) for k, n in zip(classes, counts) if n < len(SPLIT_NAMES)]
    if small:
        named = ", ".join(f"class {_class_name(labels, k)} has {n} example(s)" for k, n in small)
        note = (f"a random split: {named}, too few for one in each of the {len(SPLIT_NAMES)} "
                "splits a stratified split needs")
        return _random_split(len(targets), num_val, num_test, rng), {"method": "random", "note": note}
    return _stratified_split(targets, classes, counts, num_val, num_test, rng), {"method": "stratified",
                                                                                  "note": None}


def _random_split(num_examples, num_val, num_test, rng):
    order = rng.permutation(num_examples)
    return order[num_test + num_val:], order[num_test:num_test + num_val], order[:num_test]


def _stratified_split(targets, classes, counts, num_val, num_test, rng):
    """Each class split on its own: at least one example in each split, the
    rest shared out so the totals stay near `num_val` and `num_test`."""
    test = _quotas(counts, num_test, counts - 2)
    val = _quotas(counts, num_val, counts - test - 1)
    parts = ([], [], [])
    for k, t, v in zip(classes, test, val):
        order = rng.permutation(np.flatnonzero(targets == k))
        parts[0].append(order[t + v:])
        parts[1].append(order[t:t + v])
        parts[2].append(order[:t])
    return tuple(np.concatenate(part) for part in parts)


def _quotas(counts, total, most):
    """Per-class shares of `total`, proportional to `counts` (largest remainder),
    each at least 1 and at most `most`; the minimum of 1 may push the sum past `total`."""
    ideal = counts * total / counts.sum()
    quota = np.clip(np.floor(ideal).astype(int), 1, most)
    for k in np.argsort(quota - ideal, kind="stable"):  # largest remainder first
        if quota.sum() >= total:
            break
        if quota[k] < most[k]:
            quota[k] += 1
    return quota


def _absent_classes(targets, parts, labels):
    """A note naming each class of the data that has no example in some split, or None."""
    def present(indices):
        part = targets[indices]
        if targets.ndim == 1:
            return set(part.tolist())
        return set(np.flatnonzero(part.sum(axis=0) > 0).tolist())

    everywhere = present(np.arange(len(targets)))
    missing = [f"class {_class_name(labels, k)} has no example in the {name} split"
               for name, part in zip(SPLIT_NAMES, parts) for k in sorted(everywhere - present(part))]
    return "; ".join(missing) or None


def subset(examples, indices):
    """The `Examples` at `indices` (positions, not manifest rows)."""
    return Examples({name: values[indices] for name, values in examples.columns.items()},
                    examples.labels[indices], [examples.rows[i] for i in indices],
                    None if examples.splits is None else examples.splits[indices])


def write_split(work_dir, manifest, seed, train, val, test, how=None):
    """Records which manifest rows went to which split, and `how` (a `Split`'s
    `.how`; None when the caller did not say), for `mmkeras evaluate`."""
    record = {"manifest": os.path.abspath(manifest), "seed": seed, "how": how,
              "rows": {"train": train.rows, "validation": val.rows, "test": test.rows}}
    path = os.path.join(work_dir, SPLIT_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)


def recorded_split(app, work_dir, part="test"):
    """The examples of one part (`"train"`, `"validation"`, `"test"`) of the run in
    `work_dir`, read again from its manifest with `app.load_examples`; the test
    part holds the rows its model never trained on."""
    path = os.path.join(work_dir, SPLIT_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {SPLIT_FILE} in {work_dir}: run `mmkeras run` or `mmkeras train` "
                                f"there first, or pass --data to evaluate on another manifest.")
    with open(path) as f:
        record = json.load(f)
    examples, _ = app.load_examples(record["manifest"], on_error="skip",
                                    report_path=os.path.join(work_dir, "skipped_rows.csv"))
    position = {row: i for i, row in enumerate(examples.rows)}
    gone = [row for row in record["rows"][part] if row not in position]
    if gone:
        raise ValueError(
            f"{len(gone)} of the {len(record['rows'][part])} {part} rows of the run in {work_dir} are no "
            f"longer valid rows of {record['manifest']} (rows {gone[:10]}); the manifest or its files "
            f"changed since. Evaluate on a manifest with --data, or run again.")
    return subset(examples, np.asarray([position[row] for row in record["rows"][part]]))
