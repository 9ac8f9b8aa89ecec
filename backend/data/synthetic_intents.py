"""`intents`: a built-in text task of synthetic customer-support requests, generated from a fixed seed.

Eight intents in four topics of two areas (banking: card, account; shopping: order, delivery). The two intents of
a topic ("siblings") share its objects, its vague complaints and all the filler; what tells them apart is one
clause, and messages are built so that no single word decides:

- objects form a long tail (28 a topic, the commonest 28 times as frequent as the rarest), most not naming their
  topic ("my amex", "the telescope"), and some clauses are shared across topics, their intent depending on the
  object's topic ("please cancel my amex" is card_lost, "please cancel the telescope" order_cancel);
- CONTRAST_P of the messages name the sibling's clause too, denied ("it is not true that my visa was stolen.
  instead, it keeps getting rejected") or said and corrected ("my last message (...) was a mistake: ..."): the
  same words appear either way, and only the clause's place in the sentence decides;
- PAST_P open with a past request, the sibling's half the time ("last month i forgot my password, but that is not
  why i am writing");
- VAGUE_P carry only the topic's vague complaints ("i need a new card"), each leaning toward one sibling by a
  stated weight (VAGUE): those messages are ambiguous between the two siblings by construction, the best possible
  guess right only as often as the weights allow. There is no label noise: every label is the intent the message
  was generated from.

Templated, so not always idiomatic. stdlib only; the same texts on every call (the job's seed only splits them);
10,000 messages in about 0.1 s.
"""

from __future__ import annotations

import random

from backend.data.synthetic_text import distinct_balanced

GENERATION_SEED = 20_22  # fixed: the texts never depend on a job's seed
N_MESSAGES = 10_000
# Shares of the messages (tuned only toward the quick preset's teacher accuracy band): only vague complaints;
# the sibling's event named too; opening with a past or someone else's request.
VAGUE_P = 0.3
CONTRAST_P = 0.45
PAST_P = 0.5

# topic -> (its two intents, the objects its messages are about: a long tail, most of them rare (OBJECT_WEIGHTS),
# most not naming the topic; a model must learn which topic each belongs to from the few messages that use it)
TOPICS = {
    "card": (
        ("card_lost", "card_declined"),
        [
            "my card",
            "my debit card",
            "my visa",
            "my credit card",
            "my mastercard",
            "my amex",
            "my contactless",
            "my travel card",
            "my platinum visa",
            "my student mastercard",
            "my business amex",
            "my virtual card",
            "my gold card",
            "my prepaid card",
            "my metal card",
            "my fuel card",
            "my maestro",
            "my cashback card",
            "my company card",
            "my backup visa",
            "my airline miles card",
            "my green amex",
            "my junior debit card",
            "my euro card",
            "my second mastercard",
            "my replacement visa",
            "my joint debit card",
            "my spare card",
        ],
    ),
    "account": (
        ("account_locked", "account_closure"),
        [
            "my account",
            "my online banking",
            "my savings account",
            "my login",
            "my current account",
            "my isa",
            "my joint account",
            "my profile",
            "my mortgage account",
            "my pension pot",
            "my business account",
            "my kids' account",
            "my premium plan",
            "my investment portfolio",
            "my easy access saver",
            "my fixed term deposit",
            "my budgeting app",
            "my crypto wallet",
            "my overdraft facility",
            "my premier banking",
            "my rainy day pot",
            "my holiday savings",
            "my share dealing account",
            "my student account",
            "my offset account",
            "my trust fund",
            "my club account",
            "my wedding fund",
        ],
    ),
    "order": (
        ("order_cancel", "order_refund"),
        [
            "my order",
            "the blender",
            "the hiking boots",
            "the desk lamp",
            "the phone case",
            "the sofa",
            "the headphones",
            "the yoga mat",
            "the coffee machine",
            "the winter coat",
            "the kettle",
            "the printer ink",
            "the bike helmet",
            "the rug",
            "the bookshelf",
            "the vacuum cleaner",
            "the toaster",
            "the garden hose",
            "the office chair",
            "the board game",
            "the air fryer",
            "the curtains",
            "the running shoes",
            "the baby monitor",
            "the electric toothbrush",
            "the paddling pool",
            "the sewing machine",
            "the telescope",
        ],
    ),
    "delivery": (
        ("delivery_late", "delivery_address"),
        [
            "my parcel",
            "my package",
            "the delivery",
            "my shipment",
            "the box",
            "the courier",
            "the dpd parcel",
            "the royal mail package",
            "the ups box",
            "the fedex shipment",
            "the hermes parcel",
            "the dhl box",
            "the big crate",
            "the pallet",
            "the envelope",
            "the signed-for letter",
            "the flat-pack box",
            "the fragile parcel",
            "the express shipment",
            "the next-day package",
            "the tracked parcel",
            "the oversized box",
            "the gift-wrapped parcel",
            "the second package",
            "the evri parcel",
            "the collection slip",
            "the click and collect parcel",
            "the international shipment",
        ],
    ),
}
OBJECT_WEIGHTS = [1 / (rank + 1) for rank in range(28)]  # Zipf: the first object 28 times as common as the last
CLASS_NAMES = [intent for intents, _ in TOPICS.values() for intent in intents]

