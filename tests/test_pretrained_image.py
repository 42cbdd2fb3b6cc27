"""Pretrained image encoders from local KerasHub presets, and two-stage fine-tuning.

Each family's preset is a tiny model of the registry entry's KerasHub class
written with `save_to_preset` (for CLIP and SigLIP the whole two-tower
backbone, as published). The tests check that `ImageInput(backbone=NAME,
weights=dir)` applies the normalisation the family was trained with and the
preset's weights (its pooled features equal the source model's summary of
the same pixels, normalised here by hand), that a model holding every family
trains, reloads and serves, and that `unfreeze` trains only the top layers.
"""

import keras
import keras_hub
import numpy as np
import pytest
from serving_roundtrip import assert_serves_like_predict

import mmkeras as mmk
from mmkeras import backbones
from mmkeras.finetune import unfreeze, weight_layers

TASK = mmk.Classification(labels=["no", "yes"])
SIZE = 32
TOWER = dict(hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32)

# Pixels (0..255) as each family's pretrained weights expect them, written
# out from the families' image processors rather than read from mmkeras.
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def symmetric(x):
    return x / 127.5 - 1.0


def imagenet(x):
    return (x / 255.0 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)


def clip(x):
    return (x / 255.0 - np.float32(CLIP_MEAN)) / np.float32(CLIP_STD)


# === Tiny models of each family, and the summary its image tower gives ===


def tiny_resnet():
    # KerasHub's ResNet wants 64 stem filters and 64 first-stage filters.
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block")


def tiny_efficientnetv2():
    return keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 3, stackwise_depth_coefficients=[1.0] * 3,
        stackwise_kernel_sizes=[3] * 3, stackwise_num_repeats=[1] * 3,
        stackwise_input_filters=[8, 8, 16], stackwise_output_filters=[8, 16, 16],
        stackwise_expansion_ratios=[1, 2, 2], stackwise_squeeze_and_excite_ratios=[0, 0, 0.25],
        stackwise_strides=[1, 2, 2], stackwise_block_types=["cba", "fused", "unfused"],
        stackwise_force_input_filters=[0] * 3, stackwise_nores_option=[False] * 3,
        activation="silu")


def tiny_vit():
    return keras_hub.models.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2,
                                        num_heads=2, hidden_dim=16, mlp_dim=32)


def tiny_dinov2():
    # Trained at 48 x 48 and loaded at 32: DINOv2 interpolates its position embeddings.
    return keras_hub.models.DINOV2Backbone(patch_size=8, image_shape=(48, 48, 3),
                                           position_embedding_shape=(48, 48), **TOWER)


def tiny_clip():
    return keras_hub.models.CLIPBackbone(
        vision_encoder=keras_hub.models.CLIPVisionEncoder(patch_size=8, image_shape=(SIZE, SIZE, 3), **TOWER),
        text_encoder=keras_hub.models.CLIPTextEncoder(vocabulary_size=50, embedding_dim=16,
                                                      max_sequence_length=8, **TOWER),
        projection_dim=8)


def tiny_siglip():
    return keras_hub.models.SigLIPBackbone(
        vision_encoder=keras_hub.models.SigLIPVisionEncoder(patch_size=8, image_shape=(SIZE, SIZE, 3), **TOWER),
        text_encoder=keras_hub.models.SigLIPTextEncoder(vocabulary_size=50, embedding_dim=16,
                                                        max_sequence_length=8, **TOWER))


def average_feature_map(source, preset, x):
    return np.asarray(source(x)).mean(axis=(1, 2))


def vit_class_token(source, preset, x):
    return np.asarray(source(x))[:, 0]


def dinov2_class_token(source, preset, x):
    # KerasHub's own load at the smaller size: the interpolated embeddings.
    resized = keras_hub.models.DINOV2Backbone.from_preset(preset, image_shape=(SIZE, SIZE, 3))
    return np.asarray(resized({"images": x}))[:, 0]


