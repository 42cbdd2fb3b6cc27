"""`mmkeras tune`: the checked `tune:` section, an honest search, and a search that resumes."""

import csv
import json
from pathlib import Path

import pytest

from mmkeras import tuning
from mmkeras.app import App, load_app

SENTIMENT = Path(__file__).parents[1] / "apps" / "sentiment"
BASE = {"data": {"label_column": "y", "labels": ["a", "b"]}, "inputs": [{"kind": "text", "name": "note"}]}


@pytest.mark.parametrize("space, message", [
    ({"model.fusion": ["concat", "gatd"]}, r"tune.model.fusion: the value 'gatd' is refused.*did you mean 'gated'"),
    ({"model.fusionn": ["concat"]}, r"tune.model.fusionn: .*unknown key \(did you mean 'fusion'\?\)"),
    ({"training.learning_rate": {"min": 0.0, "max": 0.01, "log": True}}, r"a log range needs min > 0"),
    ({"training.batch_size": 32}, r"tune.training.batch_size: expected a non-empty list of values or a range"),
    ({"training.learning_rate": {"min": 0.01, "max": 0.001}}, r"expected numbers min < max"),
    ({"training.epochs": {"min": 0, "max": 5}}, r"tune.training.epochs: the value 0 is refused"),
])
def test_the_tune_section_is_checked_when_the_file_is_read(space, message):
    with pytest.raises(ValueError, match=message):
        App.from_config({**BASE, "tune": space})
    assert App.from_config({**BASE, "tune": {"model.fusion": ["concat", "gated"]}}).tune


def test_a_search_reads_no_test_row_and_resumes_after_an_interruption(tmp_path, monkeypatch):
    datasets_made = []
    make_dataset = tuning.make_dataset
    monkeypatch.setattr(tuning, "make_dataset",
                        lambda examples, *a, **k: datasets_made.append(set(examples.rows)) or make_dataset(
                            examples, *a, **k))
    trials_run = []
    run_trial = tuning.run_trial

    def interrupted_at_the_second_trial(tuner, trial):
        trials_run.append(trial.trial_id)
        if len(trials_run) == 2:
            raise KeyboardInterrupt  # the process is stopped mid-trial
        return run_trial(tuner, trial)

    options = dict(work_dir=tmp_path, trials=2, epochs=1, num_examples=60, algorithm="random")
    monkeypatch.setattr(tuning, "run_trial", interrupted_at_the_second_trial)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune_app(SENTIMENT, **options)
    monkeypatch.setattr(tuning, "run_trial", lambda tuner, trial: trials_run.append(trial.trial_id) or run_trial(
        tuner, trial))
    result = tuning.tune_app(SENTIMENT, **options)

    assert trials_run == ["0", "1", "1"]  # trial 0 is not run again; the interrupted one is
    test_rows = set(json.loads((tmp_path / "split.json").read_text())["rows"]["test"])
    *search, last = datasets_made
    assert last == test_rows  # the winner's evaluation, after the search
    assert all(not rows & test_rows for rows in search)
    trials = list(csv.DictReader(open(result["trials"])))
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"] and all(t["validation"] for t in trials)
    assert (tmp_path / "tuning" / "trials.png").exists() and 0 <= result["test"] <= 1
    best = load_app(result["best_app"])  # what `mmkeras run` reads first
    assert best.name == "sentiment" and best.model.fusion == result["best"]["model.fusion"]
