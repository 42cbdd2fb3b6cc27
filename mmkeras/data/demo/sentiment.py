"""Sentiment demo: review text, product photo and voice clip -> negative / neutral / positive.

The review, the photo and the voice each carry a hidden cue in {-1, 0, +1}; the
label is the sign of their sum. The photo's cue is a sticker's mouth-like arc
and the light's warmth, the voice's is pitch, speaking rate and loudness, the
review's is its wording. Product, backdrop, speaker and filler sentences are
nuisance.

Example:
>>> import numpy as np
>>> label, cues = sentiment_cues(np.random.default_rng(0))
>>> label in ("negative", "neutral", "positive"), sorted(cues)
(True, ['photo', 'review', 'voice'])
"""

import numpy as np

from mmkeras.data.demo.drawing import blend, coverage, ellipse, grid, polyline_distance, to_uint8
from mmkeras.data.demo.sound import SAMPLE_RATE, normalise_rms, time_axis
from mmkeras.data.demo.sentences import add_typo, join_sentences

_SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Probability of cue -1, 0, +1 per modality; fewer zeros make single cues a
# little more telling (about 59% accuracy alone) and keep "neutral" at ~23%.
_SENTIMENT_CUE_PROBS = (0.375, 0.25, 0.375)

_PRODUCTS = (
    "headphones", "blender", "backpack", "desk lamp", "phone case", "kettle",
    "keyboard", "water bottle", "sneakers", "toaster", "speaker", "jacket",
)
_ASPECTS = (
    "battery", "sound", "build", "price", "fit", "design", "handle", "lid",
    "strap", "packaging", "finish", "buttons", "cable", "zipper",
)
_POSITIVE_WORDS = (
    "great", "excellent", "amazing", "sturdy", "perfect", "comfortable",
    "reliable", "fantastic", "lovely", "solid", "impressive", "smooth",
)
_NEGATIVE_WORDS = (
    "terrible", "awful", "flimsy", "useless", "disappointing", "cheap", "poor",
    "broken", "horrible", "loud", "faulty", "wobbly",
)
_NEUTRAL_WORDS = ("okay", "average", "fine", "decent", "standard", "acceptable", "ordinary")
_FILLERS = (
    "bought this {product} for my {person}",
    "arrived on {day}",
    "used it for {weeks} weeks now",
    "ordered the {colour} one",
    "this is my second {product}",
    "got it on sale last {day}",
    "colour is as pictured",
    "my {person} picked it",
)
_PERSONS = ("sister", "dad", "mom", "office", "son", "roommate", "partner", "kitchen")
_DAYS = ("monday", "tuesday", "friday", "saturday", "sunday")
_COLOURS = ("black", "white", "blue", "red", "grey", "green")
_NOISE_WORDS = ("tbh", "lol", "imo", "fwiw", "btw", "hmm", "ok so", "idk", "anyway")


def _sentiment_cue_phrase(rng, cue):
    aspect = rng.choice(_ASPECTS)
    pos, neg = rng.choice(_POSITIVE_WORDS), rng.choice(_NEGATIVE_WORDS)
    if cue > 0:
        options = (
            f"the {aspect} is {pos}",
            f"{pos} {aspect}",
            f"i love the {aspect}",
            f"not {neg} at all",
            f"really {pos} and would buy again",
            f"highly recommend, {pos}",
        )
    elif cue < 0:
        options = (
            f"the {aspect} is {neg}",
            f"{neg} {aspect}",
            f"the {aspect} is not {pos}",
            f"not {pos} at all",
            f"{neg}, would not recommend",
            f"returned it, {neg} {aspect}",
        )
    else:
        other = rng.choice(_ASPECTS)
        options = (
            f"the {aspect} is {rng.choice(_NEUTRAL_WORDS)}",
            "it does the job",
            f"{pos} {aspect} but {neg} {other}",
            f"nothing special, {rng.choice(_NEUTRAL_WORDS)} {aspect}",
            f"{rng.choice(_NEUTRAL_WORDS)} for the price",
        )
    return str(rng.choice(options))