def clip_class_token(source, preset, x):
    return np.asarray(source.vision_encoder({"images": x}))[:, 0]


def siglip_attention_pool(source, preset, x):
    return np.asarray(source.vision_encoder({"images": x}))


# name -> (tiny source model, its image tower, normalisation, expected pooled features)
FAMILIES = {
    "keras_hub/resnet_18": (tiny_resnet, lambda m: m, imagenet, average_feature_map),
    "keras_hub/efficientnet2_rw_t": (tiny_efficientnetv2, lambda m: m, imagenet, average_feature_map),
    "keras_hub/vit_base_patch16_224": (tiny_vit, lambda m: m, symmetric, vit_class_token),
    "keras_hub/dinov2_base": (tiny_dinov2, lambda m: m, imagenet, dinov2_class_token),
    "keras_hub/clip_vit_base_patch16": (tiny_clip, lambda m: m.vision_encoder, clip, clip_class_token),
    "keras_hub/siglip_base_patch16_224": (tiny_siglip, lambda m: m.vision_encoder, symmetric,
                                          siglip_attention_pool),
}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """name -> (preset directory, source model), one tiny preset per family."""
    made = {}
    for name, (build, *_) in FAMILIES.items():
        keras.utils.set_random_seed(len(made))
        source = build()
        directory = str(tmp_path_factory.mktemp(name.split("/")[-1]))
        source.save_to_preset(directory)
        made[name] = (directory, source)
    return made


def pixels(batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, SIZE, SIZE, 3)).astype("float32")


def pooled_features(model, name, x):
    return keras.Model(model.input, model.get_layer(f"{name}_pool").output).predict({name: x}, verbose=0)


# === Each family loads through its registry entry ===


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_preset_loads_through_the_registry_entry(name, presets):
    directory, source = presets[name]
    _, tower, normalise, expected_pooled = FAMILIES[name]
    spec = mmk.ImageInput("photo", size=(SIZE, SIZE), backbone=name, weights=directory, augment=False)
    model = mmk.build_unimodal(spec, TASK)
    x = pixels()

    # Resizing 32 -> 32 is the identity, so the backbone sees exactly x,
    # normalised the way the family was trained.
    np.testing.assert_allclose(pooled_features(model, "photo", x), expected_pooled(source, directory, normalise(x)),
                               rtol=1e-4, atol=1e-5)
    # Only the image tower came in: no text-tower weights in the classifier.
    loaded = model.get_layer("photo_backbone")
    assert len(loaded.weights) == len(tower(source).weights)


def test_a_preset_of_the_image_tower_alone_loads_too(presets, tmp_path):
    name = "keras_hub/clip_vit_base_patch16"
    two_towers, source = presets[name]
    source.vision_encoder.save_to_preset(str(tmp_path))
    # Two inputs of one family in one model, from either kind of preset.
    model = mmk.build_model([mmk.ImageInput(input_name, size=(SIZE, SIZE), backbone=name, weights=weights)
                             for input_name, weights in [("front", two_towers), ("back", str(tmp_path))]],
                            task=TASK)
    expected = clip_class_token(source, two_towers, clip(pixels()))
    for input_name in ("front", "back"):
        features = keras.Model(model.input, model.get_layer(f"{input_name}_pool").output)
        np.testing.assert_allclose(features({"front": pixels(), "back": pixels()}), expected, rtol=1e-4, atol=1e-5)


def test_transformer_tokens_have_their_true_static_shape(presets):
    for name, tokens in [("keras_hub/vit_base_patch16_224", 17), ("keras_hub/siglip_base_patch16_224", 16)]:
        spec = mmk.ImageInput("photo", size=(SIZE, SIZE), backbone=name, weights=presets[name][0])
        x = spec.keras_input()
        encoded = spec.encode(x)
        assert tuple(encoded.tokens.shape) == (None, tokens, 16)
        # SigLIP's embedding claims a class token it lacks: run time must agree.
        assert keras.Model(x, encoded.tokens)(pixels()).shape == (2, tokens, 16)


