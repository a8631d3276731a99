"""Deterministic synthetic corpus for the `tiny` profile.

Three kinds of documents, all generated from a seeded `random.Random`, so the same seed always
gives the same text (the tiny model and every tiny-profile dataset are reproducible):

* movie-review-style paragraphs of mixed sentiment (the sentiment tasks; VADER scores them),
* question/answer pairs about a small invented world, in several surface formats (only some in
  the exact ``"Question: ...\\nAnswer: ..."`` format, so format compliance starts imperfect),
* small additions ``a + b = c`` with a held-out set of pairs that never appear in pretraining.

Nothing here downloads anything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --------------------------------------------------------------------------- vocabulary
POSITIVE_ADJ = [
    "wonderful",
    "charming",
    "superb",
    "heartfelt",
    "brilliant",
    "delightful",
    "excellent",
    "beautiful",
    "great",
    "lovely",
    "fantastic",
    "amazing",
    "clever",
    "fresh",
    "funny",
    "moving",
    "inspiring",
    "enjoyable",
    "gorgeous",
    "impressive",
    "stunning",
    "sweet",
    "perfect",
    "magnificent",
    "warm",
    "hilarious",
    "thoughtful",
    "elegant",
    "memorable",
    "gripping",
    "masterful",
    "witty",
    "tender",
]
NEGATIVE_ADJ = [
    "boring",
    "dull",
    "awful",
    "terrible",
    "horrible",
    "disappointing",
    "bad",
    "weak",
    "messy",
    "painful",
    "stupid",
    "ugly",
    "annoying",
    "confusing",
    "awkward",
    "lame",
    "pathetic",
    "dreadful",
    "poor",
    "silly",
    "tiresome",
    "miserable",
    "worst",
    "sad",
    "clumsy",
    "bland",
    "tedious",
    "forgettable",
    "predictable",
    "hollow",
    "lifeless",
    "stale",
]
NEUTRAL_ADJ = ["long", "short", "quiet", "loud", "slow", "fast", "old", "new", "strange", "simple"]
TOPICS = [
    "plot",
    "acting",
    "story",
    "script",
    "soundtrack",
    "ending",
    "dialogue",
    "cast",
    "pacing",
    "camera work",
    "lead actor",
    "lead actress",
    "villain",
    "music",
    "humor",
    "final scene",
    "opening scene",
    "set design",
    "editing",
    "costumes",
    "score",
    "direction",
    "twist",
]
FILMS = ["movie", "film", "picture", "sequel", "drama", "comedy", "thriller", "documentary"]
ADVERBS = ["really", "truly", "quite", "very", "simply", "rather", "so", "incredibly", "fairly"]
POS_VERBS = ["loved", "enjoyed", "adored", "liked", "admired", "appreciated"]
NEG_VERBS = ["hated", "disliked", "regretted", "could not stand", "was bored by", "resented"]
NEUTRAL_OPENERS = [
    "I watched this {film} last night.",
    "I saw this {film} with my family.",
    "We went to see this {film} on a Sunday.",
    "This {film} came out last year.",
    "My friend told me about this {film}.",
    "I rented this {film} on a rainy evening.",
    "The {film} runs for about two hours.",
    "I had heard a lot about this {film}.",
]
# Prompts that leave the sentiment open: the sentiment tasks continue these.
SENTIMENT_PROMPTS = [
    "The {film} was",
    "This {film} is",
    "I think the {topic} was",
    "The {topic} of this {film} was",
    "Honestly, the {topic}",
    "My opinion of this {film}:",
    "After watching the {film}, I felt",
    "The {topic} in this {film}",
    "Overall, this {film}",
    "I watched this {film} and it was",
    "In my view the {topic}",
    "The {film} starts and the {topic}",
]

# An invented world for question/answer pairs (no real-world knowledge needed).
PLACES = [
    "Avalon",
    "Brindle",
    "Corvin",
    "Dunmore",
    "Elara",
    "Fenwick",
    "Galt",
    "Harrow",
    "Istra",
    "Jorvik",
    "Kestrel",
    "Lumen",
    "Marrow",
    "Norwick",
    "Orrin",
    "Pell",
]
CAPITALS = [
    "Lorin",
    "Tessa",
    "Vale",
    "Mirth",
    "Oska",
    "Rune",
    "Sable",
    "Thorn",
    "Umber",
    "Wren",
    "Yarrow",
    "Zell",
    "Ashby",
    "Brook",
    "Cairn",
    "Dell",
]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "purple", "orange"]
ANIMALS = ["fox", "owl", "bear", "wolf", "hare", "deer", "crow", "otter"]
FOODS = ["bread", "apples", "fish", "rice", "cheese", "soup", "honey", "beans"]


def _world(seed: int = 0) -> list[tuple[str, str]]:
    """Fixed (question, answer) facts about the invented world."""
    rng = random.Random(seed)
    facts = []
    for place, capital in zip(PLACES, CAPITALS):
        facts.append((f"What is the capital of {place}?", f"The capital of {place} is {capital}."))
        color = rng.choice(COLORS)
        facts.append((f"What color is the flag of {place}?", f"The flag of {place} is {color}."))
        animal = rng.choice(ANIMALS)
        facts.append((f"Which animal lives in {place}?", f"The {animal} lives in {place}."))
        food = rng.choice(FOODS)
        facts.append((f"What do people in {place} eat?", f"People in {place} eat {food}."))
        n = rng.randint(2, 40)
        facts.append((f"How many rivers does {place} have?", f"{place} has {n} rivers."))
    return facts


QA_FACTS = _world()

# --------------------------------------------------------------------------- reviews


def _sentence(rng: random.Random, positive: bool) -> str:
    adj = rng.choice(POSITIVE_ADJ if positive else NEGATIVE_ADJ)
    adj2 = rng.choice(POSITIVE_ADJ if positive else NEGATIVE_ADJ)
    topic, topic2 = rng.choice(TOPICS), rng.choice(TOPICS)
    film, adv = rng.choice(FILMS), rng.choice(ADVERBS)
    verb = rng.choice(POS_VERBS if positive else NEG_VERBS)
    templates = [
        f"The {topic} was {adv} {adj}.",
        f"The {topic} is {adj} and the {topic2} is {adj2}.",
        f"I {verb} the {topic}.",
        f"It is a {adj} {film}.",
        f"What a {adj} {film}!",
        f"The {topic} felt {adj}, and the {topic2} was {adj2}.",
        f"Everything about the {topic} was {adj}.",
        f"I found the {topic} {adv} {adj}.",
        f"This {film} is {adv} {adj}.",
        f"The {topic} made the whole {film} {adj}.",
        f"Some people will say the {topic} is {adj}.",
        f"By the end I {verb} it.",
    ]
    if positive:
        templates += [
            "I would watch it again.",
            "I recommend it to everyone.",
            "It made me smile.",
            "Ten out of ten.",
        ]
    else:
        templates += [
            "I would not watch it again.",
            "I want my money back.",
            "It made me want to leave.",
            "Two out of ten.",
        ]
    return rng.choice(templates)


def _neutral_sentence(rng: random.Random) -> str:
    topic, film = rng.choice(TOPICS), rng.choice(FILMS)
    adj = rng.choice(NEUTRAL_ADJ)
    return rng.choice(
        [
            f"The {topic} is {adj}.",
            f"The {film} is {adj}.",
            f"There is a {adj} {topic}.",
            f"The {topic} comes near the end.",
            f"The {film} was shown in many cities.",
        ]
    )


def review(rng: random.Random) -> tuple[str, bool]:
    """One review paragraph and its overall sentiment (True = positive)."""
    positive = rng.random() < 0.5
    parts = []
    if rng.random() < 0.5:
        parts.append(rng.choice(NEUTRAL_OPENERS).format(film=rng.choice(FILMS)))
    for _ in range(rng.randint(2, 5)):
        r = rng.random()
        if r < 0.15:
            parts.append(_neutral_sentence(rng))
        else:  # mostly on-sentiment, sometimes mixed
            parts.append(_sentence(rng, positive if r < 0.8 else not positive))
    return " ".join(parts), positive


def sentiment_prompt(rng: random.Random) -> str:
    return rng.choice(SENTIMENT_PROMPTS).format(film=rng.choice(FILMS), topic=rng.choice(TOPICS))


# --------------------------------------------------------------------------- Q&A


QA_FORMAT = "Question: {q}\nAnswer: {a}"


def qa_document(rng: random.Random, q: str, a: str) -> str:
    """A Q&A pair in one of several surface formats; only some are the exact target format."""
    r = rng.random()
    if r < 0.22:
        return f"{q}\n" + QA_FORMAT.format(q=q, a=a)  # echo + exact format: what SFT teaches
    if r < 0.45:
        return QA_FORMAT.format(q=q, a=a)
    if r < 0.65:
        return f"Q: {q}\nA: {a}"
    if r < 0.85:
        return f"{q}\n{a}"
    return f"question: {q} answer: {a}"


# --------------------------------------------------------------------------- arithmetic

ARITH_MAX = 50  # operands are 0..ARITH_MAX-1


@dataclass(frozen=True)
class ArithmeticSplit:
    train: list[tuple[int, int]]
    heldout: list[tuple[int, int]]


def arithmetic_split(seed: int = 0, heldout_fraction: float = 0.2) -> ArithmeticSplit:
    """All pairs (a, b) with 0 <= a, b < ARITH_MAX, split into pretraining and held-out pairs.

    Held-out pairs never appear in the pretraining corpus (in either order), so accuracy on them
    measures generalisation, not memorisation."""
    rng = random.Random(seed + 1)
    unordered = [(a, b) for a in range(ARITH_MAX) for b in range(a, ARITH_MAX)]
    rng.shuffle(unordered)
    k = int(len(unordered) * heldout_fraction)
    held = set(unordered[:k])
    train: list[tuple[int, int]] = []
    heldout: list[tuple[int, int]] = []
    for a in range(ARITH_MAX):
        for b in range(ARITH_MAX):
            (heldout if (min(a, b), max(a, b)) in held else train).append((a, b))
    return ArithmeticSplit(train=train, heldout=heldout)


def arithmetic_prompt(a: int, b: int) -> str:
    return f"{a} + {b} ="


def arithmetic_document(rng: random.Random, a: int, b: int) -> str:
    r = rng.random()
    if r < 0.6:
        return f"{a} + {b} = {a + b}"
    if r < 0.8:
        return f"{a} + {b} = {a + b}. {b} + {a} = {a + b}."
    return QA_FORMAT.format(q=f"What is {a} + {b}?", a=str(a + b))


# --------------------------------------------------------------------------- the corpus


def pretraining_corpus(
    n_documents: int = 60_000, seed: int = 0, mix: tuple[float, float, float] = (0.45, 0.15, 0.40)
) -> list[str]:
    """Documents for pretraining the tiny model: reviews / Q&A / arithmetic in proportions `mix`.

    Arithmetic uses only the training pairs of :func:`arithmetic_split`."""
    rng = random.Random(seed)
    split = arithmetic_split(seed)
    docs = []
    for _ in range(n_documents):
        r = rng.random()
        if r < mix[0]:
            docs.append(review(rng)[0])
        elif r < mix[0] + mix[1]:
            question, answer = rng.choice(QA_FACTS)
            docs.append(qa_document(rng, question, answer))
        else:
            a, b = rng.choice(split.train)
            docs.append(arithmetic_document(rng, a, b))
    return docs
