"""Inspection demo: part image, sensor readings, machine sound, the machine's id and
the spindle current over the machining cycle -> ok or a defect.

The camera, the sensors, the microphone and the current trace each may show a
defect signature (or a harmless false alarm); a part is defective when at
least two of them agree on the defect type. Which machine made the part sets
how likely each defect is (a worn tool scratches, a loose clamp dents, a
coolant fault contaminates). The machine's load shifts every reading, the
motor hum and the current's level, independently of the label.

Example:
>>> import numpy as np
>>> label, cues = inspection_cues(np.random.default_rng(0))
>>> label in ("ok", *_DEFECTS), sorted(cues)
(True, ['current_trace', 'machine', 'machine_sound', 'part_image', 'readings'])
"""

import numpy as np

from mmkeras.data.demo.drawing import (blend, coverage, ellipse, gaussian, grid, polyline_distance,
                                        to_uint8)
from mmkeras.data.demo.sound import band_noise, normalise_rms, time_axis

_DEFECTS = ("scratch", "dent", "contamination")
# Each machine's chance of ok, scratch, dent, contamination: two run well, three
# each have a failing part (tool, clamp, coolant line), one is old all round.
# Over all six, 0.55 of parts are ok.
_MACHINES = {
    "M1": (0.80, 0.07, 0.07, 0.06),
    "M2": (0.80, 0.06, 0.07, 0.07),
    "M3": (0.40, 0.45, 0.08, 0.07),
    "M4": (0.40, 0.07, 0.45, 0.08),
    "M5": (0.40, 0.08, 0.07, 0.45),
    "M6": (0.50, 0.17, 0.17, 0.16),
}
# A defective part shows its signature in each of the four signature sources
# (camera, sensors, microphone, current trace) with this probability, and in
# two at least; an ok part shows a false alarm (random type) per source with
# probability _FALSE_ALARM, never two agreeing.
_SHOWN = 0.7
_FALSE_ALARM = 0.4
_MISSING_SENSOR = 0.03
_MISSING_TRACE = 0.03
_MISSING_MACHINE = 0.02


def _inspection_signatures(rng, label):
    """Per-source signature: a defect name or None for camera, sensors, microphone, current trace."""
    while True:
        if label != "ok":
            signatures = [label if rng.random() < _SHOWN else None for _ in range(4)]
            if sum(s is not None for s in signatures) >= 2:
                return signatures
            continue
        signatures = [str(rng.choice(_DEFECTS)) if rng.random() < _FALSE_ALARM else None for _ in range(4)]
        named = [s for s in signatures if s is not None]
        if len(named) == len(set(named)):
            return signatures


def _part_image(rng, defect, size):
    yy, xx = grid(size)
    image = np.full((size, size, 3), rng.uniform(35, 60)) * np.array([0.95, 1.0, 1.08])

    # A turned flange: disc, centre bore, bolt holes, concentric tool marks.
    cy, cx = 0.5 + rng.uniform(-0.04, 0.04, size=2)
    radius = rng.uniform(0.36, 0.42)
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    part = coverage(r - radius, size) * coverage(0.1 - r, size)
    holes = int(rng.integers(4, 7))
    angle0 = rng.uniform(0, 2 * np.pi)
    for k in range(holes):
        angle = angle0 + 2 * np.pi * k / holes
        hy, hx = cy + 0.27 * np.sin(angle), cx + 0.27 * np.cos(angle)
        part = part * (1.0 - ellipse(yy, xx, hy, hx, 0.035, 0.035, size))
    tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.04, 0.04, size=3)
    light = rng.uniform(0, 2 * np.pi)
    surface = (
        rng.uniform(150, 185)
        + 4.0 * np.sin(2 * np.pi * rng.uniform(20, 35) * r + rng.uniform(0, 2 * np.pi))
        + 25.0 * ((yy - cy) * np.sin(light) + (xx - cx) * np.cos(light)) / radius
        + rng.normal(0.0, 3.0, size=r.shape)
    )
    image = blend(image, surface[..., None] * tint, part)

    def on_part():
        while True:
            py, px = rng.uniform(0.15, 0.85, size=2)
            if 0.15 < np.hypot(py - cy, px - cx) < radius - 0.08:
                return py, px

    drawn = np.zeros(part.shape)  # where the defect is, for its recorded region
    if defect == "scratch":
        py, px = on_part()
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.18, 0.35)
        u = np.linspace(-0.5, 0.5, 48)[:, None] * length
        points = np.concatenate([py + u * np.sin(angle), px + u * np.cos(angle)], axis=1)
        line = coverage(polyline_distance(yy, xx, points) - 0.6 / size, size) * part
        image = image + rng.choice([-1.0, 1.0]) * rng.uniform(35, 50) * line[..., None]
        drawn = line
    elif defect == "dent":
        py, px = on_part()
        sigma = rng.uniform(0.035, 0.055)
        blob = gaussian(yy, xx, py, px, sigma)
        # Lit on one side, shadowed on the other, like a shallow crater.
        relief = ((yy - py) * np.sin(light) + (xx - px) * np.cos(light)) / sigma * blob
        image = image + (40.0 * relief - 15.0 * blob)[..., None] * part[..., None]
        drawn = blob * part
    elif defect == "contamination":
        residue = np.array([(120, 82, 40), (78, 128, 62), (60, 70, 120)][int(rng.integers(3))])
        for _ in range(int(rng.integers(3, 7))):
            py, px = on_part()
            spot_r = rng.uniform(0.015, 0.035)
            spot = ellipse(yy, xx, py, px, spot_r, spot_r * rng.uniform(0.7, 1.3), size)
            image = blend(image, residue, spot * part * rng.uniform(0.45, 0.65))
            drawn = np.maximum(drawn, spot * part)

    image = image + rng.normal(0.0, 5.0, size=image.shape)
    return to_uint8(image), _region(drawn)


