"""A built-in, synthetic sentiment corpus, generated deterministically from a seed.

scikit-learn ships no text corpus and nothing can be downloaded here, so the text default is generated.
It is built not to be trivially separable: the label depends on negation ("was not great"), on which
clause of a contrast wins ("the plot was dull, but the acting was superb" is positive), and sentences mix
positive and negative words; intensifiers and filler phrases vary the surface. Every sentence has
exactly one correct label under these rules, and the classes are balanced.
"""

from __future__ import annotations

import random
from collections.abc import Callable

CLASS_NAMES = ["negative", "positive"]

SUBJECTS = [
    "the movie",
    "this film",
    "the plot",
    "the acting",
    "the soundtrack",
    "the ending",
    "the script",
    "the cinematography",
    "the dialogue",
    "the cast",
    "the sequel",
    "the director's latest work",
    "the food",
    "the service",
    "the waiter",
    "the dessert",
    "the menu",
    "the coffee",
    "the pasta",
    "the hotel",
    "the room",
    "the staff",
    "the view",
    "the breakfast",
    "the pool",
    "the location",
    "the phone",
    "the battery",
    "the screen",
    "the camera",
    "the keyboard",
    "the update",
    "the app",
    "the book",
    "the chapter",
    "the author's style",
    "the translation",
    "the concert",
    "the band",
    "the lecture",
    "the course",
    "the teacher",
    "the game",
    "the graphics",
    "the controls",
    "the story",
    "the price",
    "the delivery",
    "the packaging",
    "the manual",
    "the design",
    "the sound quality",
]
POSITIVE = [
    "good",
    "great",
    "excellent",
    "wonderful",
    "delightful",
    "superb",
    "brilliant",
    "charming",
    "enjoyable",
    "impressive",
    "lovely",
    "fantastic",
    "pleasant",
    "memorable",
    "outstanding",
    "solid",
    "refreshing",
    "engaging",
    "beautiful",
    "clever",
    "satisfying",
    "reliable",
    "elegant",
    "gripping",
    "moving",
    "polished",
    "thoughtful",
    "tasty",
    "friendly",
    "generous",
    "smooth",
    "fun",
    "remarkable",
    "stunning",
    "helpful",
    "inspiring",
    "crisp",
    "cozy",
    "affordable",
    "flawless",
    "intuitive",
    "vibrant",
    "heartwarming",
    "witty",
    "spotless",
    "comfortable",
    "fresh",
    "rewarding",
    "catchy",
    "sharp",
]
NEGATIVE = [
    "bad",
    "awful",
    "terrible",
    "boring",
    "dull",
    "disappointing",
    "mediocre",
    "poor",
    "weak",
    "clumsy",
    "tedious",
    "bland",
    "annoying",
    "forgettable",
    "messy",
    "sloppy",
    "predictable",
    "confusing",
    "lifeless",
    "shallow",
    "frustrating",
    "unreliable",
    "overpriced",
    "stale",
    "rude",
    "noisy",
    "slow",
    "cheap",
    "pointless",
    "painful",
    "dreadful",
    "flat",
    "clunky",
    "buggy",
    "greasy",
    "cramped",
    "dirty",
    "tasteless",
    "uninspired",
    "awkward",
    "disjointed",
    "sluggish",
    "flimsy",
    "grating",
    "tiresome",
    "muddled",
    "soggy",
    "dreary",
    "shoddy",
    "underwhelming",
]
INTENSIFIERS = [
    "",
    "",
    "",
    "very",
    "really",
    "extremely",
    "quite",
    "incredibly",
    "truly",
    "remarkably",
    "rather",
    "fairly",
    "genuinely",
    "surprisingly",
    "absolutely",
    "a bit",
    "somewhat",
    "so",
]
VERBS = ["was", "is", "seemed", "felt", "looked", "turned out to be", "appeared", "proved to be", "remains"]
NEGATIONS = ["not", "never", "not at all", "far from"]
OPENERS = [
    "",
    "",
    "",
    "honestly, ",
    "to be fair, ",
    "overall, ",
    "i think ",
    "in my opinion, ",
    "frankly, ",
    "after two visits, ",
    "as expected, ",
    "surprisingly, ",
    "for what it is worth, ",
    "last weekend ",
    "according to my friends, ",
    "all things considered, ",
]
TAILS = [
    "",
    "",
    "",
    " this time",
    " for the price",
    " on the whole",
    " in the end",
    " compared to last year",
    " for a sunday afternoon",
    " given the hype",
    " despite the crowds",
    " if you ask me",
]
CONTRASTS = ["but", "yet", "however", "though in the end", "but honestly"]
CONCESSIONS = ["although", "even though", "while", "despite the fact that"]


def _clause(rng: random.Random, polarity: int) -> str:
    """One clause whose meaning has the given polarity (1 positive, 0 negative)."""
    subject, verb, intens = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(INTENSIFIERS)
    negate = rng.random() < 0.3
    word_polarity = 1 - polarity if negate else polarity
    adjective = rng.choice(POSITIVE if word_polarity else NEGATIVE)
    phrase = f"{intens} {adjective}".strip()
    if negate:
        negation = rng.choice(NEGATIONS)
        if negation == "far from":
            return f"{subject} {verb} far from {phrase}"
        if negation == "not at all":
            return f"{subject} {verb} not {phrase} at all"
        return f"{subject} {verb} {negation} {phrase}"
    return f"{subject} {verb} {phrase}"


def _sentence(rng: random.Random, label: int) -> str:
    """A sentence whose label is decided by the rules in the module docstring."""
    form = rng.random()
    opener, tail = rng.choice(OPENERS), rng.choice(TAILS)
    if form < 0.5:
        body = _clause(rng, label) + tail
    elif form < 0.7:  # the clause after the contrast word decides
        body = f"{_clause(rng, 1 - label)}, {rng.choice(CONTRASTS)} {_clause(rng, label)}{tail}"
    elif form < 0.8:  # the main clause, not the concession, decides
        body = f"{rng.choice(CONCESSIONS)} {_clause(rng, 1 - label)}, {_clause(rng, label)}{tail}"
    else:  # two clauses agreeing
        body = f"{_clause(rng, label)} and {_clause(rng, label)}{tail}"
    return (opener + body).strip() + "."


def generate(n: int = 6000, seed: int = 0) -> tuple[list[str], list[int]]:
    """`n` balanced, deduplicated sentences with labels (0 negative, 1 positive)."""
    return distinct_balanced(random.Random(seed), n, 2, _sentence)


def distinct_balanced(
    rng: random.Random, n: int, n_classes: int, draw: Callable[[random.Random, int], str]
) -> tuple[list[str], list[int]]:
    """`n` distinct texts with labels cycling through the classes (label i % n_classes), each drawn by
    `draw(rng, label)` until it is one not drawn before; the built-in text tasks are made this way."""
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    while len(texts) < n:
        label = len(texts) % n_classes
        text = draw(rng, label)
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(label)
    return texts, labels
