"""Learning test: a label that needs two modalities at once.

The label is the XOR of an image cue (a bright or dark 16x16 image) and a
text cue (the word "alpha" or "beta" among filler words). Either modality
alone says nothing about the label, so a unimodal model stays at chance,
while every fusion strategy has to combine the two cues to get it right.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras as mmk
from mmkeras.fusion import FUSIONS

FILLER = "the a of and to in is it that was for on are with as at be this by from".split()
TASK = mmk.Classification(labels=["same", "different"])
MAX_EPOCHS = 15


def make_data(num_examples, seed):
    """Images, texts and XOR labels, with independent balanced cues."""
    rng = np.random.default_rng(seed)
    image_cue = rng.integers(0, 2, num_examples)
    text_cue = rng.integers(0, 2, num_examples)
    brightness = np.where(image_cue == 1, 190.0, 65.0)[:, None, None, None]
    images = np.clip(brightness + rng.normal(0, 10, (num_examples, 16, 16, 3)), 0, 255)
    texts = []
    for cue in text_cue:
        words = list(rng.choice(FILLER, 5))
        words.insert(rng.integers(0, 6), "alpha" if cue else "beta")
        texts.append(" ".join(words))
    features = {"photo": images.astype("float32"), "note": np.array(texts)}
    return features, (image_cue ^ text_cue).astype("int32")


TRAIN = make_data(1024, seed=0)
VALIDATION = make_data(256, seed=1)


def dataset(data, names, shuffle=False):
    features, labels = data
    ds = tf.data.Dataset.from_tensor_slices(({n: features[n] for n in names}, labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=0)
    return ds.batch(32)


def specs(text_encoder="bert_tiny"):
    return [mmk.ImageInput("photo", size=(16, 16), backbone="tiny_cnn"),
            mmk.TextInput("note", encoder=text_encoder, sequence_length=8, vocabulary_size=64)]


class StopWhenLearned(keras.callbacks.Callback):
    """Stops once validation accuracy is clearly past the bar: keeps the test fast."""

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_accuracy"] >= 0.99:
            self.model.stop_training = True


def fit(model, names, callbacks=()):
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(dataset(TRAIN, names, shuffle=True), validation_data=dataset(VALIDATION, names),
                        epochs=MAX_EPOCHS, callbacks=list(callbacks), verbose=0)
    return history.history["val_accuracy"]


def test_each_cue_alone_says_nothing_about_the_label():
    features, labels = TRAIN
    bright = features["photo"].mean(axis=(1, 2, 3)) > 127
    alpha = np.array(["alpha" in text.split() for text in features["note"]])
    assert abs(np.mean(labels) - 0.5) < 0.05
    for cue in (bright, alpha):
        assert abs(np.mean(labels[cue]) - 0.5) < 0.06
    np.testing.assert_array_equal(labels, bright ^ alpha)  # both together decide it


# The default run learns with one fusion; the others are long runs (`pytest -m slow`).
@pytest.mark.parametrize("fusion", [pytest.param(f, marks=() if f == "concat" else pytest.mark.slow)
                                    for f in FUSIONS])
def test_every_fusion_learns_a_label_that_needs_both_modalities(fusion):
    keras.utils.set_random_seed(0)
    options = {} if fusion == "transformer" else {"hidden_dim": 32}
    model = mmk.build_model(specs(), fusion=fusion, task=TASK, projection_dim=32,
                            fusion_options=options, adapt_data=TRAIN[0])
    accuracy = fit(model, ["photo", "note"], [StopWhenLearned()])
    assert accuracy[-1] >= 0.95, f"{fusion}: validation accuracy per epoch {np.round(accuracy, 3)}"


def test_the_cnn_text_encoder_learns_it_too():
    keras.utils.set_random_seed(0)
    model = mmk.build_model(specs("cnn"), fusion="gated", task=TASK, projection_dim=32,
                            fusion_options={"hidden_dim": 32}, adapt_data=TRAIN[0])
    accuracy = fit(model, ["photo", "note"], [StopWhenLearned()])
    assert accuracy[-1] >= 0.95, f"validation accuracy per epoch {np.round(accuracy, 3)}"


@pytest.mark.parametrize("modality", ["photo", "note"])
def test_one_modality_alone_stays_at_chance(modality):
    keras.utils.set_random_seed(0)
    spec = {spec.name: spec for spec in specs()}[modality]
    model = mmk.build_unimodal(spec, TASK, projection_dim=32, adapt_data=TRAIN[0])
    accuracy = fit(model, [modality])
    assert len(accuracy) == MAX_EPOCHS
    assert max(accuracy) <= 0.75, f"{modality}: validation accuracy per epoch {np.round(accuracy, 3)}"