def _region(drawn, share=0.25):
    """`"y0 x0 y1 x1"`: the pixels where the defect is drawn at `share` of its
    strongest or more (end excluded); "" where no defect is drawn."""
    rows, columns = np.nonzero(drawn >= share * drawn.max()) if drawn.max() > 0 else ((), ())
    if not len(rows):
        return ""
    return f"{rows.min()} {columns.min()} {rows.max() + 1} {columns.max() + 1}"


def _sensor_readings(rng, load, defect):
    """Temperature (C), vibration RMS (mm/s), current (A); load shifts all three."""
    temperature = 42.0 + 12.0 * load + rng.normal(0.0, 1.5)
    vibration = (1.0 + 0.9 * load) * np.exp(rng.normal(0.0, 0.08))
    current = 8.0 + 5.0 * load + rng.normal(0.0, 0.4)
    if defect == "scratch":  # a worn tool chatters
        vibration += rng.uniform(1.1, 1.8)
    elif defect == "dent":  # a clamping fault or collision draws current
        current += rng.uniform(2.2, 3.4)
    elif defect == "contamination":  # a coolant fault runs hot
        temperature += rng.uniform(6.0, 10.0)
    values = {"temperature": temperature, "vibration_rms": vibration, "current": current}
    return {
        name: "" if rng.random() < _MISSING_SENSOR else f"{value:.3f}"
        for name, value in values.items()
    }


# The current trace: 10 samples a second over one machining cycle of 5-9 s.
TRACE_FEATURES = ("current", "spindle_speed")
_TRACE_STEPS = (50, 90)


def _current_trace(rng, load, defect):
    """`{feature: [T]}`: spindle current (A) and speed (1000 rpm) over the cycle.

    The current ramps up, holds a plateau set by the load, and ramps down.
    A worn tool chatters (a fast oscillation on the plateau), a collision or
    a loose clamp spikes (a few samples, the speed dipping), a coolant fault
    drifts up as the cut heats.
    """
    steps = int(rng.integers(*_TRACE_STEPS, endpoint=True))
    t = np.arange(steps)
    rise, fall = int(0.15 * steps), int(0.9 * steps)
    envelope = np.clip(np.minimum(t / max(rise, 1), (steps - 1 - t) / max(steps - 1 - fall, 1)), 0, 1)
    level = 8.0 + 5.0 * load + rng.normal(0.0, 0.3)
    current = level * envelope + rng.normal(0.0, 0.25, steps)
    speed = (3.0 - 0.4 * load) * envelope + rng.normal(0.0, 0.03, steps)
    plateau = np.arange(rise, fall)
    if defect == "scratch":
        period = rng.uniform(2.5, 3.5)
        current[plateau] += rng.uniform(0.9, 1.4) * np.sin(2 * np.pi * plateau / period + rng.uniform(0, 2 * np.pi))
    elif defect == "dent":
        hit = int(rng.integers(rise, fall - 3))
        knock = rng.uniform(4.0, 6.0) * np.exp(-np.arange(3) / 1.0)
        current[hit:hit + 3] += knock
        speed[hit:hit + 3] -= 0.1 * knock
    elif defect == "contamination":
        current[plateau] += rng.uniform(2.5, 3.5) * (plateau - rise) / max(fall - rise, 1)
    return {"current": current, "spindle_speed": speed}


