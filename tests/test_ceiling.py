"""The demo generators' hidden cues and the Bayes-optimal ceilings computed from them."""

import csv
import itertools

import numpy as np
import pytest

from mmkeras.data import ceiling, demo


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folders = {}
    for app in demo.DEMO_APPS:
        folder = tmp_path_factory.mktemp(app)
        demo.generate(app, folder, num_examples=300, seed=3)
        folders[app] = folder
    return folders


@pytest.mark.parametrize("app", list(demo.DEMO_APPS))
def test_cues_are_recorded_per_manifest_row_beside_the_manifest(generated, app):
    folder = generated[app]
    manifest = list(csv.DictReader(open(folder / demo.MANIFEST_NAME)))
    cues = list(csv.DictReader(open(folder / demo.CUES_NAME)))
    demo_app = demo.DEMO_APPS[app]
    assert [int(c["row"]) for c in cues] == list(range(1, len(manifest) + 1))
    assert [c["label"] for c in cues] == [row[demo_app.label_column] for row in manifest]
    assert set(cues[0]) == {"row", "label", *demo_app.cue_sources, *demo_app.cue_locations}
    # The manifest a model reads holds no cue column.
    assert not set(manifest[0]) & (set(demo_app.cue_sources) - set(demo_app.columns))
    assert not set(manifest[0]) & set(demo_app.cue_locations)


def exact_sentiment_accuracy(sources):
    """Bayes accuracy by enumerating the sentiment cue distribution."""
    probabilities = dict(zip((-1, 0, 1), demo._SENTIMENT_CUE_PROBS))
    seen = ["review", "photo", "voice"].index
    joint = {}
    for cues in itertools.product((-1, 0, 1), repeat=3):
        p = np.prod([probabilities[c] for c in cues])
        key = tuple(cues[seen(s)] for s in sources)
        label = int(np.sign(sum(cues)))
        joint.setdefault(key, {}).setdefault(label, 0.0)
        joint[key][label] += p
    return sum(max(by_label.values()) for by_label in joint.values())


@pytest.mark.parametrize("sources", [["review"], ["photo"], ["review", "voice"], ["review", "photo", "voice"]])
def test_sampled_posterior_matches_the_exact_sentiment_ceiling(generated, sources):
    rows = range(1, 301)
    cues = generated["sentiment"] / demo.CUES_NAME
    scores = ceiling.ceiling_scores("sentiment", cues, rows, sources)
    expected = exact_sentiment_accuracy(sources)
    # 300 test rows: the realised accuracy is within sampling error of the expectation.
    assert abs(scores["accuracy"] - expected) < 3 * np.sqrt(expected * (1 - expected) / 300) + 1e-9
    if len(sources) == 3:
        assert scores == {"accuracy": 1.0, "macro_f1": 1.0, "roc_auc_macro": 1.0}


@pytest.mark.parametrize("app", list(demo.DEMO_APPS))
def test_every_source_alone_is_informative_and_below_all_of_them(generated, app):
    """Above the prior (no source: the label's distribution alone) in macro-F1, far
    below all sources together. A source that shifts the prior only (the machine,
    the ward) changes which class wins for some rows, so macro-F1 shows it where
    accuracy hardly moves."""
    cues, rows = generated[app] / demo.CUES_NAME, range(1, 301)
    sources = list(demo.DEMO_APPS[app].cue_sources)
    everything = ceiling.ceiling_scores(app, cues, rows, sources)
    prior = ceiling.ceiling_scores(app, cues, rows, [])
    assert everything["accuracy"] > 0.9
    for source in sources:
        alone = ceiling.ceiling_scores(app, cues, rows, [source])
        assert alone["macro_f1"] > prior["macro_f1"] + 0.1, (source, alone, prior)
        assert alone["accuracy"] < everything["accuracy"] - 0.15, (source, alone)


def test_sources_follow_the_columns_a_model_reads():
    assert ceiling.source_names_of("inspection", ["part_image", "temperature"]) == ["part_image"]
    assert ceiling.source_names_of("inspection", ["temperature", "vibration_rms", "current", "machine_sound"]) == [
        "readings", "machine_sound"]
    with pytest.raises(ValueError, match="Unknown cue sources \\['sound'\\]"):
        ceiling.ceiling_scores("inspection", "unused.csv", [1], ["sound"])
