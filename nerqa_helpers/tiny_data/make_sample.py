"""Writes the tiny sample (conll/*.txt, squad/*.json, squad_v2/*.json) next to this file.

The names, places and hand-written sentence patterns are the tables of ``world.py``: all made up
for the workbook but the cities and countries, real places used as settings. This script fills
the patterns with a fixed random seed, so running it again gives the same files:

    python nerqa_helpers/tiny_data/make_sample.py

The patterns are deliberately regular. A small model, trained for seconds, can then learn what
each kind of question asks for (who → a person, when → a year, how much → an amount, ...) and
which of two candidates of one kind the question means (the city a company was founded in or the
one it moved to), and show that it has learned something on the validation split.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __package__:  # imported as nerqa_helpers.tiny_data.make_sample, or run with python -m
    from .world import (AMOUNTS, BRIDGES, COMPANY_WORDS, FIRST_NAMES, HEADCOUNTS, HEADLINES, INDUSTRIES, JOBS,
        JOURNALS, LONG_PATTERN, LONG_QUESTIONS, MONTHS, NER_PATTERNS, PLACES, PRIZES, QA_PATTERNS, SPECIES,
        SPORTS, SURNAMES, TIMES, WORDS)
else:  # run as a script: world.py sits next to this file, which is on sys.path
    from world import (AMOUNTS, BRIDGES, COMPANY_WORDS, FIRST_NAMES, HEADCOUNTS, HEADLINES, INDUSTRIES, JOBS,
        JOURNALS, LONG_PATTERN, LONG_QUESTIONS, MONTHS, NER_PATTERNS, PLACES, PRIZES, QA_PATTERNS, SPECIES,
        SPORTS, SURNAMES, TIMES, WORDS)


# -- QA: paragraphs and their questions, in the SQuAD v1.1 and v2.0 layouts --------------------------
def fill(pattern: str, values: dict) -> tuple[str, dict]:
    """The text of ``pattern`` with its slots filled, and {slot: character start} of each slot."""
    text, starts, position = "", {}, 0
    for match in re.finditer(r"\{(\w+)\}", pattern):
        text += pattern[position : match.start()]
        slot = match.group(1)
        starts.setdefault(slot, len(text))
        text += values[slot]
        position = match.end()
    return text + pattern[position:], starts


# Answer references besides the slot's own text, for the validation split: the word before the
# answer joined to it ("in 2009", "by Maria Okafor"), and for a person the surname.
def answer_variants(context: str, slot: str, value: str, start: int) -> list[dict]:
    """Two or three references: the answer, the answer with the word before it, a person's surname."""
    refs = [{"text": value, "answer_start": start}]
    before = context[:start].rstrip(" ")
    word = before.split(" ")[-1]
    if word.isalpha() and before.endswith(word):
        begin = start - len(word) - 1
        refs.append({"text": context[begin : start + len(value)], "answer_start": begin})
    if slot.startswith("per") and " " in value:
        surname = value.split(" ")[-1]
        refs.append({"text": surname, "answer_start": start + len(value) - len(surname)})
    elif " " in value and slot in ("co", "co2", "money", "time", "product"):
        first = value.split(" ")[0] if slot in ("co", "co2") else " ".join(value.split(" ")[:2])
        refs.append({"text": first, "answer_start": start})
    if len(refs) == 1:
        refs.append(dict(refs[0]))  # several annotators agreeing, as often in the SQuAD dev set
    return refs


class World:
    """Draws the facts of one paragraph; each paragraph of a split has its own subject (title)."""

    def __init__(self, rng: random.Random, people: list[str], companies: list[str], places: list[tuple]):
        self.rng, self.people, self.companies, self.places = rng, people, companies, places
        self.titles: set[str] = set()

    def company(self, industry=None) -> str:
        word = self.rng.choice(self.companies)
        return f"{word} {(industry or self.rng.choice(INDUSTRIES))[2]}"

    def values(self) -> dict:
        rng = self.rng
        per, per2 = rng.sample(self.people, 2)
        industry = rng.choice(INDUSTRIES)
        co, co2 = self.company(industry), self.company()
        while co2.split()[0] == co.split()[0]:
            co2 = self.company()
        (city, country, nat), (city2, _, _) = rng.sample(self.places, 2)
        year = rng.randint(1961, 2012)
        month = rng.choice(MONTHS)
        return {
            "per": per, "per2": per2, "co": co, "co2": co2, "city": city, "city2": city2, "country": country,
            "nat": nat, "industry": industry[0], "product": industry[1],
            "year": str(year), "year2": str(year + rng.randint(3, 9)), "year3": str(year + rng.randint(10, 14)),
            "month": month, "date": f"{month} {year}", "job": rng.choice(JOBS),
            "num": rng.choice(HEADCOUNTS), "money": rng.choice(AMOUNTS), "time": rng.choice(TIMES),
            "bridge": rng.choice(BRIDGES), "species": rng.choice(SPECIES),
        }


