"""Which modality a model relies on, and how it copes when inputs go missing.

Missing modalities follow the project convention: a missing float input
(image, audio, sensor) is NaN everywhere in that example, a missing text is "".
"""

import keras
import numpy as np

from mmkeras.evaluation.metrics import classification_metrics, default_headline, headline_value, worse_by
from mmkeras.evaluation.predict import as_predict_fn, predict_raw
from mmkeras.fusion.fusion_layer import FusionLayer

DEFAULT_ROBUSTNESS_PROBABILITIES = (0.0, 0.25, 0.5)


def _num_examples(inputs):
    """The number of examples of a dict of arrays, checked to be the same for each."""
    sizes = {name: len(value) for name, value in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"All inputs must have the same number of examples. Received: {sizes}")
    return next(iter(sizes.values()))


def _empty_value(name, value):
    """The missing value of input `name` (NaN, "" or b""), or a TypeError naming it."""
    if value.dtype.kind in "OSU":
        return b"" if value.size and isinstance(value.flat[0], bytes) else ""
    if value.dtype.kind == "f":
        return np.nan
    raise TypeError(
        f"Input {name!r} has dtype {value.dtype}; a missing modality is expressible "
        "only for float (NaN) or string ('') inputs."
    )


def is_missing(inputs, name):
    """Bool `[N]`: True where modality `name` is missing in an example, as
    `mark_missing` writes it: NaN everywhere (float) or "" / b"" (strings).

    Example:
    >>> is_missing({"x": np.array([[np.nan, np.nan], [np.nan, 1.0]])}, "x").tolist()
    [True, False]
    """
    if name not in inputs:
        raise KeyError(f"No input named {name!r}. Received keys: {list(inputs)}")
    value = np.asarray(inputs[name])
    _empty_value(name, value)  # the same dtypes as mark_missing, or its error
    flat = value.reshape(len(value), -1)
    if value.dtype.kind == "f":
        return np.isnan(flat).all(axis=1)
    empty = np.vectorize(lambda v: v == "" or v == b"", otypes=[bool])(flat)
    return empty.all(axis=1)


def mark_missing(inputs, name, mask=None):
    """A copy of `inputs` where modality `name` is missing in the examples of `mask`.

    Float inputs become NaN in those examples, string inputs "".

    Args:
        inputs: dict of arrays keyed by modality name.
        name: the modality to remove.
        mask: bool `[N]`, which examples lose it; None means all.

    Example:
    >>> out = mark_missing({"review": np.array([b"good", b"bad"], object)}, "review", [True, False])
    >>> out["review"].tolist()
    [b'', b'bad']
    """
    if name not in inputs:
        raise KeyError(f"No input named {name!r}. Received keys: {list(inputs)}")
    value = np.asarray(inputs[name])
    mask = np.ones(len(value), bool) if mask is None else np.asarray(mask, bool)
    empty = _empty_value(name, value)
    value = value.astype(object) if value.dtype.kind in "OSU" else value.copy()
    value[mask] = empty
    return {**inputs, name: value}


def headline_scorer(y_true, labels, metric, multi_label, normal_label, threshold=0.5):
    """`y_prob -> the headline metric` of these targets."""
    def score(y_prob):
        return headline_value(
            classification_metrics(y_true, y_prob, labels, multi_label, normal_label, threshold), metric)

    return score


def _predicted(predict_fn, inputs, context):
    y_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    if np.isnan(y_prob).any():
        raise ValueError(
            f"The model returned NaN probabilities {context}. A model evaluated with "
            "missing modalities must replace NaN inputs before its encoders."
        )
    return y_prob


def _labels_for(labels, y_prob):
    return list(labels) if labels is not None else [str(k) for k in range(np.shape(y_prob)[1])]


# === Modality ablation ===


def ablated_probabilities(predict_fn, inputs, on_pass):
    """`{modality: probabilities with it missing in every example}`; `on_pass()` after each pass."""
    probabilities = {}
    for name in inputs:
        probabilities[name] = _predicted(predict_fn, mark_missing(inputs, name), f"with {name!r} missing")
        on_pass()
    return probabilities


def ablation(full_prob, ablated, scorer, metric):
    """`modality_ablation` from the full-input and the `ablated_probabilities`."""
    full = scorer(full_prob)
    missing = {name: scorer(y_prob) for name, y_prob in ablated.items()}
    return {
        "metric": metric,
        "full": full,
        "missing": missing,
        "importance": {name: worse_by(full, value, metric) for name, value in missing.items()},
    }


