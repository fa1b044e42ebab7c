"""The made-up world of the tiny sample, as data tables; ``make_sample.py`` fills its patterns.

    FIRST_NAMES, SURNAMES, COMPANY_WORDS      fictional people and companies (a company: word + industry word)
    INDUSTRIES, PLACES                        (industry, product, name word); (city, country, nationality)
    JOBS, MONTHS, DAYS, BRIDGES, SPECIES      plain words that fill slots
    QA_PATTERNS                               QA paragraphs with {slots}, the questions each slot answers,
                                              and questions the paragraph cannot answer (SQuAD v2)
    AMOUNTS, TIMES, HEADCOUNTS                the values of the money, time and num slots
    LONG_PATTERN, LONG_QUESTIONS              a longer paragraph that two QA windows of the tiny preset split
    NER_PATTERNS, HEADLINES                   CoNLL-style sentences per topic, with {SLOTS} for entities
    SPORTS, PRIZES, JOURNALS, WORDS           what fills the MISC slots and the plain-word slots

Every name, fact and sentence pattern here was made up for the workbook; the cities and countries
are real places, used as settings. Only tables, no code: change one and ``make_sample.py`` writes
different files.
"""

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