# intent -> clauses that say it happened / is wanted ({o}: the object)
CLEAR = {
    "card_lost": [
        "i lost {o}",
        "{o} was stolen",
        "i can't find {o} anywhere",
        "i left {o} in a taxi",
        "someone took {o} from my bag",
        "{o} is gone, i think i dropped it",
        "{o} went missing on my trip",
    ],
    "card_declined": [
        "{o} got declined",
        "{o} was rejected at the checkout",
        "the payment with {o} did not go through",
        "the shop terminal refused {o}",
        "{o} keeps getting declined",
        "every purchase with {o} fails",
        "the cashier said {o} was declined",
    ],
    "account_locked": [
        "i am locked out of {o}",
        "{o} got locked after a few wrong passwords",
        "i forgot the password for {o}",
        "the login for {o} keeps failing",
        "{o} is blocked and i can't sign in",
        "the reset link for {o} does not work",
    ],
    "account_closure": [
        "i want to close {o}",
        "please shut {o} down",
        "i would like {o} closed for good",
        "i am moving banks and want {o} closed",
        "i no longer need {o}, please close it",
        "i need {o} closed this week",
    ],
    "order_cancel": [
        "i want to cancel {o}",
        "please cancel {o} before it ships",
        "i ordered by mistake, so cancel {o}",
        "can you stop {o} from being sent",
        "i changed my mind about {o} and want to cancel it",
        "please call {o} off",
    ],
    "order_refund": [
        "i want a refund for {o}",
        "i sent {o} back and still have no refund",
        "{o} arrived broken, i want my money back",
        "please refund {o}",
        "i returned {o} two weeks ago but got no refund",
        "{o} was the wrong size, i need a refund",
    ],
    "delivery_late": [
        "{o} has not arrived yet",
        "{o} is a week late",
        "{o} is still not here",
        "the tracking for {o} has not moved in days",
        "{o} should have come on monday",
        "i am still waiting for {o}",
    ],
    "delivery_address": [
        "i need to change the address for {o}",
        "please send {o} to my new address",
        "i moved, so {o} must go to a different address",
        "can you update the delivery address of {o}",
        "the address on {o} is wrong, please fix it",
        "please redirect {o} to my office",
    ],
}
# clauses shared across topics: which intent they state depends on the object's topic (none: not used there)
SHARED = [
    ("please cancel {o}", {"card": "card_lost", "account": "account_closure", "order": "order_cancel"}),
    ("i need you to stop {o} right away", {"card": "card_lost", "account": "account_closure", "order": "order_cancel"}),
    ("{o} keeps getting rejected", {"card": "card_declined", "account": "account_locked"}),
    ("{o} does not let me in or through anymore", {"card": "card_declined", "account": "account_locked"}),
    ("{o} has not turned up", {"delivery": "delivery_late", "order": "order_refund"}),
    ("i want {o} sent somewhere else", {"delivery": "delivery_address", "order": "order_cancel"}),
]
SHARED_P = 0.5  # of the messages that state their intent plainly, those that state it with a shared clause
# frames that deny a clause (the sibling's, in a message that then states its own)
NEGATIONS = ["it is not true that {c}", "i never said that {c}", "nobody claimed that {c}", "i did not mean that {c}"]
# intent -> the same events told as past or someone else's (distractors in any intent's messages)
PAST = {
    "card_lost": ["i lost my old card", "my wallet was stolen with my card in it"],
    "card_declined": ["my card got declined at a hotel", "a payment of mine was rejected"],
    "account_locked": ["i got locked out of my account", "i forgot my password"],
    "account_closure": ["i closed my old account", "my brother closed his account with you"],
    "order_cancel": ["i cancelled an order", "my wife cancelled her order"],
    "order_refund": ["i got a refund for a broken kettle", "my refund took ages"],
    "delivery_late": ["a parcel of mine came a week late", "my package was delayed"],
    "delivery_address": ["i changed my delivery address", "a parcel went to my old address"],
}
PAST_FRAMES = [
    "last month {p}, but that is not why i am writing.",
    "a while ago {p} and you sorted it out quickly.",
    "unlike last year, when {p}, this is different.",
    "my friend told me that {p} too, anyway.",
    "{p} once before, which was fine in the end.",
]
# topic -> vague complaints about {o}, each with the share of its uses in the topic's first intent
VAGUE = {
    "card": [
        ("{o} is not working", 0.5),
        ("i can't use {o}", 0.45),
        ("please block {o}", 0.8),
        ("something is wrong with {o}", 0.5),
        ("i need a new card", 0.75),
        ("i could not pay with {o} today", 0.25),
    ],
    "account": [
        ("i have a problem with {o}", 0.5),
        ("i can't get into {o}", 0.8),
        ("i am done with {o}", 0.2),
        ("i need help with {o}", 0.5),
        ("i don't want to use {o} anymore", 0.25),
        ("{o} is useless to me right now", 0.6),
    ],
    "order": [
        ("i don't want {o} anymore", 0.6),
        ("there is a problem with {o}", 0.5),
        ("i want my money back for {o}", 0.3),
        ("{o} is not what i wanted", 0.35),
        ("i need help with {o}", 0.5),
        ("what can you do about {o}", 0.5),
    ],
    "delivery": [
        ("where is {o}", 0.8),
        ("i won't be home for {o}", 0.3),
        ("there is an issue with {o}", 0.5),
        ("i am worried about {o}", 0.6),
        ("{o} went to the wrong place", 0.35),
        ("i need help with {o}", 0.5),
    ],
}
CONTRASTS = [  # {x}: the sibling's clause, said and corrected; {n}: the sibling's clause, denied; {y}: the intent's
    "my last message ({x}) was a mistake: {y}",
    "ignore what i wrote before ({x}); {y}",
    "{n}. instead, {y}",
    "{y}, and {n}",
    "to be clear, {n}; {y}",
    "{n}, but {y}",
]
OPENERS = ["", "", "hi, ", "hello, ", "hey there, ", "good morning, ", "hi team, ", "dear support, "]
REQUESTS = [
    "",
    "",
    "",
    " can you help me?",
    " what should i do?",
    " please sort this out.",
    " i need this fixed today.",
    " please get back to me soon.",
    " this is really annoying.",
    " i have been a customer for years.",
]
CLOSINGS = ["", "", " thanks", " thank you", " cheers", " thanks in advance", " regards"]