def _machine_sound(rng, load, defect):
    t = time_axis()
    # Motor hum whose speed follows the load, with harmonics and mains buzz.
    hum_hz = 95.0 + 40.0 * load + rng.normal(0.0, 1.5)
    signal = sum(
        rng.uniform(0.7, 1.3) / k**1.2 * np.sin(2 * np.pi * k * hum_hz * t + rng.uniform(0, 2 * np.pi))
        for k in range(1, 7)
    )
    signal = signal + rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi))
    signal = signal + rng.uniform(0.05, 0.15) * band_noise(rng, t.size, 20, 400)
    if defect == "scratch":  # tool chatter: an intermittent high squeal
        squeal = np.sin(2 * np.pi * rng.uniform(2500, 3800) * t)
        signal = signal + 0.3 * squeal * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 4) * t))
    elif defect == "dent":  # a loose clamp rattles: ringing knocks
        period = 1.0 / rng.uniform(6, 11)
        ring_hz = rng.uniform(700, 1400)
        since = (t + rng.uniform(0, period)) % period
        signal = signal + 1.2 * np.exp(-since / 0.012) * np.sin(2 * np.pi * ring_hz * since)
    elif defect == "contamination":  # grit in the coolant: broadband grinding
        grind = band_noise(rng, t.size, 1200, 3200)
        signal = signal + 0.35 * grind * (0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    signal = signal + 0.01 * rng.normal(size=t.shape)
    return np.clip(normalise_rms(signal, rng.uniform(0.08, 0.15)), -1.0, 1.0)


# The reading that shows each defect's sensor signature.
_TELLTALE_SENSOR = {"scratch": "vibration_rms", "dent": "current", "contamination": "temperature"}


def _inspection_label(rng):
    """A part's machine and label (the machine sets the defect rates)."""
    machine = str(rng.choice(list(_MACHINES)))
    return machine, str(rng.choice(("ok", *_DEFECTS), p=_MACHINES[machine]))


def _inspection_observations(machine, camera, sensors, microphone, trace, missing):
    """What each source shows, given the signatures and what is missing (a
    reading's column name, "machine", "current_trace")."""
    return {"part_image": camera or "none", "readings": _sensor_observation(sensors, missing),
            "machine_sound": microphone or "none",
            "machine": "missing" if "machine" in missing else machine,
            "current_trace": "missing" if "current_trace" in missing else trace or "none"}


def _sensor_observation(signature, missing):
    """What the readings show: the signature, unless its telltale reading is
    missing; then only which telltale readings are missing."""
    if signature is not None and _TELLTALE_SENSOR[signature] not in missing:
        return signature
    return "none" + "".join(f"|no {c}" for c in sorted(missing) if c in _TELLTALE_SENSOR.values())


def _missing_inputs(rng):
    """Which readings, and whether the machine id and the trace, are missing."""
    missing = {c for c in _TELLTALE_SENSOR.values() if rng.random() < _MISSING_SENSOR}
    if rng.random() < _MISSING_MACHINE:
        missing.add("machine")
    if rng.random() < _MISSING_TRACE:
        missing.add("current_trace")
    return missing


def inspection_cues(rng):
    """Draws one example's label and the signature each source shows."""
    machine, label = _inspection_label(rng)
    signatures = _inspection_signatures(rng, label)
    return label, _inspection_observations(machine, *signatures, _missing_inputs(rng))


def inspection_example(rng, index, image_size):
    """Draws example `index`: its manifest row, its cues, and its files' contents by path."""
    machine, label = _inspection_label(rng)
    camera, sensors, microphone, trace = _inspection_signatures(rng, label)
    load = rng.uniform(0.0, 1.0)  # machine state, independent of the label
    part_image = f"images/{index:05d}.jpg"
    machine_sound = f"audio/{index:05d}.wav"
    # Half the traces as .npy, half as .csv: both kinds of series file.
    current_trace = f"traces/{index:05d}.{'npy' if index % 2 else 'csv'}"
    # Drawn in this order (image, sound, readings, trace, what is missing): the order of
    # the random draws is the data.
    image, region = _part_image(rng, camera, image_size)
    contents = {part_image: image, machine_sound: _machine_sound(rng, load, microphone)}
    row = {"part_image": part_image, "machine_sound": machine_sound, "label": label}
    row.update(_sensor_readings(rng, load, sensors))
    series = _current_trace(rng, load, trace)
    missing = {column for column in _TELLTALE_SENSOR.values() if row[column] == ""}
    missing |= _missing_inputs(rng) - set(_TELLTALE_SENSOR.values())
    row["machine"] = "" if "machine" in missing else machine
    if "current_trace" in missing:
        row["current_trace"] = ""
    else:
        row["current_trace"] = current_trace
        contents[current_trace] = series
    cues = _inspection_observations(machine, camera, sensors, microphone, trace, missing)
    return row, {**cues, "part_image_region": region}, contents