def title_of(kind: str, values: dict) -> str:
    title = {"deal": values["co2"], "race": f"{values['year']} {values['city']} Marathon",
             "bridge": f"{values['bridge']} Bridge ({values['city']})",
             "species": f"{values['per']} ({values['species']})"}.get(kind, values["co"])
    return title.replace(" ", "_")


def make_paragraph(world: World, pattern: dict, long: bool = False):
    """(values, context, {slot: start}) for a paragraph whose subject no other paragraph of the split has."""
    while True:
        values = world.values()
        if pattern["kind"] == "race":
            values["num"] = world.rng.choice(["4,000", "7,500", "12,000", "18,000", "25,000", "31,000"])
        title = title_of("long" if long else pattern["kind"], values)
        if title not in world.titles:
            world.titles.add(title)
            break
    text = LONG_PATTERN if long else pattern["text"]
    if pattern["kind"] == "deal":  # "In May 1999, ...": the date slot covers month and year
        text = text.replace("In {month} {year}", "In {date}")
    context, starts = fill(text, values)
    return values, context, starts, title


def squad_split(seed: int, name: str, plan: list[tuple[int, bool, int]], world_pools: tuple,
                per_paragraph: int, several_references: bool, impossible_share: float, avoid=frozenset()):
    """plan: (pattern index, long?, number of paragraphs). Returns (v1 articles, v2 articles).

    ``avoid``: question texts that must not be asked (the training questions, for validation)."""
    rng = random.Random(seed)
    world = World(rng, *world_pools)
    v1, v2, number = [], [], 0
    for pattern_index, long, count in plan:
        pattern = QA_PATTERNS[pattern_index]
        for _ in range(count):
            values, context, starts, title = make_paragraph(world, pattern, long)
            questions = LONG_QUESTIONS if long else pattern["questions"]
            slots = [slot for slot in questions if slot in starts]
            rng.shuffle(slots)
            qas1, qas2 = [], []
            for slot in slots[: per_paragraph + (4 if long else 0)]:
                choices = [q.format(**values) for q in questions[slot]]
                choices = [q for q in choices if q not in avoid] or None
                if choices is None:
                    continue
                number += 1
                question = rng.choice(choices)
                start = starts[slot]
                answers = (answer_variants(context, slot, values[slot], start) if several_references
                           else [{"text": values[slot], "answer_start": start}])
                qid = f"tiny-{name}-{number:03d}"
                qas1.append({"id": qid, "question": question, "answers": answers})
                qas2.append({"id": qid, "question": question, "answers": answers, "is_impossible": False})
            if not long and rng.random() < impossible_share:
                slot, templates = rng.choice(sorted(pattern["impossible"].items()))
                number += 1
                entry = {"id": f"tiny-{name}-{number:03d}", "question": rng.choice(templates).format(**values),
                         "answers": [], "is_impossible": True}
                similar = {"year2": "year", "city2": "city", "per2": "per", "num": "num", "money": "money"}.get(slot)
                if similar in starts and similar != slot:  # a span of the asked-for kind: tempting, but wrong
                    entry["plausible_answers"] = [{"text": values[similar], "answer_start": starts[similar]}]
                qas2.append(entry)
            v1.append({"title": title, "paragraphs": [{"context": context, "qas": qas1}]})
            v2.append({"title": title, "paragraphs": [{"context": context, "qas": qas2}]})
    return v1, v2


# -- NER: CoNLL-2003-style sentences -----------------------------------------------------------------
# The POS and chunk columns, filled in roughly (the workbook does not use them): closed-class words
# from CLOSED, punctuation from PUNCT, the rest guessed from its shape.
CLOSED = {"the": "DT", "a": "DT", "an": "DT", "of": "IN", "in": "IN", "on": "IN", "from": "IN", "to": "TO",
          "for": "IN", "at": "IN", "by": "IN", "with": "IN", "after": "IN", "near": "IN", "north": "RB",
          "and": "CC", "said": "VBD", "would": "MD", "will": "MD", "who": "WP", "his": "PRP$", "it": "PRP",
          "its": "PRP$", "had": "VBD", "has": "VBZ", "was": "VBD", "were": "VBD", "be": "VB", "is": "VBZ",
          "both": "DT", "about": "IN", "between": "IN", "from": "IN", "now": "RB", "next": "JJ", "new": "JJ",
          "home": "NN", "first": "JJ", "third": "JJ", "three-year": "JJ", "five": "CD", "two": "CD"}
PUNCT = {",": ",", ".": ".", "(": "(", ")": ")", "-": ":"}


def pos_and_chunk(token: str, tag: str) -> tuple[str, str]:
    if token in PUNCT:
        return PUNCT[token], "O"
    if tag != "O":
        return ("JJ" if tag.endswith("MISC") and token[-1:] in "nhe" and token.isalpha() else "NNP"), "I-NP"
    if re.fullmatch(r"[\d,.\-]+", token):
        return "CD", "I-NP"
    lower = token.lower()
    if lower in CLOSED:
        kind = CLOSED[lower]
        return kind, ("I-PP" if kind in ("IN", "TO") else "I-VP" if kind.startswith(("VB", "MD")) else "I-NP")
    if token[0].isupper():
        return "NNP", "I-NP"
    if lower.endswith("ed"):
        return "VBD", "I-VP"
    return ("NNS" if lower.endswith("s") and not lower.endswith("ss") else "NN"), "I-NP"


