"""Category modality: one value of a categorical column (a machine id, a ward) -> a learned embedding."""

import collections

import keras
import numpy as np

from mmkeras.modalities.missing import TextPresence, TokenMask
from mmkeras.modalities.modality import Encoded, Modality, Proposal
from mmkeras.modalities.column_cells import numbers, present_cells
from mmkeras.modalities.raw_formats import StringRaw

# An embedding's width from the number of categories n, fast.ai's rule
# (round(1.6 * n ** 0.56)): wide enough to separate them, narrow enough not
# to memorise a few thousand rows; capped where the fusion's projection is.
MAX_EMBEDDING_DIM = 64


class CategoryInput(StringRaw, Modality):
    """A categorical input: one string per example (an integer id is read as its digits).

    The vocabulary is learned by `adapt` from the training split (the most
    frequent values first) and kept in the config, so it lives in the model.
    A value never seen in training goes to one of `num_oov_buckets`
    out-of-vocabulary buckets (by hash), so serving takes any string. `""` is
    a missing value: the presence flag is 0, as for every kind.

    Args:
        name: input name (model input and serving field).
        max_tokens: the most categories kept (the most frequent); None keeps
            every value seen in training.
        num_oov_buckets: buckets shared by unseen (and dropped) values.
        embedding_dim: the embedding's width; None picks
            `min(64, round(1.6 * n ** 0.56))` for `n` categories and buckets.
        vocabulary: the categories; learned by `adapt()` if None.

    Example:
    >>> spec = CategoryInput("machine")
    >>> spec.adapt(["m1", "m2", "m1", ""])
    >>> spec.vocabulary, spec.output_dim
    (['m1', 'm2'], 3)
    >>> spec.encode(spec.keras_input()).pooled.shape[-1]
    3
    """

    kind = "category"

    def __init__(self, name, max_tokens=None, num_oov_buckets=1, embedding_dim=None, vocabulary=None):
        super().__init__(name)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.num_oov_buckets = int(num_oov_buckets)
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.vocabulary = None if vocabulary is None else [str(v) for v in vocabulary]
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"CategoryInput max_tokens must be >= 1 or None. Received: {max_tokens}")
        if self.num_oov_buckets < 1:
            raise ValueError(f"CategoryInput num_oov_buckets must be >= 1 (unseen values go there). "
                             f"Received: {num_oov_buckets}")
        if self.vocabulary is not None and "" in self.vocabulary:
            raise ValueError(f"CategoryInput({name!r}) vocabulary holds '', which is the missing value.")

    @property
    def output_dim(self):
        """The embedding's width (`embedding_dim`, or from the vocabulary size)."""
        if self.embedding_dim is not None:
            return self.embedding_dim
        count = len(self.vocabulary) + self.num_oov_buckets
        return min(MAX_EMBEDDING_DIM, max(2, round(1.6 * count ** 0.56)))

    def keras_input(self):
        return keras.Input(shape=(), dtype="string", name=self.name)

    def needs_adapt(self):
        return self.vocabulary is None

    def adapt(self, values):
        """Learns the vocabulary: the values seen, most frequent first (ties in
        sorted order, so it does not depend on row order), up to `max_tokens`."""
        values = [_as_text(v) for v in np.asarray(values, object).reshape(-1)]
        counts = collections.Counter(v for v in values if v)
        ranked = sorted(counts, key=lambda v: (-counts[v], v))
        self.vocabulary = ranked[:self.max_tokens]

    def encode(self, x):
        if self.needs_adapt():
            raise ValueError(f"CategoryInput({self.name!r}) has no vocabulary: pass `vocabulary=`, or "
                             f"build with `adapt_data=` so it learns one.")
        # Values come stripped (`_as_text`); "" alone is missing, as it is for the lookup.
        presence = TextPresence(strip=False, name=f"{self.name}_presence")(x)
        # "" (missing) is the mask token, id 0; unseen values hash to the
        # buckets after it; the vocabulary follows.
        ids = keras.layers.StringLookup(vocabulary=self.vocabulary, num_oov_indices=self.num_oov_buckets,
                                        mask_token="", name=f"{self.name}_lookup")(x)
        count = len(self.vocabulary) + self.num_oov_buckets + 1
        pooled = keras.layers.Embedding(count, self.output_dim, name=f"{self.name}_lookup_embedding")(ids)
        tokens = keras.layers.Reshape((1, self.output_dim), name=f"{self.name}_tokens")(pooled)
        token_mask = TokenMask(name=f"{self.name}_token_mask")(tokens)
        return Encoded(pooled, tokens, token_mask, presence)

    # --- Its path: a manifest cell holds the value (JSONL may hold an
    # integer); a client sends the string.

    def parse_cells(self, cells):
        column = cells.column
        value = cells[column]
        if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
            cells.fail(column, f"expected a category (text or an integer), got {type(value).__name__} {value!r}")
            return ""
        return _as_text(value)

    @classmethod
    def propose(cls, column, cells, folder):
        """Short values (a few words at most) that repeat: at most a fifth as
        many distinct values as rows (and 100), or whole numbers with 10 or
        fewer. Short values that never repeat identify rows."""
        present = present_cells(cells)
        if not present or max(len(value.split()) for value in present) > 4:
            return None
        values = numbers(cells)
        distinct = collections.Counter(present)
        common = ", ".join(f"{value} ({count})" for value, count in distinct.most_common(3))
        seen = f"{len(distinct)} distinct values, most common {common}; {len(cells) - len(present)} empty"
        if len(distinct) == len(present) == len(cells) and values is None:
            return Proposal(0.7, {}, f"{len(present)} values, one per row, e.g. {', '.join(present[:2])}",
                            identifies_rows=True)
        codes = values is not None and np.all(values == np.round(values)) and len(distinct) <= 10
        if len(distinct) <= min(100, max(2, len(present) // 5)) or codes:
            return Proposal(0.7, {}, seen)
        return None

    def summarize(self, values):
        present = [v for v in values if v]
        entry = {"missing": len(values) - len(present), "values": len(set(present))}
        counts = collections.Counter(present).most_common(3)
        if counts:
            entry["most_common"] = ", ".join(f"{value} ({count})" for value, count in counts)
        return entry

    def synthetic_raw(self, rng):
        return str(rng.choice(self.vocabulary)) if self.vocabulary else "a category"

    def edge_float_layers(self):
        # int8 calibration runs without the lookup's table (every value reads as unseen),
        # so the ranges after it are wrong: the whole path to the fusion stays float.
        return [f"{self.name}_{layer}" for layer in ("presence", "lookup_embedding", "projection", "embedding")]

    def edge_refusal(self):
        if self.num_oov_buckets > 1:
            return (f"category input {self.name!r}: num_oov_buckets={self.num_oov_buckets} hashes unseen "
                    f"values (StringToHashBucketFast), which is not a LiteRT built-in op; "
                    f"num_oov_buckets=1 is")
        return None

    def get_config(self):
        return {"name": self.name, "max_tokens": self.max_tokens, "num_oov_buckets": self.num_oov_buckets,
                "embedding_dim": self.embedding_dim, "vocabulary": self.vocabulary}


def _as_text(value):
    """A category value as its string, stripped; None and blanks are missing ("")."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value).strip()