def modality_ablation(predict_fn, inputs, y_true, *, labels=None, metric=None, multi_label=False,
                      normal_label=None, batch_size=32):
    """The metric with each modality removed from every example, one at a time.

    Args:
        predict_fn: a Keras model or a callable `inputs_dict -> probabilities [N, C]`.
        inputs: dict of arrays keyed by modality name.
        y_true: class ids `[N]` or multi-hot `[N, C]`.
        labels: class names (default "0", "1", ...).
        metric: a scalar of `classification_metrics` (default `default_headline`).
        multi_label: whether `y_true` is multi-hot.
        normal_label: the normal class, needed for `metric="miss_rate"`.
        batch_size: batch size when `predict_fn` is a Keras model.

    Returns:
        dict with `metric`, `full` (all modalities), `missing` (metric with each
        modality missing) and `importance` (how much worse without it).

    Example:
    >>> predict = lambda x: np.stack([1 - x["a"][:, 0], x["a"][:, 0]], 1).clip(0, 1)
    >>> out = modality_ablation(lambda x: np.nan_to_num(predict(x)),
    ...                         {"a": np.array([[0.0], [1.0]])}, [0, 1])
    >>> out["importance"]["a"]
    0.5
    """
    predict_fn = as_predict_fn(predict_fn, batch_size)
    _num_examples(inputs)
    full_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    labels = _labels_for(labels, full_prob)
    metric = metric or default_headline(multi_label)
    scorer = headline_scorer(y_true, labels, metric, multi_label, normal_label)
    return ablation(full_prob, ablated_probabilities(predict_fn, inputs, on_pass=lambda: None), scorer, metric)


# === Missing-modality robustness ===


def sample_missing_mask(num_examples, num_modalities, p, rng, present=None):
    """Bool `[N, V]`: True where a modality is dropped, each with probability `p`.

    No example loses every modality it has: where all its present ones were
    drawn, one of them chosen at random is kept. `present` (bool `[N, V]`,
    default all True) says which inputs the data has; an example with none
    has nothing to keep.

    Example:
    >>> sample_missing_mask(4, 2, 0.99, np.random.default_rng(0)).sum(axis=1).tolist()
    [1, 1, 1, 1]
    >>> present = np.array([[True, False, True]] * 3)
    >>> mask = sample_missing_mask(3, 3, 0.99, np.random.default_rng(0), present)
    >>> (present & ~mask).sum(axis=1).tolist()
    [1, 1, 1]
    """
    present = np.ones((num_examples, num_modalities), bool) if present is None else np.asarray(present, bool)
    mask = rng.random((num_examples, num_modalities)) < p
    all_gone = np.flatnonzero(present.any(axis=1) & ~(present & ~mask).any(axis=1))
    # The k-th present modality of each such example, k uniform over its present ones.
    have = present[all_gone]
    k = rng.integers(0, have.sum(axis=1)) if all_gone.size else np.zeros(0, int)
    keep = np.argmax(np.cumsum(have, axis=1) > k[:, None], axis=1)
    mask[all_gone, keep] = False
    return mask


def robustness(predict_fn, inputs, full_prob, scorer, metric, probabilities, seed, on_pass):
    """`missing_modality_robustness` from the full-input probabilities, plus `notes`;
    `on_pass()` after each model pass."""
    names = list(inputs)
    num_examples = _num_examples(inputs)
    rng = np.random.default_rng(seed)
    # Inputs the data already lacks count as missing, and are never the one kept.
    present = np.stack([~is_missing(inputs, name) for name in names], axis=1)
    results, notes = [], []
    if len(names) < 2:
        notes.append("Robustness needs at least 2 modalities: one is always kept.")
    if not present.all():
        notes.append(f"{(~present).mean():.1%} of the (example, modality) inputs are missing in the data "
                     "already; robustness counts them in the fraction missing.")
    empty = int((~present.any(axis=1)).sum())
    if empty:
        notes.append(f"{empty} example(s) have no modality at all in the data.")
    for p in probabilities:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Drop probabilities must be in [0, 1). Received: {p}")
        drop = sample_missing_mask(num_examples, len(names), p, rng, present) & present
        dropped = inputs
        for v, name in enumerate(names):
            if drop[:, v].any():
                dropped = mark_missing(dropped, name, drop[:, v])
        if drop.any():
            value = scorer(_predicted(predict_fn, dropped, f"with modalities dropped at p={p}"))
            on_pass()
        else:
            value = scorer(full_prob)
        missing = drop | ~present
        results.append(
            {
                "p": float(p),
                "value": value,
                "fraction_missing": float(missing.mean()),
                "fraction_missing_per_modality": {n: float(missing[:, v].mean()) for v, n in enumerate(names)},
            }
        )
    return {"metric": metric, "seed": seed, "fraction_missing_in_data": float((~present).mean()),
            "results": results, "notes": notes}


