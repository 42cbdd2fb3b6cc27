"""Tests for mmkeras.backbones: the registry, building, weights and serving hygiene."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmkeras import backbones

ALL_NAMES = sorted(backbones.IMAGE_BACKBONES)

# One entry per library, so every way of passing the input shape is exercised.
ONE_PER_BUILDER = ["tiny_cnn", "resnet18_v2", "keras_hub/resnet_18",
                   "keras_hub/efficientnet_b0", "keras_applications/mobilenetv3small"]

RANDOM_OP = re.compile(r"Random|Multinomial|TruncatedNormal|^Stateful(Uniform|StandardNormal)|^Rng")


def _pixels(shape=(1, 32, 32, 3), seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype("float32")


def _inference_graph(model, shape=(None, None, 3)):
    """Traces the model as a serving signature would: any batch (and CNNs any image size)."""
    spec = tf.TensorSpec((None, *shape), tf.float32)
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)


def _smallest_input(name):
    """Two patches a side for a transformer (fixed size); any size for a CNN."""
    entry = backbones.IMAGE_BACKBONES[name]
    if entry.pooling == "average":
        return (None, None, 3)
    side = 2 * entry.config["patch_size"]
    return (side, side, 3)


def _serving_problems(concrete_function):
    """Random ops, ops outside core TensorFlow, and XLA-compiled functions."""
    graph = concrete_function.graph.as_graph_def()
    functions = {f.signature.name for f in graph.library.function}
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    problems = set()
    for node in nodes:
        if node.op in functions:
            continue
        if RANDOM_OP.search(node.op):
            problems.add(f"random op {node.op}")
        elif not hasattr(tf.raw_ops, node.op):
            problems.add(f"non-core op {node.op}")
        if node.attr["_XlaMustCompile"].b:
            problems.add(f"XLA-compiled call {node.name}")
    for function in graph.library.function:
        if function.attr["_XlaMustCompile"].b:
            problems.add(f"XLA-compiled function {function.signature.name}")
    return sorted(problems)


# === Registry ===


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_backbone_builds_serving_clean_features(name):
    # The heavy entries (resnet50_v2, efficientnets, mobilenet_v3_large, the
    # base-sized transformers) run here too, at the smallest input they take.
    entry = backbones.IMAGE_BACKBONES[name]
    assert entry.library in backbones.LIBRARIES
    assert backbones.image_normalization(name) in backbones.NORMALIZATIONS
    assert entry.pooling in backbones.POOLINGS
    shape = _smallest_input(name)

    model = backbones.build_image_backbone(name, input_shape=shape)
    assert isinstance(model, keras.Model)
    graph = _inference_graph(model, shape)
    features = graph(tf.constant(_pixels((1, *[s or 32 for s in shape[:2]], 3))))

    channels = backbones.feature_channels(name)
    if entry.pooling == "average":
        assert features.shape.rank == 4
        assert features.shape[0] == 1 and features.shape[1] >= 1 and features.shape[2] >= 1
        assert features.shape[-1] == channels
        values = [features]
    else:
        assert features["tokens"].shape[0] == 1 and features["tokens"].shape[1] >= 4
        assert features["tokens"].shape[-1] == channels
        assert features["pooled"].shape == (1, channels)
        values = list(features.values())
    assert all(np.all(np.isfinite(v.numpy())) for v in values)
    assert _serving_problems(graph) == []


@pytest.mark.parametrize("name", ONE_PER_BUILDER)
def test_fixed_input_shape_reaches_the_library(name):
    model = backbones.build_image_backbone(name, input_shape=(32, 32, 3))
    assert tuple(model.input.shape) == (None, 32, 32, 3)
    assert None not in model.output.shape[1:]


def test_tiny_cnn_accepts_any_image_size():
    model = backbones.build_image_backbone("tiny_cnn")
    features = model(_pixels((2, 64, 48, 3)))
    assert tuple(features.shape) == (2, 8, 6, 64)


def test_building_leaves_the_registry_unchanged():
    before = repr(backbones.IMAGE_BACKBONES["mobilenet_v3_small"].config)
    backbones.build_image_backbone("mobilenet_v3_small")
    assert repr(backbones.IMAGE_BACKBONES["mobilenet_v3_small"].config) == before


def test_keras_hub_mobilenet_still_traces_xla_compiled_convolutions():
    # Why KerasHub's MobileNetBackbone is not registered: its depthwise convs
    # are grouped Conv2D, which Keras on TensorFlow (2.20, Keras 3.15)
    # compiles with XLA. When this fails, that changed: register it.
    import keras_hub

    model = keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[16]], stackwise_num_blocks=[1], stackwise_num_filters=[[8]],
        stackwise_kernel_size=[[3]], stackwise_num_strides=[[2]], stackwise_se_ratio=[[None]],
        stackwise_activation=[["relu"]], stackwise_padding=[[1]], output_num_filters=16,
        input_num_filters=8, depthwise_filters=8, depthwise_stride=2, depthwise_residual=False,
        last_layer_filter=16, image_shape=(None, None, 3))
    problems = _serving_problems(_inference_graph(model))
    assert any("XLA" in problem for problem in problems)


# === Errors ===


def test_unknown_name_lists_the_known_names():
    with pytest.raises(ValueError, match="resnet_9000") as error:
        backbones.build_image_backbone("resnet_9000")
    assert "tiny_cnn" in str(error.value) and "resnet50_v2" in str(error.value)
    with pytest.raises(ValueError, match="resnet_9000"):
        backbones.image_normalization("resnet_9000")
    with pytest.raises(ValueError, match="resnet_9000"):
        backbones.feature_channels("resnet_9000")


def test_missing_weights_path_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "model.weights.h5"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        backbones.build_image_backbone("tiny_cnn", weights=str(missing))
    with pytest.raises(FileNotFoundError, match="my_preset_dir"):
        backbones.build_image_backbone("resnet18_v2", weights="my_preset_dir")


def test_weights_of_the_wrong_type_are_refused():
    with pytest.raises(TypeError, match="weights"):
        backbones.build_image_backbone("tiny_cnn", weights=True)


def test_directory_without_config_is_not_a_preset(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        backbones.build_image_backbone("keras_hub/resnet_18", weights=str(tmp_path))


def test_keras_applications_and_tiny_cnn_take_no_preset_directory(tmp_path):
    for name in ("keras_applications/resnet50v2", "tiny_cnn"):
        with pytest.raises(ValueError, match="weights file"):
            backbones.build_image_backbone(name, weights=str(tmp_path))


# === Weights ===


@pytest.mark.parametrize("name, saved_by", [("tiny_cnn", "mmkeras"), ("mobilenet_v3_small", "mmkeras"),
                                            ("mobilenet_v3_small", "library")])
def test_weights_file_round_trip(name, saved_by, tmp_path):
    # Files of the backbone mmkeras returns (KerasCV's model wrapped in a
    # SubModel) and of the library's own model both load.
    if saved_by == "library":
        source = backbones._from_config(backbones.IMAGE_BACKBONES[name], (None, None, 3))
    else:
        source = backbones.build_image_backbone(name)
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    x = _pixels()

    loaded = backbones.build_image_backbone(name, weights=path)
    fresh = backbones.build_image_backbone(name)

    for loaded_weight, source_weight in zip(loaded.weights, source.weights):
        np.testing.assert_array_equal(loaded_weight, source_weight)
    np.testing.assert_array_equal(loaded(x), source(x))
    # Random init differs, so equality above comes from the file.
    assert not np.array_equal(fresh(x), source(x))


def test_weights_file_of_another_architecture_names_both_layouts(tmp_path):
    path = str(tmp_path / "tiny.weights.h5")
    backbones.build_image_backbone("tiny_cnn").save_weights(path)
    with pytest.raises(ValueError, match=r"does not fit image backbone 'mobilenet_v3_small'.*"
                                         r"keras_cv's MobileNetV3Backbone"):
        backbones.build_image_backbone("mobilenet_v3_small", weights=path)


def _tiny_keras_hub_resnet():
    import keras_hub

    # KerasHub's ResNet wants 64 stem filters and 64 first-stage filters.
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block")


def _tiny_keras_cv_resnet(include_rescaling):
    import keras_cv

    return keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[64, 16], stackwise_blocks=[2, 2], stackwise_strides=[1, 2],
        block_type="basic_block", include_rescaling=include_rescaling)


def test_keras_hub_preset_directory_round_trip(tmp_path):
    source = _tiny_keras_hub_resnet()
    source.save_to_preset(str(tmp_path))
    x = _pixels()

    loaded = backbones.build_image_backbone("keras_hub/resnet_18", weights=tmp_path)

    # The preset's own architecture and weights, not the registry's resnet_18.
    assert loaded.output.shape[-1] == 16
    np.testing.assert_array_equal(loaded(x), source(x))


def test_keras_cv_preset_directory_round_trip_switches_rescaling_off(tmp_path):
    # KerasCV 0.9 has no public preset saver; this is the one from_preset reads.
    from keras_cv.src.utils.preset_utils import save_to_preset

    source = _tiny_keras_cv_resnet(include_rescaling=True)
    save_to_preset(source, str(tmp_path))
    x = _pixels()

    loaded = backbones.build_image_backbone("resnet18_v2", weights=str(tmp_path))

    # Our normalisation layer already divides by 255, so the preset's own
    # rescaling is switched off: same weights, same output on unscaled input.
    reference = _tiny_keras_cv_resnet(include_rescaling=False)
    reference.set_weights(source.get_weights())
    assert loaded.output.shape[-1] == 16
    np.testing.assert_array_equal(loaded(x), reference(x))


def test_preset_from_the_other_library_is_refused(tmp_path):
    _tiny_keras_hub_resnet().save_to_preset(str(tmp_path))
    with pytest.raises(ValueError, match="keras_hub.*keras_cv"):
        backbones.build_image_backbone("resnet18_v2", weights=str(tmp_path))


@pytest.mark.parametrize("name, handle, shape_key", [
    ("keras_hub/resnet_18", "hf://timm/resnet18.a1_in1k", "image_shape"),
    ("keras_hub/resnet_18", "resnet_18_imagenet", "image_shape"),
    ("keras_hub/efficientnet_b0", "kaggle://keras/efficientnet/keras/x/1", "input_shape"),
    ("resnet50_v2", "resnet50_v2_imagenet", "input_shape"),
])
def test_preset_handles_go_to_from_preset_on_the_entry_class(name, handle, shape_key, monkeypatch):
    # Handles download, so the class's from_preset is replaced by a recorder
    # that returns a tiny model of the library.
    entry = backbones.IMAGE_BACKBONES[name]
    cls = backbones._library_class(entry)
    tiny = _tiny_keras_hub_resnet if entry.library == "keras_hub" else lambda: _tiny_keras_cv_resnet(False)
    calls = []
    monkeypatch.setattr(cls, "from_preset", lambda preset, **kwargs: calls.append((preset, kwargs)) or tiny())

    backbones.build_image_backbone(name, weights=handle, input_shape=(64, 64, 3))

    assert calls and calls[0][0] == handle
    assert calls[0][1][shape_key] == (64, 64, 3)
    if name == "resnet50_v2":
        assert calls[0][1]["include_rescaling"] is False


def test_imagenet_goes_to_keras_applications(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.applications, "ResNet50V2", lambda **kwargs: calls.append(kwargs))
    backbones.build_image_backbone("keras_applications/resnet50v2", weights="imagenet")
    assert calls == [dict(include_top=False, weights="imagenet", input_shape=(None, None, 3))]


# === Serialisation ===


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "keras_hub/resnet_18"])
def test_backbone_in_functional_model_reloads_with_safe_mode(name, tmp_path):
    inputs = keras.Input((None, None, 3), name="image")
    pixels = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    features = backbones.build_image_backbone(name)(pixels)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, pooled)
    path = str(tmp_path / "model.keras")
    model.save(path)

    reloaded = keras.saving.load_model(path, safe_mode=True)

    x = _pixels() * 127.5 + 127.5
    # No absolute tolerance: a randomly initialised MobileNet's features are
    # tiny (~1e-11), so any atol would pass whatever the reload did.
    np.testing.assert_allclose(reloaded(x), model(x), rtol=1e-5, atol=0)


# One per library: KerasCV, KerasHub, keras.applications and mmkeras's own.
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "keras_hub/resnet_18",
                                  "keras_applications/mobilenetv3small", "tiny_cnn"])
def test_frozen_backbone_stays_frozen_after_a_keras_reload(name, tmp_path):
    # KerasHub and KerasCV backbones rebuild from constructor arguments,
    # which hold no layer's `trainable`: without the SubModel wrapper they
    # came back with trainable variables under a `trainable=False` flag.
    inputs = keras.Input((32, 32, 3), name="image")
    backbone = backbones.build_image_backbone(name, input_shape=(32, 32, 3))
    backbone.trainable = False
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    path = str(tmp_path / "model.keras")
    model.save(path)

    reloaded = keras.saving.load_model(path, safe_mode=True)

    assert [w.path for w in reloaded.trainable_weights] == [w.path for w in model.trainable_weights]
    restored = reloaded.get_layer(backbone.name)
    assert restored.trainable is False
    assert not [w.path for w in restored.weights if w.trainable]
