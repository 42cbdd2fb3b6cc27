"""Benchmarks are not timed tests: each runs once here, tiny, to prove it produces every figure."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import learning  # noqa: E402


def test_learning_benchmark_reports_every_model_against_its_ceiling(tmp_path, capsys):
    out = tmp_path / "learning.json"
    assert learning.main(["sentiment", "--seeds", "0", "1", "--examples", "40", "--epochs", "1",
                          "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [(r["app"], r["seed"]) for r in record["runs"]] == [("sentiment", 0), ("sentiment", 1)]
    models = record["summary"]["sentiment"]["models"]
    assert set(models) == {"model", "review only", "photo only", "voice only"}
    for figures in models.values():
        mean, spread = figures["fraction"]
        assert 0 <= mean <= 1.5 and spread >= 0
    table = capsys.readouterr().out
    assert "| sentiment | model | macro_f1 |" in table and "fraction of ceiling" in table


def test_fusion_benchmark_compares_fusions_and_dropout_rates(tmp_path, capsys):
    import fusion

    out = tmp_path / "fusion.json"
    assert fusion.main(["medical", "--seeds", "0", "--fusions", "concat", "gated", "--dropouts", "0.0",
                        "--examples", "40", "--epochs", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [r["model_options"] for r in record["runs"]] == [
        {"fusion": "concat"}, {"fusion": "gated"}, {"modality_dropout": 0.0}]
    assert all(set(r["scores"]) == {"model"} for r in record["runs"])  # no baselines trained
    assert "| medical fusion=gated | model | roc_auc_macro |" in capsys.readouterr().out


def test_two_modality_benchmark_reports_fused_and_both_baselines(tmp_path, capsys):
    import two_modalities

    out = tmp_path / "two.json"
    assert two_modalities.main(["--seeds", "0", "--examples", "40", "--epochs", "1", "--out", str(out)]) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert set(run["scores"]) == {"model", "digit_image only", "spoken_digit only"}
    assert "| spoken_digit only |" in capsys.readouterr().out
