"""`build_model`: modality inputs -> encoders -> shared width -> fusion -> head."""

import keras
import numpy as np

from mmkeras import fusion as fusion_lib
from mmkeras.fusion import ModalityDropout
from mmkeras.modalities import Modality
from mmkeras.modalities.missing import PresentBatchNormalization
from mmkeras.multimodal_classifier import MultimodalClassifier
from mmkeras.registry import lookup
from mmkeras.tasks import AUX_SUFFIX, LABEL_OUTPUT

# Layer names of the model itself; an input with one of them would clash.
RESERVED_NAMES = ("label", "fusion", "presence", "modality_embeddings", "modality_dropout",
                  "head_hidden", "head_dropout")


def build_model(inputs, fusion="concat", task=None, *, projection_dim=128, modality_dropout=0.1,
                fusion_options=None, feature_norm=True, adapt_data=None, name="multimodal_classifier"):
    """Builds a multimodal classifier: a functional `MultimodalClassifier`.

    The model takes a dict keyed by modality name (decoded raw inputs: pixels,
    strings, waveforms, floats) and returns class probabilities from a layer
    named `"label"` (a dict with `"<name>_aux"` outputs too when the task asks
    for auxiliary heads). A missing modality is NaN (or `""` for text) and
    gets a learned missing embedding. The model keeps `inputs` and `task` as
    `model.specs` and `model.task`, in its config too, so a reloaded `.keras`
    file exports and evaluates with nothing passed beside it.

    Args:
        inputs: list of modality specs (`ImageInput`, `TextInput`, ...).
        fusion: a key of `mmkeras.fusion.FUSIONS`: `"concat"`, `"weighted"`,
            `"gated"`, `"attention"`, `"cross_attention"`, `"transformer"`,
            `"low_rank"`, or one registered there.
        task: a `Classification`.
        projection_dim: shared width every modality is projected to.
        modality_dropout: rate at which whole modalities are dropped in
            training.
        fusion_options: the fusion layer's options (its constructor
            arguments, e.g. `hidden_dim`), checked against its constructor.
        feature_norm: batch-normalise each encoder's pooled features before
            its projection (see `_project`).
        adapt_data: training data for specs that learn state (text
            vocabulary, sensor statistics): a `tf.data.Dataset` of
            `(inputs, labels)` or a dict of arrays keyed by modality name.
            The state is learned by copies of the specs, kept as
            `model.specs`; `inputs` themselves are not changed.
        name: model name.

    Example:
    >>> import numpy as np
    >>> import mmkeras as mmk
    >>> model = mmk.build_model(
    ...     inputs=[mmk.ImageInput("photo", size=(32, 32)),
    ...             mmk.SensorInput("readings", features=["t", "v"])],
    ...     fusion="gated",
    ...     task=mmk.Classification(labels=["ok", "defect"]),
    ...     adapt_data={"readings": np.random.rand(10, 2)},
    ... )
    >>> sorted(model.input.keys())
    ['photo', 'readings']
    """
    specs = _check_specs(inputs, minimum=2)
    if task is None:
        raise ValueError("build_model needs a `task=`, e.g. mmk.Classification(labels=[...]).")
    specs = _adapted_copies(specs, adapt_data)
    # The fusion and its options are checked before the encoders are built (slow).
    fusion_lib.check_options(lookup(fusion_lib.FUSIONS, fusion, "fusion"), fusion_options or {})

    # === Inputs and encoders ===
    model_inputs = {spec.name: spec.keras_input() for spec in specs}
    encoded = [spec.encode(model_inputs[spec.name]) for spec in specs]

    # === Projection to a shared width ===
    embeddings = [_project(spec, e, projection_dim, feature_norm) for spec, e in zip(specs, encoded)]
    stacked = keras.layers.Concatenate(axis=1, name="modality_embeddings")([
        keras.layers.Reshape((1, projection_dim), name=f"{spec.name}_embedding")(x)
        for spec, x in zip(specs, embeddings)
    ])
    presence = keras.layers.Concatenate(axis=-1, name="presence")([e.presence for e in encoded])

    # === Fusion ===
    stacked, presence = ModalityDropout(modality_dropout, name="modality_dropout")(stacked, presence)
    fusion_layer = fusion_lib.get(fusion, [spec.name for spec in specs], **(fusion_options or {}))
    tokens = token_masks = None
    if fusion_layer.uses_tokens:  # projections nothing reads would stay untrained
        tokens = [keras.layers.Dense(projection_dim, name=f"{spec.name}_token_projection")(e.tokens)
                  for spec, e in zip(specs, encoded)]
        token_masks = [e.token_mask for e in encoded]
    # Positional: `fusion.input` lists them in this order (evaluation reads the weights so).
    fused = fusion_layer(stacked, presence, tokens, token_masks)

    # === Heads ===
    outputs = _head(fused, task, projection_dim)
    if task.auxiliary_heads:
        outputs = {LABEL_OUTPUT: outputs}
        for spec, x in zip(specs, embeddings):
            outputs[f"{spec.name}{AUX_SUFFIX}"] = task.head(f"{spec.name}{AUX_SUFFIX}")(x)
    return MultimodalClassifier(model_inputs, outputs, specs=specs, task=task, name=name)