# Besides the opinion word lists, the cue phrases' fixed words that carry or flip an opinion.
_CUE_PHRASE_WORDS = frozenset(("love", "recommend", "not", "returned", "nothing", "special", "job"))


def _is_cue_word(word):
    word = word.strip(",.").lower()
    return word in _CUE_PHRASE_WORDS or word in (*_POSITIVE_WORDS, *_NEGATIVE_WORDS, *_NEUTRAL_WORDS)


def _sentiment_review(rng, cue):
    """The review's text, and the positions (in `text.split()`) of the words that
    carry its cue: the opinion words of its cue phrases (`_is_cue_word`)."""
    fillers = [
        str(rng.choice(_FILLERS)).format(
            product=rng.choice(_PRODUCTS),
            person=rng.choice(_PERSONS),
            day=rng.choice(_DAYS),
            weeks=int(rng.integers(1, 9)),
            colour=rng.choice(_COLOURS),
        )
        for _ in range(int(rng.integers(1, 3)))
    ]
    cues = [_sentiment_cue_phrase(rng, cue) for _ in range(int(rng.integers(1, 3)))]
    sentences = fillers + cues
    rng.shuffle(sentences)
    if rng.random() < 0.4:
        sentences.insert(0, str(rng.choice(_NOISE_WORDS)))
    is_cue = [sentence in cues for sentence in sentences]
    if rng.random() < 0.3:
        index = int(rng.integers(len(sentences)))
        sentences[index] = add_typo(rng, sentences[index])
    positions, start = [], 0
    for sentence, cue_sentence in zip(sentences, is_cue):
        words = sentence.split()
        positions += [start + k for k, word in enumerate(words) if cue_sentence and _is_cue_word(word)]
        start += len(words)
    return join_sentences(sentences), positions


# Neutral studio backdrops, so that the light's colour stays visible.
_BACKDROPS = ((222, 220, 214), (122, 124, 128), (196, 190, 180), (92, 95, 100))


def _sentiment_photo(rng, cue, size):
    yy, xx = grid(size)
    # Backdrop: table or wall with a vertical light falloff.
    backdrop = np.array(_BACKDROPS[int(rng.integers(len(_BACKDROPS)))], dtype=float)
    falloff = 1.0 + rng.uniform(-0.25, 0.25) * (yy - 0.5)
    image = backdrop * falloff[..., None] * np.ones((size, size, 3))

    # Product: a box, a round object or a bottle, any colour, anywhere central.
    cy, cx = rng.uniform(0.45, 0.58), rng.uniform(0.38, 0.62)
    ry, rx = rng.uniform(0.2, 0.3), rng.uniform(0.16, 0.28)
    shape = int(rng.integers(3))
    if shape == 0:
        inside = np.maximum(np.abs(yy - cy) - ry, np.abs(xx - cx) - rx)
        mask = coverage(inside, size)
    elif shape == 1:
        mask = ellipse(yy, xx, cy, cx, ry, ry, size)
    else:
        mask = np.maximum(
            ellipse(yy, xx, cy + 0.05, cx, ry, rx * 0.7, size),
            ellipse(yy, xx, cy - ry * 0.9, cx, ry * 0.35, rx * 0.3, size),
        )
    shadow = ellipse(yy, xx, cy + ry + 0.02, cx + 0.03, 0.05, rx * 1.1, size)
    image = image * (1.0 - 0.35 * shadow[..., None])
    colour = rng.uniform(40, 230, size=3)
    shading = 1.0 - 0.35 * (xx - cx) + 0.15 * (cy - yy)
    image = blend(image, colour * shading[..., None], mask)

    # Sticker with a mouth-like arc: curves up (cue +1), flat (0) or down (-1).
    sy, sx, radius = cy, cx, min(ry, rx) * 0.75
    image = blend(image, (236, 232, 220), ellipse(yy, xx, sy, sx, radius, radius, size))
    u = np.linspace(-1.0, 1.0, 40)
    bend = (0.55 * cue + rng.normal(0.0, 0.08)) * radius
    arc = np.stack([sy + 0.25 * radius + bend * (u**2 - 0.5), sx + 0.6 * radius * u], axis=-1)
    stroke = coverage(polyline_distance(yy, xx, arc) - max(radius * 0.1, 0.6 / size), size)
    image = blend(image, (40, 36, 34), stroke)

    # Warm, bright light for positive; cool, dim light for negative.
    warmth = 0.12 * cue + rng.normal(0.0, 0.03)
    brightness = 1.0 + 0.08 * cue + rng.normal(0.0, 0.03)
    image = image * np.array([1.0 + warmth, 1.0 + 0.3 * warmth, 1.0 - warmth]) * brightness
    image = image + rng.normal(0.0, 4.0, size=image.shape)
    return to_uint8(image)


