"""Medical demo: grayscale chest radiograph, clinical note and ward -> findings (multi-label).

Nodule and cardiomegaly are mostly seen on the radiograph, pneumonia mostly in
the note; effusions and nodules are seen on the image when large, and the note
mentions mainly the small ones the image misses. The ward a patient lies on
(a category) sets how likely each finding is. Patient position and size,
exposure and the note's history and complaint are nuisance.

Example:
>>> import numpy as np
>>> findings, cues = medical_cues(np.random.default_rng(0))
>>> sorted(cues)
['note', 'radiograph', 'ward']
"""

import numpy as np

from mmkeras.data.demo.drawing import blend, coverage, ellipse, gaussian, grid, to_uint8
from mmkeras.data.demo.sentences import join_sentences

# Prevalence of each finding, independently: overall, and on each ward (the
# wards' share of patients in _WARD_SHARE). A ward's own finding is common there.
_FINDING_PREVALENCE = {"effusion": 0.25, "nodule": 0.2, "cardiomegaly": 0.25, "pneumonia": 0.3}
_WARD_PREVALENCE = {
    "cardiology": {"effusion": 0.35, "nodule": 0.1, "cardiomegaly": 0.6, "pneumonia": 0.15},
    "respiratory": {"effusion": 0.3, "nodule": 0.15, "cardiomegaly": 0.15, "pneumonia": 0.6},
    "oncology": {"effusion": 0.35, "nodule": 0.55, "cardiomegaly": 0.1, "pneumonia": 0.15},
    "emergency": _FINDING_PREVALENCE,
    "general": {"effusion": 0.15, "nodule": 0.1, "cardiomegaly": 0.15, "pneumonia": 0.2},
}
_WARD_SHARE = {"cardiology": 0.2, "respiratory": 0.2, "oncology": 0.15, "emergency": 0.2, "general": 0.25}
_MISSING_WARD = 0.03
# Probability that a present finding is clearly visible on the radiograph.
_FINDING_VISIBLE = {"effusion": 0.55, "nodule": 0.7, "cardiomegaly": 1.0, "pneumonia": 0.4}
# Probability that the note mentions a finding's cue: (when not visible on the
# image, when visible, when absent). Notes mostly describe what the image
# misses, as a clinician adds what was found by exam or earlier CT.
_NOTE_MENTIONS = {
    "effusion": (0.95, 0.3, 0.02),
    "nodule": (0.9, 0.3, 0.02),
    "cardiomegaly": (0.45, 0.45, 0.1),
    "pneumonia": (0.95, 0.6, 0.02),
}
_NOTE_CUES = {
    "effusion": (
        "decreased breath sounds at the {side} base",
        "dullness to percussion at the {side} base",
        "bedside ultrasound shows a small {side} effusion",
    ),
    "nodule": (
        "known {mm} mm pulmonary nodule on prior CT",
        "incidental {side} lung nodule on outside imaging, follow-up requested",
    ),
    "cardiomegaly": (
        "history of congestive heart failure",
        "bilateral pitting ankle edema",
        "elevated BNP",
    ),
    "pneumonia": (
        "fever of 38.{tenth} C with productive cough",
        "crackles over the {side} lower lobe and fever",
        "elevated white count, productive cough for {days} days",
    ),
}
_NOTE_NEGATIONS = {
    "effusion": ("no effusion on prior ultrasound", "breath sounds equal bilaterally"),
    "nodule": ("no known pulmonary nodules", "prior CT without nodules"),
    "cardiomegaly": ("no ankle edema", "no history of heart failure"),
    "pneumonia": ("afebrile", "no fever", "denies productive cough"),
}
_COMPLAINTS = (
    "shortness of breath", "cough", "chest discomfort", "fatigue",
    "pre-operative assessment", "follow-up visit", "fall at home",
)
_HISTORY = (
    "history of hypertension", "type 2 diabetes", "former smoker", "non-smoker",
    "asthma since childhood", "on statins", "no known allergies",
)