def ner_sentence(rng: random.Random, pattern: str, world: dict, upper: bool = False) -> list[tuple[str, str]]:
    """[(token, IOB1 tag)] for one pattern; touching entities of one type get B- (IOB1)."""
    pools = {"PER": ("PER", world["people"]), "ORG": ("ORG", world["companies"]), "LOC": ("LOC", world["places"]),
             "COUNTRY": ("LOC", world["countries"]), "MISC": ("MISC", world["adjectives"]),
             "SPORT": ("MISC", SPORTS), "PRIZE": ("MISC", PRIZES), "JOURNAL": ("MISC", JOURNALS)}
    rows, previous_type, used = [], None, set()
    for word in pattern.split():
        slot = re.fullmatch(r"\{(\w+)\}", word)
        name = slot.group(1) if slot else None
        if name in pools:
            kind, pool = pools[name]
            value = rng.choice([value for value in pool if value not in used])
            used.add(value)
            tags = [("B-" if index == 0 and previous_type == kind else "I-") + kind for index in range(len(value.split()))]
            previous_type = kind
        else:
            value = rng.choice(WORDS[name]) if name else word
            tags = ["O"] * len(value.split())
            previous_type = None
        rows += [(token.upper() if upper else token, tag) for token, tag in zip(value.split(), tags)]
    return rows


def conll_split(seed: int, documents: list[str], sentences_per_document: int, world: dict) -> str:
    rng = random.Random(seed)
    lines = []
    for topic in documents:
        lines += ["-DOCSTART- -X- -X- O", ""]
        sentences = [ner_sentence(rng, rng.choice(HEADLINES[topic]), world, upper=True),
                     [(token, "I-LOC") for token in rng.choice(world["places"]).split()]
                     + [(",", "O"), (rng.choice(MONTHS), "O"), (str(rng.randint(1, 28)), "O")]]
        sentences += [ner_sentence(rng, pattern, world) for pattern in
                      rng.sample(NER_PATTERNS[topic], min(sentences_per_document, len(NER_PATTERNS[topic])))]
        for sentence in sentences:
            for token, tag in sentence:
                pos, chunk = pos_and_chunk(token, tag)
                lines.append(f"{token} {pos} {chunk} {tag}")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    # Most names are shared by all splits (so that what the model learns about them carries over);
    # a few people, companies and places appear only in validation and test.
    people = [f"{first} {last}" for first, last in zip(FIRST_NAMES, SURNAMES)]
    people += [f"{first} {last}" for first, last in zip(FIRST_NAMES, SURNAMES[7:] + SURNAMES[:7])]
    held_people, people = people[-10:], people[:-10]
    companies, held_companies = COMPANY_WORDS[:-8], COMPANY_WORDS[-8:]
    places, held_places = PLACES[:-6], PLACES[-6:]

    def ner_world(extra: bool) -> dict:
        chosen = places + (held_places if extra else [])
        rng = random.Random(len(chosen))
        return {"people": people + (held_people if extra else []),
                "companies": [f"{word} {rng.choice(INDUSTRIES)[2]}" for word in companies + (held_companies if extra else [])],
                "places": [city for city, _, _ in chosen],
                "countries": sorted({country for _, country, _ in chosen}),
                "adjectives": sorted({adjective for _, _, adjective in chosen})}

    ner_plan = {
        "train": (1, ["business", "sport", "science"] * 4 + ["business", "sport"]),
        "validation": (2, ["business", "sport", "science", "business"]),
        "test": (3, ["sport", "science", "business", "sport"]),
    }
    for split, (seed, documents) in ner_plan.items():
        text = conll_split(seed, documents, 12, ner_world(extra=split != "train"))
        (HERE / "conll" / f"{split}.txt").write_text(text + "\n", encoding="utf-8")

    train_plan = [(0, False, 14), (1, False, 14), (2, False, 12), (3, False, 12), (4, False, 12), (5, False, 10),
                  (0, True, 3)]
    validation_plan = [(0, False, 4), (1, False, 4), (2, False, 3), (3, False, 3), (4, False, 3), (5, False, 3),
                       (0, True, 1)]
    train = squad_split(11, "train", train_plan, (people, companies, places), 4, False, 0.5)
    asked = {q["question"] for article in train[1] for p in article["paragraphs"] for q in p["qas"]}
    validation = squad_split(12, "validation", validation_plan,
                             (people + held_people, held_companies + companies[:6], places + held_places), 4, True, 0.5,
                             avoid=asked)
    for split, (v1, v2) in (("train", train), ("validation", validation)):
        for folder, version, articles in (("squad", "1.1", v1), ("squad_v2", "v2.0", v2)):
            content = {"version": version, "data": articles}
            (HERE / folder / f"{split}.json").write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n",
                                                         encoding="utf-8")


if __name__ == "__main__":
    main()