def missing_modality_robustness(predict_fn, inputs, y_true, *, labels=None, metric=None,
                                probabilities=DEFAULT_ROBUSTNESS_PROBABILITIES, multi_label=False,
                                normal_label=None, seed=0, batch_size=32):
    """The metric when each example loses each modality independently with probability p.

    Masks are drawn with `numpy.random.default_rng(seed)`; an example never
    loses all the modalities it has. An input already missing in the data
    (NaN everywhere, or "") stays missing and counts as missing, so the
    fraction of inputs actually missing can be below p (the kept modality) or
    above it (data with gaps); it is reported as `fraction_missing`.

    Args:
        predict_fn: a Keras model or a callable `inputs_dict -> probabilities [N, C]`.
        inputs: dict of arrays keyed by modality name.
        y_true: class ids `[N]` or multi-hot `[N, C]`.
        labels: class names (default "0", "1", ...).
        metric: a scalar of `classification_metrics` (default `default_headline`).
        probabilities: drop probabilities p, each in [0, 1).
        multi_label: whether `y_true` is multi-hot.
        normal_label: the normal class, needed for `metric="miss_rate"`.
        seed: random seed of the masks.
        batch_size: batch size when `predict_fn` is a Keras model.

    Returns:
        dict with `metric`, `seed`, `fraction_missing_in_data` and `results`:
        one `{p, value, fraction_missing, fraction_missing_per_modality}` per p,
        the fractions of (example, modality) inputs missing after the drop.

    Example:
    >>> predict = lambda x: np.nan_to_num(np.stack([1 - x["a"][:, 0], x["a"][:, 0]], 1))
    >>> out = missing_modality_robustness(
    ...     predict, {"a": np.array([[0.0], [1.0]]), "b": np.zeros((2, 1))}, [0, 1])
    >>> out["results"][0]["value"]
    1.0
    """
    predict_fn = as_predict_fn(predict_fn, batch_size)
    y_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    labels = _labels_for(labels, y_prob)
    metric = metric or default_headline(multi_label)
    scorer = headline_scorer(y_true, labels, metric, multi_label, normal_label)
    return robustness(predict_fn, inputs, y_prob, scorer, metric, probabilities, seed, on_pass=lambda: None)


# === Fusion weights ===


def fusion_weights(model, inputs, batch_size=32):
    """Mean per-modality fusion weight, or None when the model exposes none.

    Reads the layer named "fusion": a `FusionLayer` whose `modality_weights`
    gives weights `[B, V]`. The fusion's call arguments are computed by the
    model (one pass up to the fusion), then the weights from them, and
    averaged over the examples.

    Args:
        model: a functional Keras model.
        inputs: dict of arrays keyed by modality name.
        batch_size: prediction batch size.

    Returns:
        `{modality_name: mean weight}` in the order of `fusion.modality_names`, or None.
    """
    try:
        fusion = model.get_layer("fusion")
    except ValueError:
        return None
    if not isinstance(fusion, FusionLayer) or not fusion.has_modality_weights:
        return None
    probe = keras.Model(model.input, list(fusion.input), name="fusion_inputs_probe")
    flat = predict_raw(probe, inputs, batch_size)
    embeddings, presence, tokens, token_masks = _fusion_arguments(fusion, flat)
    parts = []
    for start in range(0, len(embeddings), batch_size):  # batches as the model's: bounded memory
        part = slice(start, start + batch_size)
        weights = fusion.modality_weights(embeddings[part], presence[part], _part(tokens, part),
                                          _part(token_masks, part))
        if weights is None:
            return None
        parts.append(keras.ops.convert_to_numpy(weights))
    means = np.concatenate(parts).astype(np.float64).mean(axis=0)
    return {name: float(means[v]) for v, name in enumerate(fusion.modality_names)}


def _fusion_arguments(fusion, flat):
    """`(embeddings, presence, tokens, token_masks)` from the fusion's flattened
    inputs: the builder passes them positionally, so they come in that order,
    tokens and masks `V` each (or none, for a fusion that reads no tokens)."""
    count = fusion.num_modalities
    if len(flat) == 2:
        return flat[0], flat[1], None, None
    return flat[0], flat[1], list(flat[2:2 + count]), list(flat[2 + count:])


def _part(tensors, part):
    return None if tensors is None else [tensor[part] for tensor in tensors]
