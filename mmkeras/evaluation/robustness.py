"""Which modality a model relies on, and how it copes when inputs go missing.

Missing modalities follow the project convention: a missing float input
(image, audio, sensor) is NaN everywhere in that example, a missing text is "".
"""

import keras
import numpy as np

from mmkeras.evaluation.metrics import classification_metrics, default_headline, headline_value, worse_by
from mmkeras.evaluation.predict import as_predict_fn, model_input_names, predict_raw

DEFAULT_ROBUSTNESS_PROBABILITIES = (0.0, 0.25, 0.5)


def _num_examples(inputs):
    """The number of examples of a dict of arrays, checked to be the same for each."""
    sizes = {name: len(value) for name, value in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"All inputs must have the same number of examples. Received: {sizes}")
    return next(iter(sizes.values()))


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
    if value.dtype.kind in "OSU":
        value = value.astype(object)
        empty = b"" if value.size and isinstance(value.flat[0], bytes) else ""
    elif value.dtype.kind == "f":
        empty = np.nan
    else:
        raise TypeError(
            f"Input {name!r} has dtype {value.dtype}; a missing modality is expressible "
            "only for float (NaN) or string ('') inputs."
        )
    value = value.copy()
    value[mask] = empty
    return {**inputs, name: value}


def headline_scorer(y_true, labels, metric, multi_label, normal_label, threshold=0.5):
    """`y_prob -> the headline metric` of these targets."""
    def score(y_prob):
        return headline_value(
            classification_metrics(y_true, y_prob, labels, multi_label, normal_label, threshold), metric)

    return score


def _score(predict_fn, inputs, scorer, context):
    y_prob = np.asarray(predict_fn(inputs), dtype=np.float64)
    if np.isnan(y_prob).any():
        raise ValueError(
            f"The model returned NaN probabilities {context}. A model evaluated with "
            "missing modalities must replace NaN inputs before its encoders."
        )
    return scorer(y_prob)


def _labels_for(labels, y_prob):
    return list(labels) if labels is not None else [str(k) for k in range(np.shape(y_prob)[1])]


# === Modality ablation ===


def ablation(predict_fn, inputs, full_prob, scorer, metric, on_pass):
    """`modality_ablation` from the full-input probabilities; `on_pass()` after each model pass."""
    full = scorer(full_prob)
    missing = {}
    for name in inputs:
        missing[name] = _score(predict_fn, mark_missing(inputs, name), scorer, f"with {name!r} missing")
        on_pass()
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
    return ablation(predict_fn, inputs, full_prob, scorer, metric, on_pass=lambda: None)


# === Missing-modality robustness ===


def sample_missing_mask(num_examples, num_modalities, p, rng):
    """Bool `[N, V]`: True where a modality is dropped, each with probability `p`.

    No example loses every modality: where all were drawn, one chosen at random
    is kept.

    Example:
    >>> sample_missing_mask(4, 2, 0.99, np.random.default_rng(0)).sum(axis=1).tolist()
    [1, 1, 1, 1]
    """
    mask = rng.random((num_examples, num_modalities)) < p
    all_gone = np.flatnonzero(mask.all(axis=1))
    mask[all_gone, rng.integers(0, num_modalities, size=all_gone.size)] = False
    return mask


def robustness(predict_fn, inputs, full_prob, scorer, metric, probabilities, seed, on_pass):
    """`missing_modality_robustness` from the full-input probabilities, plus `notes`;
    `on_pass()` after each model pass."""
    names = list(inputs)
    num_examples = _num_examples(inputs)
    rng = np.random.default_rng(seed)
    results, notes = [], []
    if len(names) < 2:
        notes.append("Robustness needs at least 2 modalities: one is always kept.")
    for p in probabilities:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Drop probabilities must be in [0, 1). Received: {p}")
        mask = sample_missing_mask(num_examples, len(names), p, rng)
        dropped = inputs
        for v, name in enumerate(names):
            if mask[:, v].any():
                dropped = mark_missing(dropped, name, mask[:, v])
        if mask.any():
            value = _score(predict_fn, dropped, scorer, f"with modalities dropped at p={p}")
            on_pass()
        else:
            value = scorer(full_prob)
        results.append(
            {
                "p": float(p),
                "value": value,
                "fraction_missing": float(mask.mean()),
                "fraction_missing_per_modality": {n: float(mask[:, v].mean()) for v, n in enumerate(names)},
            }
        )
    return {"metric": metric, "seed": seed, "results": results, "notes": notes}


def missing_modality_robustness(predict_fn, inputs, y_true, *, labels=None, metric=None,
                                probabilities=DEFAULT_ROBUSTNESS_PROBABILITIES, multi_label=False,
                                normal_label=None, seed=0, batch_size=32):
    """The metric when each example loses each modality independently with probability p.

    Masks are drawn with `numpy.random.default_rng(seed)`; an example never
    loses all its modalities, so the realised fraction can be a little below p
    (it is reported as `fraction_missing`).

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
        dict with `metric`, `seed` and `results`: one `{p, value, fraction_missing,
        fraction_missing_per_modality}` per p.

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

    Looks for a layer named "fusion" whose output is `(fused, weights [B, V])`
    and averages `weights` over the examples.

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
    output = fusion.output
    if not isinstance(output, (list, tuple)) or len(output) != 2:
        return None
    probe = keras.Model(model.input, output[1], name="fusion_weights_probe")
    weights = np.asarray(predict_raw(probe, inputs, batch_size), dtype=np.float64)
    weights = weights.reshape(weights.shape[0], weights.shape[1], -1).mean(axis=2)
    names = list(getattr(fusion, "modality_names", None) or model_input_names(model) or [])
    if len(names) != weights.shape[1]:
        names = [str(v) for v in range(weights.shape[1])]
    means = weights.mean(axis=0)
    return {name: float(means[v]) for v, name in enumerate(names)}