def _pick(rng: random.Random, clauses: list[str], obj: str) -> str:
    return rng.choice(clauses).format(o=obj)


def _vague(rng: random.Random, topic: str, first: bool, obj: str) -> str:
    """A vague complaint drawn by its weight toward the intent (`first`: the topic's first intent)."""
    clauses = VAGUE[topic]
    weights = [w if first else 1 - w for _, w in clauses]
    return rng.choices([c for c, _ in clauses], weights)[0].format(o=obj)


def _statement(rng: random.Random, intent: str, topic: str, obj: str, *, negatable: bool = False) -> str:
    """A clause stating `intent` about `obj`: one of its own, or (SHARED_P) a clause shared with other topics."""
    shared = [clause for clause, intent_of in SHARED if intent_of.get(topic) == intent]
    clauses = shared if shared and rng.random() < SHARED_P else CLEAR[intent]
    if negatable:  # statements, not requests, so that a negation frame can hold them
        clauses = [c for c in clauses if not c.startswith(("please", "can you")) and ", so" not in c] or CLEAR[intent]
    return _pick(rng, clauses, obj)


def _message(rng: random.Random, label: int) -> str:
    """One message of intent CLASS_NAMES[label], built as the module docstring says."""
    intent = CLASS_NAMES[label]
    topic = next(t for t, (intents, _) in TOPICS.items() if intent in intents)
    intents, objects = TOPICS[topic]
    sibling = intents[1 - intents.index(intent)]
    obj = rng.choices(objects, OBJECT_WEIGHTS)[0]
    form = rng.random()
    if form < VAGUE_P:  # only vague complaints: ambiguous between the siblings
        core = _vague(rng, topic, intent == intents[0], obj)
        if rng.random() < 0.5:
            second = _vague(rng, topic, intent == intents[0], "it")
            core += "" if second == core.replace(obj, "it") else " and " + second
    elif form < VAGUE_P + CONTRAST_P:  # the sibling's clause too: said and corrected, or denied
        template = rng.choice(CONTRASTS)
        key = "x" if "{x}" in template else "n"
        y_first = template.index("{y}") < template.index("{" + key + "}")  # the first clause names the object
        fill = {"y": _statement(rng, intent, topic, obj if y_first else "it")}
        other = _statement(rng, sibling, topic, "it" if y_first else obj, negatable=key == "n")
        fill[key] = other if key == "x" else rng.choice(NEGATIONS).format(c=other)
        core = template.format(**fill)
    else:
        core = _statement(rng, intent, topic, obj)
        if rng.random() < 0.4:
            core += " and " + _vague(rng, topic, intent == intents[0], "it")
    text = rng.choice(OPENERS)
    if rng.random() < PAST_P:  # a past or someone else's request: the sibling's as often as any other intent's
        past = sibling if rng.random() < 0.5 else rng.choice(CLASS_NAMES)
        text += rng.choice(PAST_FRAMES).format(p=rng.choice(PAST[past])) + " "
    text += core + "." + rng.choice(REQUESTS) + rng.choice(CLOSINGS)
    return text.strip()


def generate(n: int = N_MESSAGES, seed: int = GENERATION_SEED) -> tuple[list[str], list[int]]:
    """`n` distinct messages with labels (index into CLASS_NAMES), balanced (label i % 8), in a fixed order."""
    return distinct_balanced(random.Random(seed), n, len(CLASS_NAMES), _message)
