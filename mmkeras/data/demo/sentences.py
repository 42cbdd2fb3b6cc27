"""Text helpers for the demo reviews and notes.

Example:
>>> join_sentences(["it arrived", "works well"])
'It arrived. Works well.'
"""


def join_sentences(sentences):
    """Joins lower-case sentences into one capitalised paragraph."""
    return ". ".join(s[:1].upper() + s[1:] for s in sentences) + "."


def add_typo(rng, sentence):
    """Swaps two adjacent letters of a random word; a word of three letters or fewer stays."""
    words = sentence.split(" ")
    index = int(rng.integers(len(words)))
    word = words[index]
    if len(word) > 3:
        cut = int(rng.integers(1, len(word) - 1))
        words[index] = word[:cut] + word[cut + 1] + word[cut] + word[cut + 2 :]
    return " ".join(words)
