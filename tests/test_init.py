"""`mmkeras init`: a manifest this project has never seen -> an app.yaml -> `mmkeras run`, no edit."""

import json
import wave

import numpy as np
import pytest
import yaml
from PIL import Image

from mmkeras.app_from_manifest import plan_app, write_app
from mmkeras.cli import main as cli_main

LABELS = ["reject", "pass"]


def _png(path, side, rng):
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def _wav(path, seconds, rate, rng):
    samples = (rng.uniform(-0.3, 0.3, int(seconds * rate)) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())


def unseen_table(folder, rows=60, seed=0):
    """A JSONL manifest with columns named as a user would: every kind, an id, a
    constant and a split column. Returns its path."""
    rng = np.random.default_rng(seed)
    for sub in ("scans", "clips", "runs"):
        (folder / sub).mkdir()
    lines = []
    for i in range(rows):
        passed = i % 2
        _png(folder / "scans" / f"{i}.png", 28 if i % 3 else 30, rng)
        _wav(folder / "clips" / f"{i}.wav", 0.6 + 0.1 * (i % 3), 22050, rng)
        np.save(folder / "runs" / f"{i}.npy", rng.normal(passed, 1, (int(rng.integers(20, 41)), 2)).astype("float32"))
        lines.append({
            "sample_id": f"S-{1000 + i}",
            "Scan File": f"scans/{i}.png",
            "mic": f"clips/{i}.wav" if i % 7 else "",
            "motor run": f"runs/{i}.npy",
            "operator comment": " ".join(rng.choice("clean part looks fine minor mark on edge".split(), 5)),
            "line": int(rng.integers(1, 4)),
            "weight_g": round(float(rng.normal(100 + 5 * passed, 2)), 2),
            "site": "plant-1",
            "split": ["train", "train", "train", "validation", "test"][i % 5],
            "outcome": LABELS[passed],
        })
    path = folder / "inspections.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_init_decides_every_column_and_run_trains_on_it_with_no_edit(tmp_path, capsys):
    manifest = unseen_table(tmp_path)
    out = tmp_path / "app"
    assert cli_main(["init", str(manifest), "--label", "outcome", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sample_id" in printed and "skipped" in printed
    config = yaml.safe_load((out / "app.yaml").read_text())
    kinds = {spec.get("column", spec["name"]): spec["kind"] for spec in config["inputs"] if spec["kind"] != "sensor"}
    assert kinds == {"Scan File": "image", "mic": "audio", "motor run": "timeseries",
                     "operator comment": "text", "line": "category"}
    by_kind = {spec["kind"]: spec for spec in config["inputs"]}
    assert by_kind["sensor"]["features"] == ["weight_g"]
    assert by_kind["image"]["size"] == [32, 32] and by_kind["image"]["name"] == "Scan_File"
    assert by_kind["audio"] == {"kind": "audio", "name": "mic", "sample_rate": 16000, "seconds": 1.0}
    assert by_kind["timeseries"]["steps"] == 40 and by_kind["timeseries"]["features"] == ["f0", "f1"]
    assert config["data"]["labels"] == ["reject", "pass"]  # first appearance
    text = (out / "app.yaml").read_text()
    assert "# column 'sample_id': skipped" in text and "# column 'site': skipped, constant" in text
    assert "# column 'split': split" in text
    assert "# image, from column 'Scan File': 60 image files" in text

    assert cli_main(["run", str(out), "--epochs", "1", "--work-dir", str(tmp_path / "run"),
                     "--export-dir", str(tmp_path / "models")]) == 0
    report = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text())
    assert report["num_examples"] == 12  # the manifest's own test rows
    assert len(report["baselines"]["baselines"]) == 6
    assert (tmp_path / "models" / "1" / "saved_model.pb").exists()


@pytest.mark.parametrize("edit, message", [
    ({"outcome": "pass"}, "column 'outcome' holds 1 label value(s) ['pass']"),
    ({"gadget": {"a": 1}}, "column 'gadget' holds JSON objects or lists"),
    ({"mic": "elsewhere/clip.wav"}, "column 'mic': its values look like file paths"),
])
def test_a_column_init_cannot_decide_and_a_one_value_label_are_located_errors(edit, message, tmp_path, capsys):
    manifest = unseen_table(tmp_path, rows=12)
    lines = [{**json.loads(line), **edit} for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli_main(["init", str(manifest), "--label", "outcome", "--out", str(tmp_path / "app")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "app" / "app.yaml").exists()


def test_whole_numbers_that_count_rows_are_skipped_and_few_codes_are_categories(tmp_path):
    rows = ["row,code,reading,label"] + [f"{i},{i % 4},{i * 0.37:.2f},{'ab'[i % 2]}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    decided = {c.column: c.decision for c in plan_app(tmp_path / "t.csv", "label").columns}
    assert decided == {"row": "skipped", "code": "category", "reading": "sensor"}


def test_a_label_column_of_label_sets_makes_a_multi_label_app(tmp_path):
    rows = ["note,findings"] + [f"the patient note number {i} {'long' * (i % 3)},{['a|b', '', 'b', 'c|a'][i % 4]}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    plan = plan_app(tmp_path / "t.csv", "findings")
    assert plan.multi_label and plan.labels == ["a", "b", "c"]
    app = write_app(plan, tmp_path / "app")
    assert yaml.safe_load(open(app))["data"]["multi_label"] is True
