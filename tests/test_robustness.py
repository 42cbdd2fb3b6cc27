"""Tests of the missing-modality robustness sweep on data that already has gaps."""

import numpy as np
import pytest

from mmkeras.evaluation.report import _report_sections
from mmkeras.evaluation.robustness import is_missing, missing_modality_robustness, robustness


def gappy_inputs(n=200, seed=0):
    """Three modalities (text as bytes, text as str, float); about a third of each
    missing in the data, every example with at least one present."""
    rng = np.random.default_rng(seed)
    present = rng.random((n, 3)) < 0.65
    present[~present.any(axis=1), 2] = True
    review = np.array([b"good" if keep else b"" for keep in present[:, 0]], object)
    note = np.array(["fine" if keep else "" for keep in present[:, 1]], object)
    readings = rng.normal(size=(n, 4)).astype("float32")
    readings[~present[:, 2]] = np.nan
    y = rng.integers(0, 2, size=n)
    return {"review": review, "note": note, "readings": readings}, y, present


def present_of(x):
    """Which inputs an example has, written out here rather than with `is_missing`."""
    strings = [np.array([v not in ("", b"") for v in x[name]]) for name in ("review", "note")]
    return np.stack(strings + [~np.isnan(x["readings"]).all(axis=1)], axis=1)


def constant_predict(x):
    return np.full((len(x["review"]), 2), 0.5)


def test_is_missing_follows_mark_missing():
    inputs, _, present = gappy_inputs(20)
    assert (np.stack([~is_missing(inputs, n) for n in inputs], axis=1) == present).all()
    # One NaN feature is a gap in a reading, not a missing modality.
    partial = np.array([[np.nan, 1.0], [np.nan, np.nan]], "float32")
    assert is_missing({"r": partial}, "r").tolist() == [False, True]
    with pytest.raises(TypeError, match="Input 'ids' has dtype int64"):
        is_missing({"ids": np.arange(3)}, "ids")


def test_robustness_never_leaves_an_example_without_a_present_modality():
    inputs, y, _ = gappy_inputs()
    seen = []

    def recording_predict(x):
        seen.append(present_of(x).any(axis=1))
        return constant_predict(x)

    missing_modality_robustness(recording_predict, inputs, y, probabilities=(0.0, 0.5, 0.9), seed=3)
    assert len(seen) == 3  # the full pass and two drops
    assert all(any_present.all() for any_present in seen)


def test_robustness_counts_inputs_missing_in_the_data():
    inputs, y, present = gappy_inputs()
    in_data = float((~present).mean())
    seen = []

    def recording_predict(x):
        seen.append(float((~present_of(x)).mean()))
        return constant_predict(x)

    out = missing_modality_robustness(recording_predict, inputs, y, probabilities=(0.0, 0.25, 0.5), seed=1)
    fractions = [r["fraction_missing"] for r in out["results"]]
    assert fractions[0] == pytest.approx(in_data) and in_data > 0.25
    assert out["fraction_missing_in_data"] == pytest.approx(in_data)
    # What the model actually saw after each drop, not the share of drawn drops.
    assert fractions[1:] == pytest.approx(seen[1:])
    assert fractions[0] < fractions[1] < fractions[2]
    per_modality = out["results"][0]["fraction_missing_per_modality"]
    assert per_modality == pytest.approx({n: float((~present[:, v]).mean())
                                          for v, n in enumerate(["review", "note", "readings"])})


def test_robustness_notes_and_report_name_the_missing_in_the_data():
    inputs, y, present = gappy_inputs(40)
    score = lambda y_prob: 0.5
    out = robustness(constant_predict, inputs, constant_predict(inputs), score, "accuracy",
                     (0.0, 0.5), seed=0, on_pass=lambda: None)
    assert any("missing in the data already" in note for note in out["notes"])
    results = {"num_examples": 40, "labels": ["a", "b"], "multi_label": False, "modalities": list(inputs),
               "headline": {"metric": "accuracy", "value": 0.5},
               "metrics": {"accuracy": 0.5, "per_class": {}, "confusion_matrix": [[0, 0], [0, 0]],
                           "calibration": {"num_bins": 10, "kind": "top-label", "ece": 0.0}, "notes": []},
               "baselines": None, "ablation": None, "robustness": out, "fusion_weights": None, "notes": []}
    section = dict(_report_sections(results))["Missing-modality robustness"]
    text = section[0][1]
    assert f"including the {(~present).mean():.3f} missing in the data" in text
    assert section[1][2][0] == ["0.00", f"{(~present).mean():.3f}", "0.500"]
