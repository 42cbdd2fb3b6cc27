"""Occlusion attributions: each kind's parts, the sanity check of Adebayo et al. (2018), and
`mmkeras explain`."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

import mmkeras as mmk
from mmkeras import training
from mmkeras.evaluation.attributions import occlusion_attributions
from mmkeras.evaluation.predict import model_predict_fn

SENTIMENT = Path(__file__).parents[1] / "apps" / "sentiment"


def test_each_kind_hides_one_part_per_copy():
    image = np.random.default_rng(0).uniform(0, 255, (12, 12, 3)).astype("float32")
    cells = mmk.ImageInput("photo", size=(12, 12)).occlusions(image)
    assert cells.layout == "image" and len(cells.parts) == 36
    changed = (cells.copies != image).any(axis=-1)  # [36, 12, 12]: the pixels each copy hides
    assert changed[0, :2, :2].all() and not changed[0, 2:, :].any()
    words = mmk.TextInput("review").occlusions(b"great phone works")
    assert (words.layout, words.parts, words.copies.tolist()) == (
        "words", ["great", "phone", "works"], ["phone works", "great works", "great phone"])
    windows = mmk.AudioInput("voice", sample_rate=8000, seconds=0.5).occlusions(np.ones(4000, "float32"))
    assert windows.parts[0] == (0.0, 0.03125) and (windows.copies.sum(axis=1) == 4000 - 250).all()
    features = mmk.TimeSeriesInput("trace", features=["x", "y"], steps=3).occlusions(np.ones((3, 2), "float32"))
    assert np.isnan(features.copies[1][:, 1]).all() and not np.isnan(features.copies[1][:, 0]).any()
    assert mmk.CategoryInput("machine").occlusions("m1") is None


def _patch_data(count, rng):
    """24 x 24 noise; class 1 has a bright 8 x 8 patch in the top-left corner."""
    images = rng.uniform(60, 120, (count, 24, 24, 3)).astype("float32")
    labels = rng.integers(0, 2, count)
    images[labels == 1, :8, :8] = 250.0
    return images, labels


def _image_model(seed):
    tf.keras.utils.set_random_seed(seed)
    return mmk.build_unimodal(mmk.ImageInput("photo", size=(24, 24), backbone="tiny_cnn"),
                              mmk.Classification(["plain", "patch"]), projection_dim=16)


def _maps(model, images):
    predict = model_predict_fn(model, 64)
    spec = model.specs[0]
    maps = []
    for i in range(len(images)):
        scores = occlusion_attributions(predict, {"photo": images}, i, [spec], target=1)["photo"]["scores"]
        maps.append(np.array(scores).reshape(6, 6))
    return np.array(maps)


def test_image_attributions_find_the_cue_and_depend_on_the_learned_weights():
    """Trained, the attribution lands on the patch that decides the class; with random weights
    (the model parameter randomisation test) the maps change: they explain the model, not the image."""
    rng = np.random.default_rng(0)
    images, labels = _patch_data(256, rng)
    model = training.compile_model(_image_model(seed=0), learning_rate=3e-3)
    model.fit({"photo": images}, labels, epochs=12, batch_size=32, verbose=0)
    test_images, test_labels = _patch_data(40, rng)
    shown = test_images[test_labels == 1][:6]
    assert (model_predict_fn(model, 64)({"photo": shown})[:, 1] > 0.8).all()

    trained = _maps(model, shown)
    patch_cells = np.zeros((6, 6), bool)
    patch_cells[:2, :2] = True  # the 4 x 4 pixel cells under the 8 x 8 patch
    positive = np.clip(trained, 0, None)
    assert positive[:, patch_cells].sum() > 0.8 * positive.sum()

    randomised = _maps(_image_model(seed=1), shown)
    correlations = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(trained, randomised)]
    assert np.nanmean(correlations) < 0.5


def test_mmkeras_explain_writes_the_page_for_chosen_rows(tmp_path, monkeypatch, capsys):
    from mmkeras.app import build_app_model, load_app, resolve_manifest
    from mmkeras.cli import main

    app = load_app(SENTIMENT)  # an untrained model explains as well as a trained one, for this test
    manifest = resolve_manifest(app, None, tmp_path / "run", num_examples=12, seed=0)
    examples, _ = app.load_examples(manifest)
    build_app_model(app, app.specs(), examples).save(tmp_path / "model.keras")
    monkeypatch.chdir(tmp_path)
    argv = ["explain", str(SENTIMENT), "--rows", "2", "7", "--model", str(tmp_path / "model.keras"),
            "--data", str(manifest), "--out", str(tmp_path / "why")]
    assert main(argv) == 0
    page = (tmp_path / "why" / "explanation.md").read_text()
    assert "## Rows 2, 7" in page and "![row_7.png](row_7.png)" in page
    explained = json.loads((tmp_path / "why" / "explanation.json").read_text())
    assert [e["index"] for e in explained["examples"]] == [2, 7]
    assert set(explained["examples"][0]["attributions"]) == {"review", "photo", "voice"}
    assert main(["explain", str(SENTIMENT), "--rows", "999", "--model", str(tmp_path / "model.keras"),
                 "--data", str(manifest)]) == 1
    assert "--rows: [999] are not data rows" in capsys.readouterr().err



def test_an_audio_attribution_is_drawn_over_the_clips_log_mel_picture():
    from mmkeras.evaluation.plots import example_figure

    rate, seconds = 8000, 0.5
    clip = np.sin(np.linspace(0, 2000, int(rate * seconds))).astype("float32")
    clip[: len(clip) // 2] = 0.0  # silence, then a tone
    spans = mmk.AudioInput("voice", sample_rate=rate, seconds=seconds).occlusions(clip, windows=4)
    example = {"index": 3, "predicted": "ok", "confidence": 0.9, "true": "ok", "correct": True,
               "contributions": {"voice": 0.4},
               "attributions": {"voice": {"layout": "time", "parts": spans.parts, "scores": [0.0, 0.1, 0.3, 0.2]}}}
    figure = example_figure(example, {"voice": clip})
    audio_panel = figure.axes[1]
    (picture,) = audio_panel.get_images()
    frames, mels = picture.get_array().shape[1], picture.get_array().shape[0]
    assert mels == 40 and frames == 50  # 10 ms hops over 0.5 s
    # The tone's half is louder in the picture than the silent half.
    assert picture.get_array()[:, 25:].mean() > picture.get_array()[:, :25].mean()
    assert len(audio_panel.patches) == 4 and audio_panel.get_ylabel() == "mel band"
