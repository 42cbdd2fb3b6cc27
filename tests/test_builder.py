"""Tests for mmkeras.builder and mmkeras.tasks: inputs, heads, saving, errors, adapt data."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras.fusion import FUSIONS
from mmkeras.tasks import ClassifierHead

LABELS = ["negative", "neutral", "positive"]
TEXTS = np.array(["the alpha cat", "beta dog runs", "an alpha fox", "slow beta turtle", "alpha", ""])
SENSOR_TRAIN = np.random.default_rng(1).normal([5.0, -1.0, 0.0], 2.0, (60, 3)).astype("float32")


def four_specs(image_trainable=True):
    return [
        mmk.ImageInput("photo", size=(16, 16), trainable=image_trainable),
        mmk.TextInput("review", sequence_length=8, vocabulary_size=100),
        mmk.AudioInput("voice", sample_rate=4000, seconds=0.25, num_mels=16),
        mmk.SensorInput("readings", features=["t", "v", "i"]),
    ]


def four_inputs(batch=6, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "photo": rng.uniform(0, 255, (batch, 16, 16, 3)).astype("float32"),
        "review": np.resize(TEXTS, batch),
        "voice": rng.uniform(-1, 1, (batch, 1000)).astype("float32"),
        "readings": rng.normal(size=(batch, 3)).astype("float32"),
    }
    x["photo"][1] = np.nan  # a missing image
    x["readings"][2, 1] = np.nan  # one missing sensor feature
    return x


ADAPT = {"review": np.repeat(TEXTS, 10), "readings": SENSOR_TRAIN}


def build(task=None, fusion="concat", **kwargs):
    keras.utils.set_random_seed(0)
    return mmk.build_model(four_specs(**kwargs), fusion=fusion, task=task or mmk.Classification(LABELS),
                           projection_dim=16, adapt_data=ADAPT)


def head_input_model(model):
    """The model up to the input of its "label" head."""
    return keras.Model(model.input, model.get_layer("label").input)


# === Inputs and heads ===


def test_inputs_are_named_by_modality_with_the_shared_conventions():
    model = build()
    assert set(model.input) == {"photo", "review", "voice", "readings"}
    shapes = {name: (tuple(x.shape), x.dtype) for name, x in model.input.items()}
    assert shapes == {
        "photo": ((None, None, None, 3), "float32"),
        "review": ((None,), "string"),
        "voice": ((None, 1000), "float32"),
        "readings": ((None, 3), "float32"),
    }


def test_single_label_head_is_a_softmax_over_the_labels():
    model = build()
    x = four_inputs()
    probabilities = model(x).numpy()
    head = model.get_layer("label")
    assert isinstance(head, ClassifierHead)
    assert head.labels == LABELS and head.multi_label is False
    assert probabilities.shape == (6, 3) and probabilities.dtype == np.float32
    kernel, bias = head.get_weights()
    logits = head_input_model(model)(x).numpy() @ kernel + bias
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-6)


def test_multi_label_head_is_an_independent_sigmoid_per_label():
    model = build(mmk.Classification(["scratch", "dent", "rust"], multi_label=True, threshold=0.3))
    x = four_inputs()
    probabilities = model(x).numpy()
    head = model.get_layer("label")
    assert head.multi_label is True and head.threshold == 0.3
    kernel, bias = head.get_weights()
    logits = head_input_model(model)(x).numpy() @ kernel + bias
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


def test_auxiliary_heads_are_named_outputs_and_train():
    model = build(mmk.Classification(LABELS, auxiliary_heads=True))
    names = ["label", "photo_aux", "review_aux", "voice_aux", "readings_aux"]
    assert sorted(model.output) == sorted(names)
    outputs = model(four_inputs())
    for name in names:
        assert outputs[name].shape == (6, 3)
        np.testing.assert_allclose(outputs[name].numpy().sum(axis=1), 1.0, rtol=1e-5)
    labels = np.array([0, 1, 2, 0, 1, 2])
    dataset = tf.data.Dataset.from_tensor_slices((four_inputs(), {n: labels for n in names})).batch(3)
    model.compile("adam", {n: "sparse_categorical_crossentropy" for n in names})
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert {f"{n}_loss" for n in names} <= set(history.history)


def test_build_unimodal_is_the_same_encoder_and_head_without_fusion():
    spec = mmk.TextInput("review", sequence_length=8, vocabulary_size=100)
    model = mmk.build_unimodal(spec, mmk.Classification(LABELS), projection_dim=16,
                               adapt_data={"review": ADAPT["review"]})
    assert list(model.input) == ["review"]
    assert model.name == "review_only"
    layer_names = {layer.name for layer in model.layers}
    assert {"review_encoder", "label"} <= layer_names and "fusion" not in layer_names
    # The fused model's layers from encoder to head, but fusion: the feature
    # normalisation, a linear projection, then the same GELU hidden layer and
    # dropout before the head.
    fused = mmk.build_model([spec, mmk.SensorInput("s", features=["a"])], task=mmk.Classification(LABELS),
                            projection_dim=16, adapt_data={"review": ADAPT["review"], "s": np.zeros((2, 1))})
    for name in ("review_feature_norm", "review_projection", "head_hidden", "head_dropout"):
        assert model.get_layer(name).get_config() == fused.get_layer(name).get_config()
    dataset = tf.data.Dataset.from_tensor_slices(({"review": TEXTS}, np.arange(6) % 3)).batch(3)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(dataset, epochs=1, verbose=0)
    probabilities = model.predict(dataset, verbose=0)
    assert probabilities.shape == (6, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_feature_norm_standardises_each_encoders_pooled_features_in_training():
    model = build()
    features = keras.Model(model.input, model.get_layer("voice_projection").input)(four_inputs(), training=True)
    spread = np.std(features, axis=0)
    np.testing.assert_allclose(np.mean(features, axis=0), 0.0, atol=1e-3)
    assert np.all(spread < 1.0 + 1e-3) and np.median(spread) > 0.9
    assert {f"{name}_feature_norm" for name in model.input} <= {layer.name for layer in model.layers}
    keras.utils.set_random_seed(0)
    plain = mmk.build_model(four_specs(), task=mmk.Classification(LABELS), projection_dim=16,
                            feature_norm=False, adapt_data=ADAPT)
    assert not [layer.name for layer in plain.layers if layer.name.endswith("_feature_norm")]


def test_inference_is_deterministic_and_leaves_batchnorm_alone():
    """Keras 3.15 leaked Resizing's training=True default to later layers (keras#23166)."""
    model = build()
    x = four_inputs()
    moving = {v.path: np.array(v) for v in model.non_trainable_variables}
    first = model(x).numpy()
    np.testing.assert_array_equal(model(x).numpy(), first)
    np.testing.assert_allclose(model(x, training=False).numpy(), first, rtol=1e-6)
    np.testing.assert_allclose(
        model.predict(tf.data.Dataset.from_tensor_slices(x).batch(6), verbose=0), first, rtol=1e-5, atol=1e-6)
    for v in model.non_trainable_variables:
        np.testing.assert_array_equal(np.array(v), moving[v.path], err_msg=v.path)


