"""Masks shared by the fusions: softmax over present modalities, valid tokens."""

from keras import ops


def masked_softmax(logits, presence):
    """Softmax over the last axis that gives missing entries zero weight.

    Computed in float32 so it also holds under mixed precision. When every
    entry of a row is missing, the row falls back to a plain softmax (the
    fused vector is then built from the learned missing embeddings).

    Args:
        logits: `[B, V]` scores (or `[B, ..., V]`).
        presence: `[B, V]` (or broadcastable to `logits`), 1.0 present,
            0.0 missing.
    """
    logits = ops.cast(logits, "float32")
    presence = ops.cast(presence, "float32")
    any_present = ops.max(presence, axis=-1, keepdims=True)
    mask = ops.maximum(presence, 1.0 - any_present)
    logits = ops.where(mask > 0, logits, ops.full_like(logits, -1e9))
    return ops.softmax(logits, axis=-1)


def weighted_sum(weights, embeddings):
    """`sum_v weights[b, v] * embeddings[b, v, :]`."""
    weights = ops.cast(weights, embeddings.dtype)
    return ops.sum(embeddings * weights[:, :, None], axis=1)


def valid_tokens(token_mask, present):
    """Bool `[B, N]`: tokens that are real (not padding) of a modality that is present.

    A missing modality's tokens come from its encoder run on a filled-in
    input (or from a modality dropped in training): attending to them would
    let what is missing leak into the fused vector.

    Args:
        token_mask: `[B, N]`, True (or 1) for real tokens.
        present: `[B]`, the modality's presence, 1.0 present.

    Example:
    >>> import numpy as np
    >>> valid_tokens(np.array([[True, False], [True, True]]), np.array([1.0, 0.0])).numpy().tolist()
    [[True, False], [False, False]]
    """
    return ops.logical_and(ops.cast(token_mask, "bool"), (present > 0)[:, None])
