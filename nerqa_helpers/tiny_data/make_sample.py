"""Writes the tiny sample (conll/*.txt, squad/*.json, squad_v2/*.json) next to this file.

Every name, fact and sentence pattern below was made up for the workbook; the cities and
countries are real places, used as settings. The text is put together from hand-written sentence
patterns filled with a fixed random seed, so running this again gives the same files:

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

# -- the world: fictional people and companies, real places -----------------------------------------
FIRST_NAMES = ["Maria", "Samuel", "Lena", "Tomas", "Ines", "Kofi", "Hana", "Aisha", "Nils", "Chiara", "Rafael",
               "Yusuf", "Elena", "Marek", "Sofia", "Daniel", "Priya", "Jonas", "Amara", "Lucas", "Mei", "Oskar",
               "Carlos", "Greta", "Ana", "Viktor", "Noor", "Emeka", "Clara", "Mateus", "Ingrid", "Ravi", "Leila",
               "Bruno", "Astrid", "Dario", "Zanele", "Felix", "Rosa", "Henrik", "Nadia", "Paulo", "Lotte", "Kwame"]
SURNAMES = ["Okafor", "Adeyemi", "Brandt", "Richter", "Carvalho", "Mensah", "Sato", "Rahman", "Eriksen", "Bellini",
            "Mendes", "Demir", "Petrova", "Nowak", "Lindgren", "Osei", "Nair", "Weber", "Diallo", "Moreau",
            "Tanaka", "Berg", "Ibarra", "Holm", "Ribeiro", "Hale", "Haddad", "Obi", "Voss", "Lima", "Solberg",
            "Menon", "Kowalska", "Farahani", "Costa", "Nyberg", "Russo", "Khumalo", "Baumann", "Almeida", "Lund",
            "Benali", "Serra", "Jansen", "Boateng", "Galli", "Aalto", "Moyo", "Ferreira", "Horvat"]
COMPANY_WORDS = ["Veltrix", "Brightwave", "Kessler", "Orvana", "Halden", "Solmar", "Tagus", "Corvel", "Lumen",
                 "Bluefin", "Atlas", "Meridian", "Pinecrest", "Quarto", "Riverstone", "Sable", "Trellis", "Umbra",
                 "Vantor", "Westhaven", "Zephyr", "Arcadia", "Boreal", "Cobalt", "Ember", "Fjord", "Granite",
                 "Harbourline", "Iris", "Juniper", "Kestrel", "Marisol", "Oakline", "Palomar", "Redfern", "Silverleaf",
                 "Tidewater", "Northgate", "Copperfield", "Bramble", "Lindqvist", "Novaro", "Estrela", "Kaskade"]
INDUSTRIES = [  # (industry, best-known product, the second word of a company's name)
    ("software", "a booking app for small hotels", "Systems"), ("food", "a range of frozen soups", "Foods"),
    ("shipping", "a fleet of electric ferries", "Marine"), ("telecom", "a cheap rural mobile network", "Telecom"),
    ("energy", "a solar roof tile", "Energy"), ("logistics", "cold storage for fruit", "Logistics"),
    ("pharmaceutical", "a fast malaria test", "Pharma"), ("rail", "a night train to the coast", "Rail"),
    ("robotics", "a warehouse robot", "Robotics"), ("textile", "a recycled wool fabric", "Textiles"),
    ("coffee", "cold brew in cans", "Coffee"), ("paper", "paper made from straw", "Paper"),
    ("glass", "a thin solar glass", "Glass"), ("furniture", "a flat-pack desk", "Furniture"),
    ("insurance", "crop insurance for small farms", "Insurance"), ("media", "a podcast about cities", "Media"),
]
PLACES = [  # city, country, adjective of the country (a MISC entity in CoNLL terms)
    ("Lisbon", "Portugal", "Portuguese"), ("Porto", "Portugal", "Portuguese"), ("Nairobi", "Kenya", "Kenyan"),
    ("Mombasa", "Kenya", "Kenyan"), ("Oslo", "Norway", "Norwegian"), ("Bergen", "Norway", "Norwegian"),
    ("Hamburg", "Germany", "German"), ("Berlin", "Germany", "German"), ("Madrid", "Spain", "Spanish"),
    ("Valencia", "Spain", "Spanish"), ("Lyon", "France", "French"), ("Marseille", "France", "French"),
    ("Accra", "Ghana", "Ghanaian"), ("Lagos", "Nigeria", "Nigerian"), ("Gdansk", "Poland", "Polish"),
    ("Krakow", "Poland", "Polish"), ("Osaka", "Japan", "Japanese"), ("Kyoto", "Japan", "Japanese"),
    ("Cape Town", "South Africa", "South African"), ("Turin", "Italy", "Italian"),
    ("Rotterdam", "Netherlands", "Dutch"), ("Gothenburg", "Sweden", "Swedish"), ("Dakar", "Senegal", "Senegalese"),
    ("Helsinki", "Finland", "Finnish"), ("Tallinn", "Estonia", "Estonian"), ("Ghent", "Belgium", "Belgian"),
    ("Pune", "India", "Indian"), ("Montreal", "Canada", "Canadian"), ("Cork", "Ireland", "Irish"),
    ("Aarhus", "Denmark", "Danish"), ("Zagreb", "Croatia", "Croatian"), ("Izmir", "Turkey", "Turkish"),
]
JOBS = ["engineer", "nurse", "teacher", "pilot", "chef", "lawyer", "farmer", "architect", "journalist", "banker"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
BRIDGES = ["Harbour", "Riverside", "North", "Old Mill", "Silver", "Kingsgate", "Lighthouse", "Meadow"]
SPECIES = ["frog", "beetle", "orchid", "bat", "lizard", "moth", "snail", "fern"]


def plural(word: str) -> str:
    return word + ("es" if word.endswith(("sh", "ch")) else "s")


# -- QA: paragraphs with slots, and the questions each slot answers ---------------------------------
# A paragraph pattern is text with {slots}; every slot a question can ask about has answer templates.
# Questions name the paragraph's subject (its {co}, {bridge}, ...), so they can be told apart.
QA_PATTERNS = [
    {
        "kind": "company",
        "text": ("{co} is a {nat} {industry} company. It was founded in {city} in {year} by {per}, "
                 "a former {job}, and it employs about {num} people."),
        "questions": {
            "per": ["Who founded {co}?", "Who started {co}?", "Which person founded {co}?", "By whom was {co} founded?"],
            "city": ["In which city was {co} founded?", "Where was {co} founded?", "Where did {co} start?"],
            "year": ["When was {co} founded?", "In what year was {co} founded?", "In which year did {per} found {co}?"],
            "num": ["How many people does {co} employ?", "How many people work for {co}?"],
            "job": ["What did {per} work as before founding {co}?", "What was the founder of {co} before?"],
        },
        "impossible": {"year2": ["When did {co} move its headquarters?"], "city2": ["Where did {co} move to?"]},
    },
    {
        "kind": "company_move",
        "text": ("{co} was founded in {city} in {year} by {per}, a {job} who had worked for {co2}. "
                 "The company moved its headquarters to {city2} in {year2}."),
        "questions": {
            "per": ["Who founded {co}?", "Who started {co}?", "Which person founded {co}?"],
            "city": ["In which city was {co} founded?", "Where was {co} founded?"],
            "year": ["When was {co} founded?", "In what year was {co} founded?"],
            "city2": ["Where did {co} move its headquarters?", "Where did {co} move to in {year2}?",
                      "To which city did {co} move?"],
            "year2": ["When did {co} move to {city2}?", "In what year did {co} move its headquarters?"],
            "co2": ["Which company did {per} work for before founding {co}?", "Where did the founder of {co} work before?"],
        },
        "impossible": {"num": ["How many people does {co} employ?"], "money": ["How much did {co} cost to set up?"]},
    },
    {
        "kind": "deal",
        "text": ("In {month} {year}, {co} agreed to buy {co2}, a {industry} firm from {city}, for {money}. "
                 "The deal was led by {per}, the chief executive of {co}."),
        "questions": {
            "co": ["Which company agreed to buy {co2}?", "Who bought {co2}?", "Which firm is buying {co2}?"],
            "money": ["How much did {co} pay for {co2}?", "For how much money was {co2} sold?", "What was the price of {co2}?"],
            "city": ["Where is {co2} from?", "In which city is {co2} based?"],
            "per": ["Who led the deal for {co2}?", "Who is the chief executive of {co}?", "Who runs {co}?"],
            "date": ["When did {co} agree to buy {co2}?", "In which month did {co} agree to buy {co2}?"],
        },
        "impossible": {"per2": ["Who founded {co2}?"], "num": ["How many people work for {co2}?"]},
    },
    {
        "kind": "race",
        "text": ("{per} of {country} won the {year} {city} Marathon in {time}. "
                 "{per2} finished second, and about {num} runners took part."),
        "questions": {
            "per": ["Who won the {year} {city} Marathon?", "Which runner won the {city} Marathon in {year}?", "Who was the winner in {city} in {year}?"],
            "country": ["Which country does {per} come from?", "Where is the winner of the {year} {city} Marathon from?"],
            "time": ["How long did {per} take to win?", "What was the winning time in {city} in {year}?"],
            "per2": ["Who finished second in the {year} {city} Marathon?", "Who came second behind {per}?"],
            "num": ["How many runners took part in the {year} {city} Marathon?", "How many runners ran in {city} in {year}?"],
        },
        "impossible": {"money": ["How much prize money did {per} win?"], "co": ["Which company sponsored the {city} Marathon?"]},
    },
    {
        "kind": "bridge",
        "text": ("The {bridge} Bridge in {city} opened in {year}. It was designed by the engineer {per} "
                 "and built by {co} for {money}."),
        "questions": {
            "year": ["When did the {bridge} Bridge open?", "In what year did the {bridge} Bridge in {city} open?"],
            "per": ["Who designed the {bridge} Bridge?", "Which engineer designed the {bridge} Bridge in {city}?"],
            "co": ["Which company built the {bridge} Bridge?", "Who built the {bridge} Bridge in {city}?"],
            "money": ["How much did the {bridge} Bridge cost?", "What did it cost to build the {bridge} Bridge?"],
            "city": ["Where is the {bridge} Bridge?", "In which city is the {bridge} Bridge?"],
        },
        "impossible": {"num": ["How long is the {bridge} Bridge?"], "per2": ["Who opened the {bridge} Bridge?"]},
    },
    {
        "kind": "species",
        "text": ("In {year}, {per}, a biologist at the University of {city}, described a new {species} "
                 "found in the hills of {country}. The {species} was named after {per2}, a teacher of {per}."),
        "questions": {
            "per": ["Who described the new {species}?", "Which biologist described the {species} from {country}?"],
            "year": ["When was the new {species} described?", "In what year did {per} describe the {species}?"],
            "country": ["Where was the new {species} found?", "In which country was the {species} found?"],
            "per2": ["Who was the {species} named after?", "Who was the teacher of {per}?"],
            "city": ["Where does {per} work?", "At which city's university does {per} work?"],
        },
        "impossible": {"num": ["How many of the {species} were found?"], "co": ["Which company paid for the {species} study?"]},
    },
]
# Answer references besides the slot's own text, for the validation split: the word before the
# answer joined to it ("in 2009", "by Maria Okafor"), and for a person the surname.
AMOUNTS = ["12 million euros", "40 million euros", "95 million euros", "1.2 billion euros", "310 million euros",
           "7 million euros", "64 million euros", "18 million euros", "250 million euros", "2.5 billion euros"]
TIMES = ["2 hours 7 minutes", "2 hours 9 minutes", "2 hours 11 minutes", "2 hours 14 minutes",
         "2 hours 21 minutes", "2 hours 26 minutes", "2 hours 31 minutes", "2 hours 5 minutes"]
HEADCOUNTS = ["150", "300", "450", "800", "1,200", "2,500", "3,400", "6,000", "9,000", "12,000", "40,000"]

# Longer paragraphs (several facts each), so that a 128-token window splits their context.
LONG_PATTERN = (
    "{co} is a {nat} {industry} company. It was founded in {city} in {year} by {per}, a former {job}, "
    "who borrowed the money for the first workshop from relatives. For its first five years the company "
    "sold only in {country}, and most of its customers were small shops and schools. In {year2} it opened "
    "a second office in {city2}, and its best-known product, {product}, came out two years later. "
    "The company has changed its logo four times, and its staff still meet every spring for a long "
    "walk along the coast. Today {co} employs about {num} people, and since {year3} it has been led "
    "by {per2}, who joined it as an intern."
)
LONG_QUESTIONS = {
    "per": ["Who founded {co}?", "Which person founded {co}?"],
    "city": ["In which city was {co} founded?", "Where was {co} founded?"],
    "year": ["When was {co} founded?", "In what year was {co} founded?"],
    "city2": ["Where did {co} open its second office?", "In which city did {co} open a second office?"],
    "year2": ["When did {co} open its second office?", "In what year did {co} open a second office?"],
    "product": ["What is the best-known product of {co}?", "What is {co} best known for?"],
    "num": ["How many people does {co} employ?", "How many people work for {co}?"],
    "per2": ["Who has led {co} since {year3}?", "Who leads {co} today?"],
    "year3": ["Since when has {per2} led {co}?", "In what year did {per2} start to lead {co}?"],
    "country": ["In which country did {co} sell for its first five years?", "Where did {co} first sell?"],
}


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
# Slots: {PER} {ORG} {LOC} (a city) {COUNTRY} (LOC) {MISC} (an adjective of nationality), {SPORT} and
# {PRIZE} (MISC events and awards), {JOURNAL} (MISC); the others are plain words. Within a sentence
# no entity is drawn twice.
NER_PATTERNS = {
    "business": [
        "{PER} , chief executive of {ORG} , said on {DAY} the company would open an office in {LOC} .",
        "{ORG} shares rose {PCT} percent in {LOC} after the company reported higher sales .",
        "The {MISC} group {ORG} agreed to buy {ORG} for {MILLION} million euros .",
        "{ORG} will move its headquarters from {LOC} to {LOC} next year , a spokeswoman said .",
        "Analysts at {ORG} expect the {ORG} {ORG} merger to be approved by {MONTH} .",
        "{PER} , who founded {ORG} in {YEAR} , will step down as chairman in {MONTH} .",
        "The company plans a {LOC} {LOC} freight service and has hired {SMALL} {MISC} engineers .",
        "{ORG} said it had won a contract worth {MILLION} million euros from the city of {LOC} .",
        "Profits at {ORG} fell for the third year in a row , finance director {PER} told reporters in {LOC} .",
        "{PER} joined {ORG} from {ORG} in {MONTH} and now runs its office in {LOC} .",
        "Workers at the {ORG} plant near {LOC} went on strike on {DAY} .",
        "{MISC} regulators said they would look into the deal between {ORG} and {ORG} .",
    ],
    "sport": [
        "{PER} of {COUNTRY} won the {SPORT} on {DAY} , beating {PER} by two seconds .",
        "{ORG} beat {ORG} 2-1 in {LOC} on {DAY} .",
        "Striker {PER} , who joined from {ORG} in {MONTH} , scored both goals .",
        "{PER} , a {MISC} international , scored the winner five minutes from the end .",
        "{ORG} coach {PER} said the team had played well in the {SPORT} .",
        "The {MISC} runner {PER} finished third in {LOC} in {MINUTES} minutes .",
        "{COUNTRY} will host the {SPORT} for the first time in {YEAR} .",
        "{PER} and {PER} both qualified for the final of the {SPORT} in {LOC} .",
        "{ORG} signed the {MISC} defender {PER} on a three-year contract .",
        "About {FANS} fans watched {ORG} lose at home to {ORG} .",
    ],
    "science": [
        "{PER} , a biologist at the University of {LOC} , described a new {SPECIES} on {DAY} .",
        "The study , paid for by {ORG} , was published in the {MISC} journal {JOURNAL} .",
        "Researchers from {LOC} and {LOC} will share the data with {ORG} .",
        "{PER} said the {SPECIES} had been found in the hills north of {LOC} .",
        "The {MISC} team was led by {PER} and {PER} of the {LOC} Institute of Oceanography .",
        "{ORG} gave {SMALL} million euros to the museum in {LOC} in {YEAR} .",
        "The {PRIZE} went to {PER} , a {MISC} photographer who lives in {LOC} .",
        "{PER} will speak about the project at a meeting in {LOC} in {MONTH} .",
    ],
}
HEADLINES = {
    "business": ["BUSINESS - {ORG} TO OPEN OFFICE IN {LOC} .", "MARKETS - {ORG} SHARES RISE IN {LOC} ."],
    "sport": ["SOCCER - {ORG} BEAT {ORG} IN CUP FINAL .", "ATHLETICS - {PER} WINS IN {LOC} ."],
    "science": ["SCIENCE - NEW {SPECIES} FOUND NEAR {LOC} .", "CULTURE - {PER} WINS {PRIZE} ."],
}
SPORTS = ["World Cup", "Olympic Games", "Tour de France", "Champions League", "European Championship",
          "Atlantic Rowing Cup"]
PRIZES = ["Nordic Film Prize", "Golden Lens Award", "Tagus Book Prize"]
JOURNALS = ["Field Notes", "Coastal Review", "Northern Naturalist"]
WORDS = {"DAY": DAYS, "MONTH": MONTHS, "YEAR": [str(year) for year in range(1990, 2025)],
         "PCT": ["2", "3", "4", "6", "9"], "MILLION": ["12", "40", "95", "310", "650"], "SMALL": ["3", "4", "6", "12", "25"],
         "MINUTES": ["29", "31", "34", "47"], "FANS": ["8,000", "12,000", "18,000", "30,000"], "SPECIES": SPECIES}
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