@pytest.mark.parametrize("name", ["keras_hub/vit_base_patch16_224", "keras_hub/clip_vit_base_patch16"])
def test_fixed_size_preset_refuses_another_image_size(name, presets):
    spec = mmk.ImageInput("photo", size=(64, 64), backbone=name, weights=presets[name][0])
    with pytest.raises(ValueError, match=r"takes 32x32 images.*ImageInput\(size=\(32, 32\)\)"):
        spec.encode(spec.keras_input())


@pytest.mark.parametrize("name, handle, build", [
    ("keras_hub/clip_vit_base_patch16", "clip_vit_base_patch16", tiny_clip),
    ("keras_hub/siglip_base_patch16_224", "kaggle://keras/siglip/keras/siglip_base_patch16_224/1", tiny_siglip),
    ("keras_hub/dinov2_base", "hf://facebook/dinov2-base", tiny_dinov2),
])
def test_preset_handles_load_the_preset_class(name, handle, build, monkeypatch):
    # Handles download, so the preset class's from_preset returns a tiny model.
    entry = backbones.IMAGE_BACKBONES[name]
    cls = getattr(keras_hub.models, entry.preset_class or entry.class_name)
    calls = []
    monkeypatch.setattr(cls, "from_preset", lambda preset, **kwargs: calls.append((preset, kwargs)) or build())

    model = backbones.build_image_backbone(name, weights=handle, input_shape=(SIZE, SIZE, 3))

    assert calls[0][0] == handle
    # CLIP and SigLIP build at the preset's own size; DINOv2 at the asked one.
    assert calls[0][1] == ({} if entry.fixed_size else {"image_shape": (SIZE, SIZE, 3)})
    assert model.output["pooled"].shape == (None, 16)


def test_transformer_needs_a_fixed_image_size():
    with pytest.raises(ValueError, match="fixed image size"):
        backbones.build_image_backbone("keras_hub/vit_base_patch16_224")


# === A model with every family trains, reloads and serves ===


# A CNN, a ViT (class token) and SigLIP (a sub-model with attention pooling)
# by default; the other three in a long run (`pytest -m slow`).
FAMILY_GROUPS = [pytest.param(["keras_hub/resnet_18", "keras_hub/vit_base_patch16_224",
                               "keras_hub/siglip_base_patch16_224"], id="one_per_kind"),
                 pytest.param(["keras_hub/efficientnet2_rw_t", "keras_hub/dinov2_base", "keras_hub/clip_vit_base_patch16"],
                              id="the_others", marks=pytest.mark.slow)]


@pytest.mark.parametrize("names", FAMILY_GROUPS)
def test_every_family_trains_reloads_and_serves(names, presets, tmp_path):
    specs = [mmk.ImageInput(name.split("/")[1].split("_")[0], size=(SIZE, SIZE), backbone=name,
                            weights=presets[name][0], trainable=False, augment=False)
             for name in names]
    # Cross-attention reads every family's tokens, pooling its summaries.
    model = mmk.build_model(specs, fusion="cross_attention", task=TASK, projection_dim=16)
    batch = {spec.name: pixels(seed=i) for i, spec in enumerate(specs)}
    # One eager step: tracing a train step through several backbones takes ~20 s
    # on a small CPU, and export traces the inference graph anyway.
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True)
    head = np.array(model.get_layer("label").weights[0])
    model.fit(batch, np.array([0, 1]), epochs=1, verbose=0)
    assert not np.array_equal(head, np.array(model.get_layer("label").weights[0]))

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded(batch), model(batch), atol=1e-5)
    assert_serves_like_predict(model, specs, tmp_path, name="images")


