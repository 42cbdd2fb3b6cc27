"""Benchmarks are not timed tests: each runs once here, tiny, to prove it produces every figure."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import learning  # noqa: E402


@pytest.mark.slow  # trains models for a minute: `pytest -m slow`
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


@pytest.mark.slow  # trains models for a minute: `pytest -m slow`
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


@pytest.mark.slow  # trains models for a minute: `pytest -m slow`
def test_two_modality_benchmark_reports_fused_and_both_baselines(tmp_path, capsys):
    import two_modalities

    out = tmp_path / "two.json"
    assert two_modalities.main(["--seeds", "0", "--examples", "40", "--epochs", "1", "--out", str(out)]) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert set(run["scores"]) == {"model", "digit_image only", "spoken_digit only"}
    assert "| spoken_digit only |" in capsys.readouterr().out


def test_handwritten_digits_are_each_shown_once(tmp_path):
    import csv

    import numpy as np
    import two_modalities
    from PIL import Image

    manifest = two_modalities.generate(str(tmp_path), 20, seed=0)
    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    pictures = [np.asarray(Image.open(tmp_path / row["digit_image"])) for row in rows]
    assert pictures[0].shape == (32, 32, 3)
    assert len({picture.tobytes() for picture in pictures}) == 20  # no scan twice, so none in two splits
    assert {row["label"] for row in rows} == {"even", "odd"}
    with pytest.raises(ValueError, match="has 1797 scans"):
        two_modalities.generate(str(tmp_path / "more"), 1798, seed=0)
    with pytest.raises(ValueError, match="images must be one of"):
        two_modalities.generate(str(tmp_path / "other"), 2, seed=0, images="mnist")


def test_centred_digits_stand_nearer_the_centre_than_digits_placed_anywhere():
    import numpy as np
    import two_modalities

    def mean_offset(placement):
        rng = np.random.default_rng(0)
        offsets = []
        for digit in list(range(10)) * 4:
            image = two_modalities.digit_image(rng, digit, placement=placement)[..., 0].astype(float)
            ink = np.clip(image - np.median(image), 0, None)  # above the background
            rows, cols = np.indices(ink.shape)
            centre = (np.sum(rows * ink) / ink.sum(), np.sum(cols * ink) / ink.sum())
            offsets.append(np.hypot(centre[0] - 15.5, centre[1] - 15.5))
        return np.mean(offsets)

    assert mean_offset("centred") < 0.6 * mean_offset("anywhere")
    with pytest.raises(ValueError, match="placement must be one of"):
        two_modalities.digit_image(np.random.default_rng(0), 3, placement="middle")


@pytest.mark.slow  # 3 minutes on 2 cores (tracing a dozen models, training and exporting an app)
def test_ratio_benchmarks_produce_every_figure_with_its_target(tmp_path):
    """`python -m benchmarks --quick`: every module runs once, tiny, and each
    target figure comes with a median, a spread and whether it is met."""
    import subprocess

    out = tmp_path / "results.json"
    # serving_load (figure 4) has its own test below.
    modules = ["overhead", "input_pipeline", "serving_overhead", "flops", "memory", "import_time"]
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--repeats", "1", "--out", str(out),
                             "--only", *modules],
                            cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (figures_by_module,) = json.loads(out.read_text())["runs"].values()
    figures = {key: entry for module in figures_by_module.values() for key, entry in module.items()}
    for key in ("train_step_ratio", "fit_throughput_ratio", "serving_ratio_batch_32", "flops_ratio",
                "import_ratio"):
        assert figures[key]["median"] > 0 and "met" in figures[key], key
    assert figures["serving_ratio_batch_1"]["median"] > 0  # reported, no target
    # --quick measures one app's memory (the full run: all three).
    assert figures["train_peak_rss_gib_sentiment"]["median"] > 0
    assert figures["export_peak_rss_gib_sentiment"]["median"] > 0
    assert any(key.startswith("slope") for key in figures)  # step time against sizes
    assert "| float32 | overhead | train_step_ratio |" in result.stdout


def test_serving_load_benchmark_reports_every_figure_without_errors(tmp_path, capsys):
    import serving_load

    out = tmp_path / "serving_load.json"
    assert serving_load.main(["--clients", "4", "--requests", "3", "--ratio-clients", "2", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [(r["protocol"], r["clients"], r["batch"]) for r in record["runs"]] == [
        ("rest", 4, 1), ("rest", 4, 32), ("rest", 2, 32), ("grpc", 4, 1), ("grpc", 4, 32)]
    assert [r["callers"] for r in record["in_process"]] == [1, 2]
    for run in record["runs"] + record["in_process"]:
        assert run["errors"] == 0 and run["requests"] == 3 * run.get("clients", run.get("callers"))
        assert all(run[key] > 0 for key in ("requests_per_s", "examples_per_s", "p50_ms", "p99_ms"))
    server = record["server"]
    assert record["errors"] == 0 and server["exit_code"] == 0
    assert server["rss_start_mib"] > 0 and server["rss_peak_mib"] >= server["rss_end_mib"] > 0
    assert server["within_margin"] in (True, False) and record["ratio"]["value"] > 0
    table = capsys.readouterr().out
    assert "| rest | 4 | 32 | 12 | 0 |" in table and "server RSS (MiB)" in table and "target >= 0.7" in table
