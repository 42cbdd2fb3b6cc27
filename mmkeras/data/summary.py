"""What a validated dataset holds: rows, classes, missing inputs, decoded sizes.

`mmkeras data validate` prints this after the row-by-row validation, so data
can be checked without training.
"""

import numpy as np

from mmkeras.data.splits import SPLIT_NAMES


def summarize(examples, specs, labels, multi_label=False, split=None):
    """A summary of validated `Examples`.

    Args:
        examples: `Examples` from `load_examples`.
        specs: the modality specs they were validated against.
        labels: class names.
        multi_label: labels are multi-hot.
        split: the `Split` of `split_examples` that a run would train on, or None.

    Returns:
        `{"rows": N, "classes": {label: count}, "inputs": {name: {...}}}`;
        each input has `kind` and `missing` (examples without it), plus what
        its kind reports (`Modality.summarize`): `width` / `height` (images),
        `seconds` and `sample_rates` (audio), `words` (text), `values`
        (categories), `steps` (time series) or `missing_values` per feature,
        ranges as `[min, median, max]` over the examples that have the input. With
        `split`, also `"split": {"rows": {split name: N}, "method", "note"}`.

    Example:
    >>> import numpy as np, mmkeras as mmk
    >>> from mmkeras.data import Examples
    >>> examples = Examples({"note": np.array(["a b", ""], object)}, np.array([0, 1]), [1, 2])
    >>> summary = summarize(examples, [mmk.TextInput("note")], ["no", "yes"])
    >>> summary["classes"], summary["inputs"]["note"]["missing"], summary["inputs"]["note"]["words"]
    ({'no': 1, 'yes': 1}, 1, [2.0, 2.0, 2.0])
    """
    targets = np.asarray(examples.labels)
    counts = targets.sum(axis=0) if multi_label else np.bincount(targets, minlength=len(labels))
    summary = {"rows": len(examples),
               "classes": {label: int(count) for label, count in zip(labels, counts)},
               "inputs": {spec.name: {"kind": spec.kind, **spec.summarize(examples.columns[spec.name])}
                          for spec in specs}}
    if split is not None:
        summary["split"] = {"rows": {name: len(part) for name, part in zip(SPLIT_NAMES, split)}, **split.how}
    return summary


def format_summary(summary):
    """The summary as indented text lines."""
    lines = [f"{summary['rows']} rows", "classes: " + ", ".join(f"{k} {v}" for k, v in summary["classes"].items())]
    for name, entry in summary["inputs"].items():
        details = ", ".join(f"{key.replace('_', ' ')} {_readable(value)}" for key, value in entry.items()
                            if key not in ("kind", "missing"))
        lines.append(f"{name} ({entry['kind']}): missing in {entry['missing']}" + (f"; {details}" if details else ""))
    if "split" in summary:
        split = summary["split"]
        method = {"manifest": "from the manifest's split column", "stratified": "stratified by class",
                  "random": "random"}.get(split["method"], split["method"])
        counts = ", ".join(f"{name} {count}" for name, count in split["rows"].items())
        lines.append(f"split: {counts} ({method})" + (f"; {split['note']}" if split["note"] else ""))
    return lines


def _readable(value):
    """A summary value as text: a `[min, median, max]` range as `min-max (median m)`,
    whole numbers without decimals; a dict as `key value` pairs.

    Example:
    >>> _readable([28.0, 28.0, 30.0]), _readable({"t": 0, "v": 3})
    ('28-30 (median 28)', 't 0, v 3')
    """
    if isinstance(value, dict):
        return ", ".join(f"{key} {_readable(v)}" for key, v in value.items())
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, float) for v in value):
        low, median, high = (f"{v:g}" for v in value)
        return f"{low}-{high} (median {median})"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
