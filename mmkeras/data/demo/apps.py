"""The demo applications' manifests: columns and their kinds, labels, hidden-cue sources.

Example:
>>> DEMO_APPS["medical"].labels
('effusion', 'nodule', 'cardiomegaly', 'pneumonia')
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DemoApp:
    """Describes one demo application's manifest.

    Args:
        name: application name.
        columns: dict of manifest column -> kind, one of "text", "image",
            "audio", "sensor", "category", "timeseries" or "label", in
            manifest order.
        label_column: the column that holds the label.
        labels: class names, in the order a model's head should use.
        multi_label: whether the label column is a "|"-separated subset of
            `labels` (possibly empty) instead of one class.
        cue_sources: each source of a hidden cue -> the manifest columns that
            show it (the three sensor readings show one signature).
        cue_locations: more columns of `cues.csv` that say where a cue lies
            in its input (what the attribution benchmark checks attributions
            against): `review_cue_words` (positions of the opinion words of
            the review's cue phrases), `part_image_region` (the drawn defect's bounding box, `y0
            x0 y1 x1` in pixels, end excluded; empty without one).

    Example:
    >>> DEMO_APPS["inspection"].columns_of_kind("sensor")
    ['temperature', 'vibration_rms', 'current']
    """

    name: str
    columns: dict
    label_column: str
    labels: tuple
    cue_sources: dict
    multi_label: bool = False
    cue_locations: tuple = ()

    def columns_of_kind(self, kind):
        """Returns the column names whose kind is `kind`, in manifest order."""
        return [column for column, k in self.columns.items() if k == kind]


DEMO_APPS = {
    "sentiment": DemoApp(
        name="sentiment",
        columns={"review": "text", "photo": "image", "voice": "audio", "label": "label"},
        label_column="label",
        labels=("negative", "neutral", "positive"),
        cue_sources={"review": ("review",), "photo": ("photo",), "voice": ("voice",)},
        cue_locations=("review_cue_words",),
    ),
    "medical": DemoApp(
        name="medical",
        columns={"radiograph": "image", "note": "text", "ward": "category", "findings": "label"},
        label_column="findings",
        labels=("effusion", "nodule", "cardiomegaly", "pneumonia"),
        cue_sources={"radiograph": ("radiograph",), "note": ("note",), "ward": ("ward",)},
        multi_label=True,
    ),
    "inspection": DemoApp(
        name="inspection",
        columns={
            "part_image": "image",
            "temperature": "sensor",
            "vibration_rms": "sensor",
            "current": "sensor",
            "machine_sound": "audio",
            "machine": "category",
            "current_trace": "timeseries",
            "label": "label",
        },
        label_column="label",
        labels=("ok", "scratch", "dent", "contamination"),
        cue_sources={"part_image": ("part_image",),
                     "readings": ("temperature", "vibration_rms", "current"),
                     "machine_sound": ("machine_sound",),
                     "machine": ("machine",),
                     "current_trace": ("current_trace",)},
        cue_locations=("part_image_region",),
    ),
}

# Column name -> kind, per app (the same information as `DEMO_APPS`).
APP_COLUMNS = {name: dict(app.columns) for name, app in DEMO_APPS.items()}
