"""Registries are plain dicts of data (name -> entry); `lookup` reads them.

Fusion layers, modality kinds, image backbones, text and audio encoders and
demo apps are each one such dict, so adding one is one entry, and asking for
an unknown name gets the same error everywhere.
"""

import difflib


def lookup(registry, name, what):
    """`registry[name]`, or a ValueError naming what was asked for and what exists.

    Args:
        registry: a dict of name -> entry.
        name: the name asked for.
        what: what the registry holds, for the message (e.g. `"fusion"`).

    Example:
    >>> lookup({"concat": 1, "gated": 2}, "gated", "fusion")
    2
    >>> lookup({"concat": 1, "gated": 2}, "gate", "fusion")
    Traceback (most recent call last):
    ...
    ValueError: Unknown fusion 'gate' (did you mean 'gated'?). Known: ['concat', 'gated']
    """
    if name in registry:
        return registry[name]
    raise ValueError(f"Unknown {what} {name!r}{did_you_mean(name, registry)}. Known: {sorted(registry)}")


def did_you_mean(name, known):
    """`" (did you mean 'x'?)"` for the closest of `known` names, else `""`.

    Example:
    >>> did_you_mean("patiense", ["epochs", "patience"])
    " (did you mean 'patience'?)"
    """
    close = difflib.get_close_matches(str(name), [str(key) for key in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
