"""What every modality spec shares: a name, a config, and what encoding returns."""

import collections

# What an encoder hands to fusion. `pooled` is [B, D], `tokens` [B, N, D],
# `token_mask` bool [B, N] (False on padding), `presence` float [B, 1].
Encoded = collections.namedtuple("Encoded", ["pooled", "tokens", "token_mask", "presence"])


class Modality:
    """Base class of the input specs (`ImageInput`, `TextInput`, ...).

    A spec is plain data (its constructor arguments) plus the code that turns
    the decoded raw input into features inside the model. Subclasses set
    `kind` and implement `keras_input()` and `encode(x)`.
    """

    kind = None

    def __init__(self, name):
        if not name or not str(name).isidentifier():
            raise ValueError(
                f"A modality name must be a Python identifier (it names the model "
                f"input and the serving field). Received: name={name!r}"
            )
        self.name = name

    def keras_input(self):
        raise NotImplementedError

    def encode(self, x):
        raise NotImplementedError

    def needs_adapt(self):
        """True when the spec must see training data before it can build."""
        return False

    def adapt(self, values):
        """Learns state (vocabulary, feature statistics) from training values."""

    def missing_value(self):
        """The value one example holds when this modality is missing."""
        return float("nan")

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "vocabulary")
        return f"{type(self).__name__}({args})"
