"""A fusion layer's options: its constructor's arguments, checked before it is built.

The constructor is the one declaration (no second list to keep in step): every
argument but `modality_names` and `name` is an option, and its default, where
it shows one, gives the type the option takes.
"""

import inspect
import math
import numbers

from mmkeras.registry import did_you_mean

# Constructor arguments every fusion has that are not options: the builder passes them.
_NOT_OPTIONS = ("self", "modality_names", "name")


def fusion_options(fusion_class):
    """`{option: default}` of a fusion layer class, from its constructor.

    An option without a default maps to `inspect.Parameter.empty`.

    Example:
    >>> from mmkeras.fusion import LowRankFusion
    >>> fusion_options(LowRankFusion)
    {'hidden_dim': 256, 'rank': 4, 'dropout': 0.1}
    """
    parameters = inspect.signature(fusion_class.__init__).parameters.values()
    return {p.name: p.default for p in parameters
            if p.name not in _NOT_OPTIONS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_options(fusion_class, options, where="fusion_options"):
    """`options` for `fusion_class`, checked: names, required ones, types.

    A type is checked where the default shows one (bool, int, float, str);
    an option whose default is None takes anything. A float option also
    takes a number written as a string (YAML 1.1 reads `1e-3` so).

    Args:
        fusion_class: a fusion layer class (a value of `FUSIONS`).
        options: a dict of option -> value.
        where: the options' location for messages (`"app.yaml:
            model.fusion_options"` from an app file).

    Returns:
        The options, numbers written as strings read as numbers.

    Example:
    >>> from mmkeras.fusion import GatedFusion
    >>> check_options(GatedFusion, {"hidden_dim": 64})
    {'hidden_dim': 64}
    >>> check_options(GatedFusion, {"hiden_dim": 64})
    Traceback (most recent call last):
    ...
    ValueError: fusion_options.hiden_dim: unknown key (did you mean 'hidden_dim'?); GatedFusion takes: hidden_dim
    >>> check_options(GatedFusion, {"hidden_dim": "wide"})
    Traceback (most recent call last):
    ...
    ValueError: fusion_options.hidden_dim: expected an integer. Received: 'wide'
    """
    declared = fusion_options(fusion_class)
    for key in options:
        if key not in declared:
            takes = f"takes: {', '.join(declared)}" if declared else "takes no options"
            raise ValueError(f"{where}.{key}: unknown key{did_you_mean(key, declared)}; "
                             f"{fusion_class.__name__} {takes}")
    for key, default in declared.items():
        if default is inspect.Parameter.empty and key not in options:
            raise ValueError(f"{where}.{key}: a required key")
    return {key: _typed(value, declared[key], f"{where}.{key}") for key, value in options.items()}


def _typed(value, default, where):
    """`value` as the type of `default` asks for it (config.py's wording), else an error."""
    def mismatch(expected):
        return ValueError(f"{where}: expected {expected}. Received: {value!r}")

    # bool before int: True is an Integral too.
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise mismatch("true or false")
    elif isinstance(default, numbers.Integral):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise mismatch("an integer")
    elif isinstance(default, numbers.Real):
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise mismatch("a finite number")
        return value if isinstance(value, numbers.Real) else number
    elif isinstance(default, str) and not isinstance(value, str):
        raise mismatch("a string")
    return value


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None