# === .keras round trip ===

LOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import keras

    path, inputs_path, outputs_path = sys.argv[1:]
    try:  # without mmkeras imported, its layers are unknown to Keras
        keras.saving.load_model(path, safe_mode=True)
        without = "loaded"
    except Exception as error:
        without = f"{type(error).__name__}: {error}"

    import mmkeras
    import tensorflow as tf

    model = mmkeras.load_model(path)  # registers mmkeras's layers, then keras.saving.load_model
    x = dict(np.load(inputs_path))
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
    np.savez(outputs_path, predict=model.predict(dataset, verbose=0), call=model(x).numpy(),
             without=np.array(without),
             frozen=np.array(model.get_layer("photo_backbone").trainable))
""")


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    model = build(fusion="transformer", image_trainable=False)
    # Train a little so the saved state is not the initial one.
    labels = np.arange(6) % 3
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(tf.data.Dataset.from_tensor_slices((four_inputs(), labels)).batch(3), epochs=1, verbose=0)
    x = four_inputs(seed=1)
    expected = model(x).numpy()
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "inputs.npz", **x)
    (tmp_path / "load.py").write_text(LOAD_SCRIPT)

    result = subprocess.run(
        [sys.executable, "load.py", "model.keras", "inputs.npz", "outputs.npz"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    np.testing.assert_allclose(outputs["call"], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(outputs["predict"], expected, rtol=1e-5, atol=1e-6)
    assert bool(outputs["frozen"]) is False
    # Loading needs `import mmkeras` (or custom_objects): Keras only imports
    # its own packages while deserialising.
    without = str(outputs["without"])
    assert without.startswith("TypeError") and "Could not locate class" in without, without


@pytest.mark.parametrize("fusion", FUSIONS)
def test_keras_file_round_trip_for_every_fusion(fusion, tmp_path):
    """Other encoders, poolings, time series, audio augmentation, multi-label, auxiliary heads: exact reloads."""
    specs = [
        mmk.ImageInput("photo", size=(16, 16), pooling="avg_max"),
        mmk.TextInput("review", encoder="deberta_v3_tiny" if fusion in ("gated", "transformer")
                      else "roberta_tiny", sequence_length=8, vocabulary_size=100),
        mmk.AudioInput("voice", sample_rate=4000, seconds=0.25, num_mels=16, encoder="transformer",
                       waveform_augment=True),
        mmk.TimeSeriesInput("readings", features=["t", "v", "i"], steps=4),
    ]
    x = four_inputs()
    x["readings"] = np.random.default_rng(2).normal(size=(6, 4, 3)).astype("float32")
    x["readings"][3] = np.nan
    keras.utils.set_random_seed(0)
    model = mmk.build_model(specs, fusion=fusion, projection_dim=16,
                            task=mmk.Classification(LABELS, multi_label=True, auxiliary_heads=True),
                            adapt_data={"review": ADAPT["review"], "readings": x["readings"]})
    expected = model(x)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    actual = loaded(x)
    assert sorted(actual) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name].numpy(), expected[name].numpy(), rtol=1e-6, atol=1e-7)
    assert loaded.get_layer("label").labels == LABELS and loaded.get_layer("label").multi_label


# === Errors ===


def _image(name="photo"):
    return mmk.ImageInput(name, size=(8, 8))


def _sensor(name="readings", **kwargs):
    return mmk.SensorInput(name, features=["t"], **kwargs)


@pytest.mark.parametrize("name", ["my photo", "", "1st", "photo-2"])
def test_names_must_be_identifiers(name):
    with pytest.raises(ValueError, match=f"Python identifier.*{name!r}"):
        mmk.ImageInput(name)


def test_reserved_names_are_refused():
    with pytest.raises(ValueError, match=r"\['label'\] are reserved"):
        mmk.build_model([_image("label"), _sensor(mean=[0.0], variance=[1.0])],
                        task=mmk.Classification(LABELS))


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match=r"unique.*\['photo', 'photo'\]"):
        mmk.build_model([_image(), _image()], task=mmk.Classification(LABELS))


def test_one_modality_points_to_build_unimodal():
    with pytest.raises(ValueError, match=r"at least 2 modalities; use build_unimodal.*\['photo'\]"):
        mmk.build_model([_image()], task=mmk.Classification(LABELS))


def test_inputs_must_be_modality_specs():
    with pytest.raises(TypeError, match="modality specs.*'photo' of type str"):
        mmk.build_model(["photo", _image()], task=mmk.Classification(LABELS))


def test_task_and_fusion_are_checked():
    with pytest.raises(ValueError, match="needs a `task=`"):
        mmk.build_model([_image(), _sensor(mean=[0.0], variance=[1.0])])
    with pytest.raises(ValueError, match="Unknown fusion 'sum'.*'concat'"):
        mmk.build_model([_image(), _sensor(mean=[0.0], variance=[1.0])], fusion="sum",
                        task=mmk.Classification(LABELS))
    with pytest.raises(ValueError, match="at least 2 labels"):
        mmk.Classification(["only"])
    with pytest.raises(ValueError, match="unique"):
        mmk.Classification(["a", "a"])


def test_missing_adapt_data_names_the_inputs_that_need_it():
    specs = [_image(), _sensor(), mmk.TextInput("review")]
    with pytest.raises(ValueError, match=r"\['readings', 'review'\].*adapt_data="):
        mmk.build_model(specs, task=mmk.Classification(LABELS))


def test_adapt_data_without_a_needed_column_is_refused():
    with pytest.raises(ValueError, match=r"no values for inputs \['readings'\].*received keys \['photo'\]"):
        mmk.build_model([_image(), _sensor()], task=mmk.Classification(LABELS),
                        adapt_data={"photo": np.zeros((2, 8, 8, 3))})
    dataset = tf.data.Dataset.from_tensor_slices(({"photo": np.zeros((2, 8, 8, 3))}, [0, 1]))
    with pytest.raises(ValueError, match=r"no values for inputs \['readings'\]"):
        mmk.build_model([_image(), _sensor()], task=mmk.Classification(LABELS), adapt_data=dataset)
    with pytest.raises(TypeError, match="dict of arrays"):
        mmk.build_model([_image(), _sensor()], task=mmk.Classification(LABELS), adapt_data=[1.0, 2.0])


# === adapt_data from tf.data ===


@pytest.mark.parametrize("batching", ["unbatched", "batched", "drop_remainder", "features_only"])
def test_adapt_data_from_a_dataset_equals_adapt_data_from_arrays(batching):
    features = {"review": ADAPT["review"], "readings": SENSOR_TRAIN[:ADAPT["review"].shape[0]]}
    if batching == "features_only":
        dataset = tf.data.Dataset.from_tensor_slices(features).batch(7)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((features, np.zeros(len(features["review"]))))
    if batching == "batched":
        dataset = dataset.batch(7)
    if batching == "drop_remainder":
        dataset = dataset.batch(10, drop_remainder=True)  # 60 examples: nothing dropped

    def adapted(data):
        specs = [mmk.TextInput("review", vocabulary_size=100), mmk.SensorInput("readings", ["t", "v", "i"])]
        learned = mmk.build_model(specs, task=mmk.Classification(LABELS), adapt_data=data).specs
        return learned[0].vocabulary, learned[1].mean, learned[1].variance

    from_arrays = adapted(features)
    from_dataset = adapted(dataset)
    assert from_dataset[0] == from_arrays[0]
    np.testing.assert_allclose(from_dataset[1:], from_arrays[1:], rtol=1e-6)
    np.testing.assert_allclose(from_arrays[1], SENSOR_TRAIN[:60].mean(axis=0), rtol=1e-5)


def test_building_leaves_the_specs_alone_and_a_rebuild_learns_from_its_own_data():
    """k-fold, retraining on new data: each build adapts on the data it is given (issue 23, item 2)."""
    specs = [mmk.TextInput("review", sequence_length=8, vocabulary_size=100),
             mmk.SensorInput("readings", features=["t", "v", "i"])]
    before = [spec.get_config() for spec in specs]
    first = mmk.build_model(specs, task=mmk.Classification(LABELS), projection_dim=16, adapt_data=ADAPT)
    assert [spec.get_config() for spec in specs] == before and all(spec.needs_adapt() for spec in specs)
    other = {"review": np.array(["gamma zeta words"] * 6), "readings": SENSOR_TRAIN + 100.0}
    second = mmk.build_model(specs, task=mmk.Classification(LABELS), projection_dim=16, adapt_data=other)
    np.testing.assert_allclose(second.specs[1].mean, SENSOR_TRAIN.mean(axis=0) + 100.0, rtol=1e-4)
    np.testing.assert_allclose(first.specs[1].mean, SENSOR_TRAIN.mean(axis=0), rtol=1e-4)
    assert "alpha" in first.specs[0].vocabulary and "alpha" not in second.specs[0].vocabulary
    baseline = mmk.build_unimodal(specs[1], mmk.Classification(LABELS), adapt_data=other)
    np.testing.assert_allclose(baseline.specs[0].mean, second.specs[1].mean)
    assert specs[1].mean is None