def _clinical_note(rng, findings, visible):
    fill = {
        "side": rng.choice(("left", "right")),
        "mm": int(rng.integers(5, 12)),
        "tenth": int(rng.integers(2, 10)),
        "days": int(rng.integers(2, 8)),
    }
    age, sex = int(rng.integers(28, 90)), rng.choice(("male", "female"))
    opening = f"{age}-year-old {sex} presenting with {rng.choice(_COMPLAINTS)}"
    statements = [str(h) for h in rng.choice(_HISTORY, size=int(rng.integers(1, 3)), replace=False)]
    said = {}
    for finding in _NOTE_MENTIONS:
        said[finding], statement = _note_statement(rng, finding, finding in findings, visible[finding], fill)
        if statement:
            statements.append(statement)
    rng.shuffle(statements)
    sentences = [opening] + statements
    return join_sentences(sentences), said


def _note_statement(rng, finding, present, visible, fill):
    """What the note says of one finding: ("mentioned" | "negated" | "silent", text or None)."""
    hidden, shown, absent = _NOTE_MENTIONS[finding]
    if rng.random() < ((shown if visible else hidden) if present else absent):
        return "mentioned", str(rng.choice(_NOTE_CUES[finding])).format(**fill)
    if not present and rng.random() < 0.35:
        return "negated", str(rng.choice(_NOTE_NEGATIONS[finding]))
    return "silent", None


def _lung_point(rng, side_x):
    """A random point inside a lung field, away from its edges."""
    return rng.uniform(0.3, 0.62), side_x + rng.uniform(-0.07, 0.07)


def _radiograph(rng, findings, visible, size):
    yy, xx = grid(size)
    # Patient position and size are nuisance: work in a shifted, scaled frame.
    scale = rng.uniform(0.93, 1.05)
    y = (yy - 0.5 - rng.uniform(-0.03, 0.03)) / scale + 0.5
    x = (xx - 0.5 - rng.uniform(-0.03, 0.03)) / scale + 0.5

    image = np.full((size, size), 12.0)
    image = blend(image, 95.0, ellipse(y, x, 0.58, 0.5, 0.62, 0.46, size))
    sides = (0.31, 0.69)  # image left = patient's right lung
    lungs = []
    for side_x in sides:
        dome = 0.74 + 0.05 * ((x - side_x) / 0.15) ** 2  # diaphragm
        lung = ellipse(y, x, 0.45, side_x, 0.31, 0.15, size) * np.clip((dome - y) * size, 0, 1)
        lungs.append(lung)
        image = blend(image, 32.0, lung)
    lung_area = np.maximum(*lungs)

    # Ribs and clavicles: faint bright arcs over the lungs.
    for side_x in sides:
        for k in range(9):
            # Posterior ribs run level near the spine and drop laterally.
            rib_y = 0.14 + 0.066 * k + 0.12 * (np.abs(x - 0.5) / 0.35) ** 2
            rib = coverage(np.abs(y - rib_y) - 0.011, size) * (np.abs(x - side_x) < 0.19)
            image = image + 16.0 * rib * (0.4 + 0.6 * lung_area)
        clavicle_y = 0.15 + 0.12 * np.abs(x - 0.5)
        clavicle = coverage(np.abs(y - clavicle_y) - 0.012, size) * (np.abs(x - 0.5) < 0.3)
        image = image + 30.0 * clavicle / 2.0
    # Mediastinum and spine down the middle.
    image = blend(image, 140.0, coverage(np.abs(x - 0.5) - 0.065, size) * (y > 0.1))
    image = blend(image, 60.0, coverage(np.abs(x - 0.5) - 0.018, size) * (y > 0.08) * (y < 0.3))

    if "effusion" in findings:
        # Fluid layers at a lung base with a meniscus rising laterally; small
        # effusions only blunt the angle and are nearly invisible.
        side = int(rng.integers(2))
        depth = rng.uniform(0.1, 0.17) if visible["effusion"] else rng.uniform(0.01, 0.02)
        lateral = np.clip((x - sides[side]) * (1 if side else -1) / 0.15, 0, None)
        level = 0.76 - depth - 0.06 * lateral**2
        fluid = np.clip((y - level) * size, 0, 1) * lungs[side]
        image = blend(image, 130.0, fluid * (0.9 if visible["effusion"] else 0.4))

    # Heart: cardiothoracic ratio 0.40-0.48 normally, 0.56-0.66 when enlarged.
    ratio = rng.uniform(0.56, 0.66) if "cardiomegaly" in findings else rng.uniform(0.4, 0.48)
    heart = ellipse(y, x, 0.62, 0.53, 0.14, ratio * 0.62 / 2.0, size)
    image = blend(image, 150.0, heart)

    if "nodule" in findings:
        cy, cx = _lung_point(rng, sides[int(rng.integers(2))])
        radius = rng.uniform(0.03, 0.05) if visible["nodule"] else rng.uniform(0.01, 0.015)
        strength = 75.0 if visible["nodule"] else 15.0
        image = image + strength * ellipse(y, x, cy, cx, radius, radius, size)
    if "pneumonia" in findings:
        # Patchy consolidation: a diffuse cluster of soft blobs in a lower zone.
        side_x = sides[int(rng.integers(2))]
        cy, cx = rng.uniform(0.45, 0.6), side_x + (0.04 if side_x > 0.5 else -0.04)
        patches = sum(
            rng.uniform(0.5, 1.0)
            * gaussian(y, x, cy + rng.normal(0, 0.06), cx + rng.normal(0, 0.04), rng.uniform(0.03, 0.05))
            for _ in range(int(rng.integers(4, 8)))
        )
        strength = 45.0 if visible["pneumonia"] else 8.0
        image = image + strength * np.clip(patches, 0, 1.2) * lung_area

    # Exposure and detector noise are nuisance.
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10)
    image = image + rng.normal(0.0, 5.0, size=image.shape)
    return to_uint8(image)


