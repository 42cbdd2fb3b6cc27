"""A user's own table -> an app: `mmkeras init DATA --label COLUMN`.

Each column's kind is decided by asking every registered input kind whether
it takes the column (`Modality.propose`: file signatures for images and
audio, series files for time series, numbers for sensors, few distinct values
for categories, free text for text); the best fit wins. A `split` column is
recognised, columns that identify a row (a value per row) or never change are
skipped, and numeric columns become one sensor input. The app.yaml says, on
each input, why its kind was chosen and what was seen.

Example:
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "t.csv").write_text("id,note,size,label\\n" + "".join(
...     f"{i},a note about part {i % 7},{i * 0.5},{'ab'[i % 2]}\\n" for i in range(40)))
>>> plan = plan_app(folder / "t.csv", label="label")
>>> [(c.column, c.decision) for c in plan.columns]
[('id', 'skipped'), ('note', 'text'), ('size', 'sensor')]
"""

import dataclasses
import datetime
import os
import re

from mmkeras import modalities
from mmkeras.data.manifest import SPLIT_COLUMN, read_manifest

# Columns whose numbers form one sensor input take this name.
SENSOR_INPUT_NAME = "readings"
# A cell that ends like a file name (no spaces, a short extension).
_FILE_NAME = re.compile(r"^\S+\.[A-Za-z][A-Za-z0-9]{1,4}$")


@dataclasses.dataclass
class ColumnPlan:
    """What `init` decided for one manifest column: a kind, "skipped", "split" or "label"."""

    column: str
    decision: str
    seen: str
    config: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class AppPlan:
    name: str
    manifest: str
    label: str
    labels: list
    columns: list
    multi_label: bool = False

    def inputs(self):
        """The app.yaml `inputs`, each with the comment that explains it."""
        inputs, sensor_columns = [], []
        for plan in self.columns:
            if plan.decision == "sensor":
                sensor_columns.append(plan)
            elif plan.decision in modalities.MODALITIES:
                name = _identifier(plan.column)
                spec = {"kind": plan.decision, "name": name, **plan.config}
                if name != plan.column:
                    spec["column"] = plan.column
                inputs.append((spec, f"{plan.decision}, from column {plan.column!r}: {plan.seen}"))
        if sensor_columns:
            features = [plan.column for plan in sensor_columns]
            why = "; ".join(f"{plan.column}: {plan.seen}" for plan in sensor_columns)
            inputs.append(({"kind": "sensor", "name": SENSOR_INPUT_NAME, "features": features},
                           f"sensor, the numeric columns: {why}"))
        return inputs


def plan_app(manifest, label, name=None):
    """Reads a manifest and decides every column (see the module docstring).

    Raises:
        ValueError: no such label column, a label with one value only, a
            column no kind takes, or nothing left to learn from; each names
            the column and the fix.
    """
    manifest = os.fspath(manifest)
    rows = read_manifest(manifest)
    if not rows:
        raise ValueError(f"{manifest}: the manifest has no rows")
    columns = list(dict.fromkeys(key for row in rows for key in row if key is not None))
    if label not in columns:
        raise ValueError(f"{manifest}: no label column {label!r}; the columns are {columns} "
                         f"(pass --label with one of them)")
    values = [str(row.get(label) or "").strip() for row in rows]
    # `a|b` is a set of labels (multi-label); an empty one is then "none of them".
    multi_label = any("|" in value for value in values)
    parts = [part.strip() for value in values for part in (value.split("|") if multi_label else [value])]
    labels = [part for part in dict.fromkeys(parts) if part]
    if len(labels) < 2:
        raise ValueError(f"{manifest}: column {label!r} holds {len(labels)} label value(s) {labels}; a "
                         f"classifier needs two at least (is {label!r} the label column?)")
    folder = os.path.dirname(manifest)
    plans = [_decide(manifest, folder, column, [row.get(column) for row in rows])
             for column in columns if column != label]
    if not any(plan.decision in modalities.MODALITIES for plan in plans):
        raise ValueError(f"{manifest}: no column is left to learn from once the label and the skipped "
                         f"columns are set aside: {[(p.column, p.seen) for p in plans]}")
    name = name or _identifier(os.path.splitext(os.path.basename(manifest))[0])
    return AppPlan(name, manifest, label, labels, plans, multi_label)


