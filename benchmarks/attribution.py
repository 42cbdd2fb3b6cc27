"""Attributions against the cues the demo generators drew (issue 26).

The report's occlusion attributions (`mmkeras/evaluation/attributions.py`)
should land where the data put the evidence. The generators record it in
`cues.csv`:
- inspection: `part_image_region`, the drawn defect's bounding box. Over the
  test images that show a defect the model predicts, the share of the image's
  positive attribution mass inside the box (each grid cell's score shared by
  the fraction of the cell inside it), against the box's share of the image.
- sentiment: `review_cue_words`, the words of the review's cue phrases. Over
  the test reviews whose cue points the way of the prediction (+1 and
  positive, -1 and negative), the share of the positive word attribution on
  cue words, against the cue words' share of the words.
Target: the ratio (attribution share / area or word share) >= 3.

Each run trains the app's fused model on fresh demo data (no baselines, no
export). Usage: python benchmarks/attribution.py APP [--seed S] [--examples N]
[--epochs E] [--out F]
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time

import numpy as np


def _mass_inside(attribution, region, shape):
    """Share of the positive cell scores inside `region` (y0, x0, y1, x1)."""
    grid = max(r for r, _ in attribution["parts"]) + 1
    rows, columns = np.linspace(0, shape[0], grid + 1), np.linspace(0, shape[1], grid + 1)
    y0, x0, y1, x1 = region
    inside = total = 0.0
    for (r, c), score in zip(attribution["parts"], attribution["scores"]):
        if score <= 0:
            continue
        overlap = (max(0.0, min(rows[r + 1], y1) - max(rows[r], y0))
                   * max(0.0, min(columns[c + 1], x1) - max(columns[c], x0)))
        inside += score * overlap / ((rows[r + 1] - rows[r]) * (columns[c + 1] - columns[c]))
        total += score
    return inside / total if total else None


def _words_share(attribution, positions):
    scores = np.array(attribution["scores"])
    on_cue = np.isin(np.arange(len(scores)), positions)
    positive = np.clip(scores, 0, None)
    return (positive[on_cue].sum() / positive.sum() if positive.sum() else None), on_cue.mean()


def measure(app, seed=0, examples=None, epochs=None):
    """Trains `app` once and measures its attributions against the recorded cues."""
    from mmkeras.app import load_app, run_app
    from mmkeras.data.demo import CUES_NAME
    from mmkeras.data.pipeline import decoded_arrays
    from mmkeras.data.splits import recorded_split
    from mmkeras.evaluation.attributions import occlusion_attributions
    from mmkeras.evaluation.predict import model_predict_fn

    config = load_app(os.path.join("apps", app))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = run_app(config, work_dir=tmp, export=False, verbose=0, seed=seed, num_examples=examples,
                          epochs=epochs, baselines=False)
        model, specs = results["model"], results["model"].specs
        test = recorded_split(config, tmp)
        with open(os.path.join(tmp, "demo_data", CUES_NAME), newline="") as f:
            cues = {int(row["row"]): row for row in csv.DictReader(f)}
        inputs = decoded_arrays(test, specs)
        predict = model_predict_fn(model, 64)
        predicted = predict(inputs).argmax(axis=1)
        labels = config.data.labels
        shares, baselines, used = [], [], []
        for i, row in enumerate(test.rows):
            cue, label = cues[row], labels[predicted[i]]
            if app == "inspection" and cue["part_image_region"] and cue["part_image"] == label:
                attribution = occlusion_attributions(predict, inputs, i, specs, predicted[i]).get("part_image")
                region = [float(v) for v in cue["part_image_region"].split()]
                shape = inputs["part_image"].shape[1:3]
                share = attribution and _mass_inside(attribution, region, shape)
                baseline = (region[2] - region[0]) * (region[3] - region[1]) / (shape[0] * shape[1])
            elif app == "sentiment" and {"1": "positive", "-1": "negative"}.get(cue["review"]) == label:
                attribution = occlusion_attributions(predict, inputs, i, specs, predicted[i]).get("review")
                positions = [int(p) for p in cue["review_cue_words"].split()]
                share, baseline = _words_share(attribution, positions) if attribution else (None, None)
            else:
                continue
            if share is not None:
                shares.append(share)
                baselines.append(baseline)
                used.append(row)
    return {"app": app, "seed": seed, "examples_measured": len(used), "headline": results["report"]["headline"],
            "attribution_share": float(np.mean(shares)), "cue_share": float(np.mean(baselines)),
            "ratio": float(np.mean(shares) / np.mean(baselines)), "seconds": time.perf_counter() - start}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=["inspection", "sentiment"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--out", default="runs/benchmarks/attribution.json")
    args = parser.parse_args(argv)
    result = measure(args.app, args.seed, args.examples, args.epochs)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