def _sentiment_voice(rng, cue):
    t = time_axis()
    # Speaker pitch (label-independent) times an affect factor and contour.
    base = rng.uniform(95, 135) if rng.random() < 0.5 else rng.uniform(170, 230)
    slope = 0.12 * cue + rng.normal(0.0, 0.03)
    vibrato = 0.02 * np.sin(2 * np.pi * rng.uniform(4, 6) * t + rng.uniform(0, 2 * np.pi))
    f0 = base * (1.0 + 0.1 * cue) * (1.0 + slope * (t - 0.5) + vibrato)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE

    # Harmonics shaped by two formants (vowel colour is nuisance).
    formants = (rng.uniform(450, 850), rng.uniform(1100, 2000))
    harmonics = np.arange(1, int(4000 // f0.max()) + 1)
    freqs = harmonics * f0.mean()
    gains = sum(np.exp(-(((freqs - f) / 180.0) ** 2)) for f in formants) + 0.15
    # sin(k * phase) by the Chebyshev recurrence: one multiply-add per
    # harmonic instead of one sin call.
    voiced, previous, current = np.zeros_like(t), np.zeros_like(t), np.sin(phase)
    twice_cos = 2.0 * np.cos(phase)
    for gain in gains / harmonics:
        voiced += gain * current
        previous, current = current, twice_cos * current - previous

    # Syllables: faster for positive, slower for negative.
    rate = (3.9 + 1.3 * cue) * rng.uniform(0.9, 1.1)
    envelope = np.zeros_like(t)
    onset = rng.uniform(0.0, 0.15)
    while onset < t[-1]:
        length = rng.uniform(0.55, 0.8) / rate
        inside = (t >= onset) & (t < onset + length)
        envelope[inside] += rng.uniform(0.6, 1.0) * np.sin(np.pi * (t[inside] - onset) / length)
        onset += rng.uniform(0.85, 1.15) / rate
    signal = voiced * envelope + 0.02 * rng.normal(size=t.shape)

    # Energy: louder for positive; recording gain is nuisance.
    rms = (0.12 + 0.05 * cue) * rng.uniform(0.85, 1.15)
    return np.clip(normalise_rms(signal, rms), -1.0, 1.0)


def sentiment_cues(rng):
    """Draws one example's label and the cue each source shows (-1, 0 or +1)."""
    cues = rng.choice([-1, 0, 1], size=3, p=_SENTIMENT_CUE_PROBS)
    label = _SENTIMENT_LABELS[int(np.sign(int(cues.sum()))) + 1]
    return label, dict(zip(("review", "photo", "voice"), (int(c) for c in cues)))


def sentiment_example(rng, index, image_size):
    """Draws example `index`: its manifest row, its cues, and its files' contents by path."""
    label, cues = sentiment_cues(rng)
    photo = f"images/{index:05d}.png"
    voice = f"audio/{index:05d}.wav"
    # Drawn in this order (photo, voice, review): the order of the random draws is the data.
    contents = {photo: _sentiment_photo(rng, cues["photo"], image_size),
                voice: _sentiment_voice(rng, cues["voice"])}
    review, cue_words = _sentiment_review(rng, cues["review"])
    cues = {**cues, "review_cue_words": " ".join(map(str, cue_words))}
    return {"review": review, "photo": photo, "voice": voice, "label": label}, cues, contents