def _decide(manifest, folder, column, cells):
    present = [cell for cell in cells if cell is not None and str(cell).strip() != ""]
    if any(isinstance(cell, (dict, list)) for cell in present):
        raise ValueError(f"{manifest}, column {column!r} holds JSON objects or lists; no input kind takes "
                         f"them: flatten them into columns of their own, or drop the column")
    _check_paths_exist(manifest, folder, column, present)
    if column == SPLIT_COLUMN:
        return ColumnPlan(column, "split", "the rows' split (train / validation / test)")
    if len(set(map(str, present))) <= 1:
        return ColumnPlan(column, "skipped", f"constant ({present[0]!r} or empty)" if present else "empty")
    proposals = []
    for kind, spec_class in modalities.MODALITIES.items():
        proposal = spec_class.propose(column, cells, folder)
        if proposal is not None:
            proposals.append((proposal.fit, kind, proposal))
    if not proposals:
        raise ValueError(f"{manifest}, column {column!r}: no input kind takes it (values such as "
                         f"{present[:3]}); remove the column, or write its input in app.yaml by hand")
    fit, kind, proposal = max(proposals, key=lambda p: p[0])
    if proposal.identifies_rows:
        return ColumnPlan(column, "skipped", f"it identifies a row, it does not describe it ({proposal.seen})")
    return ColumnPlan(column, kind, proposal.seen, proposal.config)


def _check_paths_exist(manifest, folder, column, present):
    """A column of file paths whose files are not there is an error, not text."""
    looks_like_paths = [cell for cell in map(str, present) if _FILE_NAME.search(cell.strip())]
    if len(looks_like_paths) < 0.8 * max(len(present), 1):
        return
    first = looks_like_paths[0].strip()
    path = first if "://" in first or os.path.isabs(first) else os.path.join(folder, first)
    if not any(os.path.exists(p if "://" in p or os.path.isabs(p) else os.path.join(folder, p))
               for p in (c.strip() for c in looks_like_paths[:50])):
        raise ValueError(f"{manifest}, column {column!r}: its values look like file paths ({first!r}) but "
                         f"none of the first {min(50, len(looks_like_paths))} is there (tried {path}); paths "
                         f"are read relative to the manifest's folder")


def write_app(plan, out_dir):
    """Writes `out_dir/app.yaml` for `plan`; returns its path. An existing file is refused."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "app.yaml")
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; pass another --out, or remove it")
    manifest = os.path.relpath(os.path.abspath(plan.manifest), os.path.abspath(out_dir))
    lines = [f"# Written by `mmkeras init` on {datetime.date.today()} from {plan.manifest}: every",
             "# setting not shown is a default (README, \"App configuration\"); change anything.",
             f"name: {plan.name}",
             "",
             "data:",
             f"  manifest: {_flow(manifest)}",
             f"  label_column: {_flow(plan.label)}",
             f"  labels: {_flow(plan.labels)}   # in order of first appearance",
             *(["  multi_label: true   # a label cell holds |-separated labels"] if plan.multi_label else []),
             "",
             "inputs:"]
    for spec, why in plan.inputs():
        lines.append(f"  # {why}")
        lines.append(f"  - {_flow(spec)}")
    skipped = [p for p in plan.columns if p.decision in ("skipped", "split")]
    if skipped:
        lines.append("")
        lines.extend(f"# column {p.column!r}: {p.decision}, {p.seen}" for p in skipped)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def format_plan(plan):
    """The decisions as text lines, as `mmkeras init` prints them."""
    width = max(len(p.column) for p in plan.columns)
    kind = "multi-label, " if plan.multi_label else ""
    lines = [f"{plan.label:<{width}}  label: {kind}{len(plan.labels)} classes {plan.labels}"]
    lines += [f"{p.column:<{width}}  {p.decision}: {p.seen}" for p in plan.columns]
    return lines


def _flow(value):
    """One YAML flow value (`{a: 1}`, `[x, y]`, `name`)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip().removesuffix(
        "\n...").removesuffix(" ...")


def _identifier(text):
    """A column name as an input name (a Python identifier)."""
    name = re.sub(r"\W", "_", str(text).strip()).strip("_") or "input"
    return f"x_{name}" if name[0].isdigit() else name