def _medical_findings(rng):
    """The patient's ward ("" when the row does not say), findings and what the image shows."""
    ward = str(rng.choice(list(_WARD_SHARE), p=list(_WARD_SHARE.values())))
    findings = [f for f, p in _WARD_PREVALENCE[ward].items() if rng.random() < p]
    visible = {f: f in findings and rng.random() < _FINDING_VISIBLE[f] for f in _FINDING_PREVALENCE}
    recorded_ward = "" if rng.random() < _MISSING_WARD else ward
    return recorded_ward, findings, visible


def _medical_observations(ward, visible, said):
    return {"radiograph": "|".join(f for f in _FINDING_PREVALENCE if visible[f]),
            "note": "|".join(f"{f}:{said[f]}" for f in _FINDING_PREVALENCE),
            "ward": ward or "missing"}


def medical_cues(rng):
    """Draws one example's findings and what the radiograph and the note show of them.

    The same distribution as the examples (not the same random stream: the
    examples also draw pixels and words).
    """
    ward, findings, visible = _medical_findings(rng)
    said = {f: _note_statement(rng, f, f in findings, visible[f], _SAMPLE_FILL)[0] for f in _FINDING_PREVALENCE}
    return "|".join(findings), _medical_observations(ward, visible, said)


_SAMPLE_FILL = {"side": "left", "mm": 5, "tenth": 2, "days": 2}


def medical_example(rng, index, image_size):
    """Draws example `index`: its manifest row, its cues, and its files' contents by path."""
    ward, findings, visible = _medical_findings(rng)
    radiograph = f"images/{index:05d}.png"
    contents = {radiograph: _radiograph(rng, findings, visible, image_size)}
    note, said = _clinical_note(rng, findings, visible)
    row = {"radiograph": radiograph, "note": note, "ward": ward, "findings": "|".join(findings)}
    return row, _medical_observations(ward, visible, said), contents