def test_frozen_backbones_stay_frozen_after_a_keras_reload(presets, tmp_path):
    # A CNN, a ViT (class token) and SigLIP (a sub-model of its encoder):
    # the three ways a KerasHub backbone enters the model.
    names = ["keras_hub/resnet_18", "keras_hub/vit_base_patch16_224", "keras_hub/siglip_base_patch16_224"]
    specs = [mmk.ImageInput(name.split("/")[1].split("_")[0], size=(SIZE, SIZE), backbone=name,
                            weights=presets[name][0], trainable=False) for name in names]
    model = mmk.build_model(specs, task=TASK, projection_dim=8)
    model.save(tmp_path / "frozen.keras")

    restored = keras.saving.load_model(tmp_path / "frozen.keras", safe_mode=True)

    assert [w.path for w in restored.trainable_weights] == [w.path for w in model.trainable_weights]
    for spec in specs:
        backbone = restored.get_layer(f"{spec.name}_backbone")
        assert backbone.trainable is False, spec.backbone
        assert not [w.path for w in backbone.weights if w.trainable], spec.backbone


# === Two-stage fine-tuning ===


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    return {"photo": x}, (x.mean(axis=(1, 2, 3)) > 127).astype("int32")


def _fit(model, learning_rate):
    """Fits one epoch; returns the paths of the backbone weights it changed."""
    backbone = model.get_layer("photo_backbone")
    before = {w.path: np.array(w) for w in backbone.weights}
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    model.fit(*_dataset(), batch_size=8, epochs=1, verbose=0)
    return {w.path for w in backbone.weights if not np.array_equal(before[w.path], np.array(w))}


@pytest.mark.parametrize("trainable", [False, True])
def test_two_stage_fine_tuning_trains_only_the_top_layers(trainable):
    keras.utils.set_random_seed(0)
    spec = mmk.ImageInput("photo", size=(8, 8), backbone="tiny_cnn", trainable=trainable, augment=False)
    model = mmk.build_unimodal(spec, TASK)
    if not trainable:
        # Stage one: only the new layers learn.
        head = np.array(model.get_layer("label").weights[0])
        assert _fit(model, 1e-2) == set()
        assert not np.array_equal(head, np.array(model.get_layer("label").weights[0]))

    # Stage two, from either start: the last convolution, and nothing else
    # (BatchNorm statistics included), whatever `trainable` said.
    assert unfreeze(model, "photo", num_layers=1) == ["conv2"]
    assert _fit(model, 1e-3) == {"conv2/kernel"}


def test_unfreeze_counts_transformer_layers_from_the_top(presets):
    spec = mmk.ImageInput("photo", size=(SIZE, SIZE), backbone="keras_hub/vit_base_patch16_224",
                          weights=presets["keras_hub/vit_base_patch16_224"][0], trainable=False)
    model = mmk.build_unimodal(spec, TASK)
    backbone = model.get_layer("photo_backbone")
    layers = weight_layers(backbone)

    chosen = unfreeze(model, "photo", top_fraction=0.5)

    # The encoder's final LayerNorm is the top; the patch embedding the bottom.
    assert chosen[-1] == layers[-1].path == "vit_encoder/ln"
    assert chosen[0].startswith("vit_encoder/transformer_block_")
    assert layers[0].path == "vit_patching_and_embedding"
    trainable = {w.path for w in backbone.trainable_weights}
    assert trainable and {w.path for w in layers[-1].weights} <= trainable
    assert not trainable & {w.path for w in layers[0].weights}
    assert len(chosen) == -(-len(layers) // 2)


def test_unfreeze_explains_bad_arguments():
    model = mmk.build_unimodal(mmk.ImageInput("photo", size=(8, 8), backbone="tiny_cnn", trainable=False), TASK)
    with pytest.raises(ValueError, match=r"no image input named 'picture'.*\['photo'\]"):
        unfreeze(model, "picture", num_layers=1)
    with pytest.raises(ValueError, match="exactly one"):
        unfreeze(model, "photo")
    with pytest.raises(ValueError, match="exactly one"):
        unfreeze(model, "photo", num_layers=1, top_fraction=0.5)
    with pytest.raises(ValueError, match="from 1 to 3"):
        unfreeze(model, "photo", num_layers=4)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        unfreeze(model, "photo", top_fraction=0)