def build_unimodal(input, task, *, projection_dim=128, feature_norm=True, adapt_data=None, name=None):
    """The same encoder and head without fusion: the baseline reports compare.

    `projection_dim` and `feature_norm` are `build_model`'s.

    Example:
    >>> import mmkeras as mmk
    >>> model = mmk.build_unimodal(mmk.ImageInput("photo", size=(32, 32)),
    ...                            mmk.Classification(labels=["ok", "defect"]))
    >>> list(model.input.keys())
    ['photo']
    """
    (spec,) = _adapted_copies(_check_specs([input], minimum=1), adapt_data)
    model_input = spec.keras_input()
    encoded = spec.encode(model_input)
    x = _project(spec, encoded, projection_dim, feature_norm)
    outputs = _head(x, task, projection_dim)
    return MultimodalClassifier({spec.name: model_input}, outputs, specs=[spec], task=task,
                                name=name or f"{spec.name}_only")


def _project(spec, encoded, width, feature_norm):
    """An encoder's pooled features -> `width`, standardised first when `feature_norm`.

    Why: pooled CNN features vary little across examples at initialisation
    (std about 0.08 at the fused vector), so the head starts in the
    near-linear part of its activation. Where the label needs two modalities
    jointly (an XOR), that left the fused model on a plateau for 16-30+
    epochs; standardising each feature across the batch, as a scaler does
    before a classic classifier, ended the plateau in 5-6
    (`benchmarks/README.md`, two modalities).
    """
    pooled = encoded.pooled
    if feature_norm:
        # momentum 0.9, as in the encoders: a demo run takes ~30 steps an epoch.
        # Statistics of the examples that have the modality: a missing one's
        # features (its encoder ran on a filled input) are replaced after the
        # projection by the learned missing embedding anyway.
        pooled = PresentBatchNormalization(momentum=0.9, name=f"{spec.name}_feature_norm")(
            pooled, encoded.presence)
    return keras.layers.Dense(width, name=f"{spec.name}_projection")(pooled)


def _head(x, task, width):
    """The classifier after fusion (or after the one projection of a baseline).

    A hidden layer first: the label may depend on the modalities jointly (two
    sources must agree, a sum of cues), which a linear head over the fused
    vector cannot express.
    """
    x = keras.layers.Dense(width, activation="gelu", name="head_hidden")(x)
    return task.head("label")(keras.layers.Dropout(0.1, name="head_dropout")(x))


def _check_specs(inputs, minimum):
    specs = list(inputs)
    for spec in specs:
        if not isinstance(spec, Modality):
            raise TypeError(
                f"Inputs must be modality specs (ImageInput, TextInput, AudioInput, "
                f"SensorInput). Received: {spec!r} of type {type(spec).__name__}"
            )
    if len(specs) < minimum:
        raise ValueError(
            f"Fusion needs at least {minimum} modalities; use build_unimodal for one. "
            f"Received: {[getattr(s, 'name', s) for s in specs]}"
        )
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"Modality names must be unique. Received: {names}")
    reserved = [name for name in names if name in RESERVED_NAMES]
    if reserved:
        raise ValueError(
            f"Modality names {reserved} are reserved: the model has layers with these names. "
            f"Reserved: {list(RESERVED_NAMES)}. Received: {names}"
        )
    return specs


def _adapted_copies(specs, adapt_data):
    """Copies of `specs`, those that learn state adapted on `adapt_data`.

    The caller's specs are never changed: learned state (a vocabulary, feature
    statistics) lives in the copies the model keeps (`model.specs`), so a
    rebuild with other data (k-fold, retraining) learns from that data, not
    from the first build's.
    """
    copies = [type(spec).from_config(spec.get_config()) for spec in specs]
    pending = [spec for spec in copies if spec.needs_adapt()]
    if not pending:
        return copies
    if adapt_data is None:
        names = [spec.name for spec in pending]
        raise ValueError(
            f"Inputs {names} learn state from training data (text vocabulary, sensor "
            f"statistics): pass `adapt_data=` (the training dataset) to build the model."
        )
    columns = _columns(adapt_data, pending)
    for spec in pending:
        spec.adapt(columns[spec.name])
    return copies


def _columns(data, specs):
    """Collects numpy columns of `specs` from a dict of arrays or a tf.data.Dataset."""
    names = [spec.name for spec in specs]
    if isinstance(data, dict):
        _check_keys(names, data.keys())
        return {name: np.asarray(data[name]) for name in names}
    element_spec = getattr(data, "element_spec", None)
    features_spec = element_spec[0] if isinstance(element_spec, tuple) else element_spec
    if not isinstance(features_spec, dict):
        raise TypeError(
            f"`adapt_data` must be a dict of arrays keyed by input name, or a tf.data.Dataset "
            f"of `(features_dict, labels)` or `features_dict`. Received: {type(data).__name__} "
            f"with element spec {element_spec}"
        )
    _check_keys(names, features_spec.keys())
    # Batched when an element has the model input's rank (batch axis included);
    # a static batch size (drop_remainder=True) counts too.
    if features_spec[names[0]].shape.rank == len(specs[0].keras_input().shape):
        data = data.unbatch()
    parts = {name: [] for name in names}
    for element in data.as_numpy_iterator():
        features = element[0] if isinstance(element, tuple) else element
        for name in names:
            parts[name].append(features[name])
    return {name: np.stack(values) for name, values in parts.items()}


def _check_keys(names, keys):
    missing = [name for name in names if name not in keys]
    if missing:
        raise ValueError(
            f"`adapt_data` has no values for inputs {missing}, which learn state from "
            f"training data. Expected keys {list(names)}; received keys {sorted(keys)}."
        )
