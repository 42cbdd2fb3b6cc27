"""An app's data: its manifest (or generated demo data), validated and split, the
best scores demo data allows, and raw client inputs made from validated rows."""

import os

from mmkeras import modalities
from mmkeras.data.splits import split_examples


def resolve_manifest(app, manifest=None, work_dir="runs", num_examples=None, seed=0):
    """The manifest to use: `manifest`, else the app's `data.manifest` (relative
    to the app folder), else demo data generated into `work_dir/demo_data`."""
    manifest = manifest or app.data.manifest
    if manifest and not os.path.isabs(manifest) and not os.path.exists(manifest):
        tried = [os.path.abspath(manifest), os.path.abspath(os.path.join(app.path, manifest))]
        manifest = os.path.join(app.path, manifest)
        if not os.path.exists(manifest):
            raise FileNotFoundError(f"Manifest {tried[0]} not found, nor {tried[1]} (a relative path is read "
                                    f"from the current folder, then from the app's folder)")
    if not manifest:
        from mmkeras.data import demo

        count = num_examples or app.data.demo_examples
        manifest = demo.generate(app.name, os.path.join(work_dir, "demo_data"), num_examples=count,
                                 seed=seed, image_size=_demo_image_size(app))
    return manifest


def prepare_data(app, manifest=None, work_dir="runs", num_examples=None, seed=0):
    """Manifest (or generated demo data) -> validated train/validation/test `Examples`."""
    data = app.data
    manifest = resolve_manifest(app, manifest, work_dir, num_examples, seed)
    examples, errors = app.load_examples(manifest, on_error=data.on_error,
                                         report_path=os.path.join(work_dir, "skipped_rows.csv"))
    if errors:
        print(f"Skipped {len(errors)} bad row(s); see {os.path.join(work_dir, 'skipped_rows.csv')}")
    splits = split_examples(examples, data.validation_fraction, data.test_fraction, seed=seed,
                            labels=data.labels)
    return manifest, splits


def demo_ceilings(app, manifest, rows, specs, baselines):
    """The best scores the demo data allows the fused model and each baseline
    (`mmkeras.data.ceiling`); None for data that is not the app's demo data."""
    from mmkeras.data import ceiling, demo

    cues = os.path.join(os.path.dirname(manifest), demo.CUES_NAME)
    if app.name not in demo.DEMO_APPS or not os.path.exists(cues):
        return None
    columns = {spec.name: spec.manifest_columns() for spec in specs}
    seen = {"model": sum(columns.values(), [])}
    seen.update({name: columns[input_name] for name, (_, input_name) in baselines.items()})
    return {name: ceiling.ceiling_scores(app.name, cues, rows, ceiling.source_names_of(app.name, cols))
            for name, cols in seen.items()}


def _demo_image_size(app):
    """The size the demo generator draws images at: the app's first image input's (64 without one)."""
    sizes = [spec.size[0] for spec in app.specs() if isinstance(spec, modalities.ImageInput)]
    return sizes[0] if sizes else 64


def raw_examples(examples, specs, count=4):
    """The first `count` examples as raw client inputs (file bytes, text, floats)."""
    raw = []
    for i in range(min(count, len(examples))):
        example = {}
        for spec in specs:
            example[spec.name] = spec.client_raw(examples.columns[spec.name][i])
        raw.append(example)
    return raw
