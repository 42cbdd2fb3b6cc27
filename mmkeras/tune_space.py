"""The `tune:` section of an app.yaml: what `mmkeras tune` searches.

Each key is a path into another section (`model.fusion`,
`training.learning_rate`, ...) and its value says what to try: a list of
values, or a range `{min, max}` with `log: true` for a rate (sampled on a log
scale) or `step` for an integer grid. Every value a path may take is checked
as the file's own keys are, when the file is read: a fusion the registry
lacks or a rate out of range is an error naming the path.

Example:
>>> space = parse_space({"model.fusion": ["concat", "gated"],
...                      "training.learning_rate": {"min": 1e-4, "max": 3e-3, "log": True}}, "app.yaml")
>>> space["model.fusion"], space["training.learning_rate"].log
(Choice(values=['concat', 'gated']), True)
"""

import collections
import numbers

Choice = collections.namedtuple("Choice", ["values"])
Range = collections.namedtuple("Range", ["min", "max", "log", "step"])

# The search when an app has no `tune:` section: how the modalities are fused,
# how wide, how often one is hidden, and the learning rate.
DEFAULT_SPACE = {
    "model.fusion": ["concat", "gated", "attention"],
    "model.projection_dim": [64, 128, 256],
    "model.modality_dropout": {"min": 0.0, "max": 0.3},
    "training.learning_rate": {"min": 5e-4, "max": 5e-3, "log": True},
}


def parse_space(space, where):
    """`{path: Choice | Range}` of a `tune:` mapping (its shape only; `check_space`
    checks its values against the app)."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{where}: tune: expected a mapping of section.key -> a list or a range "
                         f"{{min, max}}. Received: {space!r}")
    parsed = {}
    for path, value in space.items():
        here = f"{where}: tune.{path}"
        if not isinstance(path, str) or path.count(".") != 1:
            raise ValueError(f"{here}: expected a path section.key, e.g. model.fusion")
        if isinstance(value, list) and value:
            parsed[path] = Choice(list(value))
        elif isinstance(value, dict):
            parsed[path] = _range(value, here)
        else:
            raise ValueError(f"{here}: expected a non-empty list of values or a range {{min, max[, log, step]}}. "
                             f"Received: {value!r}")
    return parsed


def _range(value, here):
    unknown = set(value) - {"min", "max", "log", "step"}
    if unknown or not {"min", "max"} <= set(value):
        raise ValueError(f"{here}: a range takes min, max and optionally log, step. Received: {value!r}")
    low, high, log, step = value["min"], value["max"], bool(value.get("log", False)), value.get("step")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise ValueError(f"{here}: expected numbers min < max. Received: min={low!r}, max={high!r}")
    if log and low <= 0:
        raise ValueError(f"{here}: a log range needs min > 0. Received: min={low!r}")
    return Range(low, high, log, step)


def candidate_values(entry):
    """The values a path may take, for checking: every choice, or a range's ends."""
    return entry.values if isinstance(entry, Choice) else [entry.min, entry.max]


def is_integer_range(entry):
    return isinstance(entry, Range) and not entry.log and all(isinstance(v, int) for v in (entry.min, entry.max))
