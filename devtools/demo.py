"""A deterministic generator of a realistic demo news corpus, written from its own vocabulary."""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Formatter

__all__ = ["DEMO_CATEGORIES", "generate_articles", "write_jsonl"]


@dataclass(frozen=True)
class _Vocab:
    """One category's words. Actors are organisations ("it"); people carry their role."""

    name: str
    weight: float  # relative frequency of the category in a generated corpus
    actors: tuple[str, ...]
    people: tuple[str, ...]
    places: tuple[str, ...]
    topics: tuple[str, ...]  # noun phrases; plural ones must end in a plural word
    verbs: tuple[str, ...]  # base-form transitive verbs that fit most of the topics
    sources: tuple[str, ...]
    related: tuple[str, ...]  # slugs a second category is drawn from, most likely first


_VOCAB: dict[str, _Vocab] = {
    "middle-east": _Vocab(
        name="Middle East",
        weight=1.0,
        actors=(
            "the Arab League",
            "the Gulf Cooperation Council",
            "Saudi Arabia's foreign ministry",
            "Iran's foreign ministry",
            "the Iraqi government",
            "Jordan's royal court",
            "Lebanon's caretaker cabinet",
            "Egypt's foreign ministry",
            "Qatar's mediation office",
            "the Omani government",
        ),
        people=(
            "Foreign Minister Karim Haddad",
            "regional envoy Samir Khalil",
            "Ambassador Nadia Rahman",
            "Gulf analyst Omar Farouk",
            "Professor Yusuf Amari",
            "Deputy Foreign Minister Rania Aziz",
        ),
        places=(
            "Riyadh",
            "Tehran",
            "Baghdad",
            "Beirut",
            "Amman",
            "Cairo",
            "Doha",
            "Abu Dhabi",
            "Muscat",
            "the Gulf",
            "the Red Sea",
        ),
        topics=(
            "regional diplomacy",
            "Gulf security",
            "Red Sea shipping",
            "the Iran nuclear file",
            "normalisation talks",
            "Houthi attacks",
            "Iraqi elections",
            "Lebanon's economic crisis",
            "Hezbollah tensions",
            "Kurdish autonomy",
            "Gulf investment",
            "Suez Canal revenue",
            "militia activity",
            "drone strikes",
            "the Abraham Accords",
            "tanker seizures",
            "Yemen peace talks",
            "Egyptian mediation",
            "Iranian uranium enrichment",
            "the Saudi-Iranian detente",
            "Lebanese banking reforms",
            "Iraqi oil revenue",
            "maritime security",
            "the Strait of Hormuz",
            "pilgrimage season",
            "Gulf sovereign wealth funds",
            "Jordanian water scarcity",
            "Arab League summits",
            "the Iraqi Kurdistan budget",
            "Bahraini diplomacy",
            "Emirati port expansion",
            "regional arms sales",
            "Lebanese presidential talks",
            "Iranian proxy groups",
            "Yemeni humanitarian aid",
            "Egyptian debt talks",
            "the Hajj logistics",
            "Gulf desalination plants",
            "cross-border smuggling",
            "Bedouin communities",
        ),
        verbs=(
            "discuss",
            "raise concerns over",
            "call for talks on",
            "seek clarity on",
            "push back on",
            "mediate on",
        ),
        sources=("Levant Observer", "Gulf Dispatch"),
        related=("world", "syria", "israel-hamas-war"),
    ),
    "syria": _Vocab(
        name="Syria",
        weight=0.75,
        actors=(
            "the Syrian transitional government",
            "the Syrian Democratic Forces",
            "the UN refugee agency",
            "the Syrian Arab Red Crescent",
            "the interior ministry in Damascus",
            "the Kurdish-led administration",
            "the Syrian central bank",
            "Turkey's defence ministry",
            "the UN Syria envoy's office",
        ),
        people=(
            "UN envoy Lars Henningsen",
            "aid coordinator Rima Saleh",
            "Aleppo governor Fadi Nasser",
            "Syria researcher Hala Jaber",
            "Kurdish commander Aram Sheikho",
            "economist Bassel Tarabishi",
        ),
        places=(
            "Damascus",
            "Aleppo",
            "Idlib",
            "Homs",
            "Hama",
            "Raqqa",
            "Daraa",
            "Latakia",
            "Deir ez-Zor",
            "northeast Syria",
        ),
        topics=(
            "reconstruction funding",
            "refugee returns",
            "the transitional constitution",
            "Syrian sanctions relief",
            "displacement camps",
            "Aleppo's reconstruction",
            "the Idlib ceasefire",
            "detainee releases",
            "electricity shortages",
            "the Syrian pound",
            "wheat harvests",
            "chemical weapons inquiries",
            "property restitution",
            "war crimes investigations",
            "landmine clearance",
            "Kurdish integration",
            "Turkish border crossings",
            "humanitarian corridors",
            "water pumping stations",
            "earthquake recovery",
            "fuel shortages",
            "the captagon trade",
            "Islamic State detention camps",
            "the Al-Hol camp",
            "returnee housing",
            "Damascus airport flights",
            "Syrian diaspora investment",
            "local councils",
            "the national dialogue conference",
            "militia disarmament",
            "Latakia port operations",
            "bread subsidies",
            "Euphrates water levels",
            "mass grave exhumations",
            "Syrian civil registries",
            "the Assad-era prisons",
            "transitional justice",
            "Idlib olive harvests",
            "the Syrian army restructuring",
            "Alawite coastal villages",
        ),
        verbs=("oversee", "address", "rebuild", "investigate", "prioritise", "fund"),
        sources=("Levant Observer", "Syria Desk"),
        related=("middle-east",),
    ),
    "israel-hamas-war": _Vocab(
        name="Israel-Hamas War",
        weight=0.9,
        actors=(
            "the Israeli military",
            "Hamas",
            "the Israeli cabinet",
            "the Palestinian Authority",
            "UNRWA",
            "the World Food Programme",
            "Qatar's foreign ministry",
            "the International Committee of the Red Cross",
            "the UN humanitarian office",
            "Egypt's intelligence service",
        ),
        people=(
            "army spokesman Avi Levin",
            "negotiator Mahmoud Awad",
            "aid official Claire Dubois",
            "hostage families' spokeswoman Noa Kaplan",
            "Gaza health official Ahmed Salem",
            "UN coordinator Sigrid Holm",
        ),
        places=(
            "Gaza",
            "Gaza City",
            "Khan Younis",
            "Rafah",
            "Deir al-Balah",
            "northern Gaza",
            "Jerusalem",
            "Tel Aviv",
            "the West Bank",
            "Jenin",
        ),
        topics=(
            "the ceasefire deal",
            "hostage negotiations",
            "hostage releases",
            "aid convoys",
            "humanitarian access",
            "Rafah crossing operations",
            "civilian casualties",
            "Gaza displacement",
            "Gaza reconstruction plans",
            "the prisoner exchange",
            "airstrikes",
            "ground operations",
            "famine warnings",
            "medical evacuations",
            "Gaza hospital shortages",
            "truce talks",
            "the buffer zone",
            "post-war governance",
            "rocket fire",
            "settler violence",
            "West Bank raids",
            "the Knesset vote",
            "reservist call-ups",
            "the Philadelphi corridor",
            "tunnel networks",
            "aid airdrops",
            "fuel deliveries",
            "the phased truce",
            "ceasefire monitoring",
            "the hostage families' campaign",
            "Tel Aviv protests",
            "the Gaza aid pier",
            "evacuation orders",
            "the Netzarim corridor",
            "Palestinian prisoner releases",
            "the Kerem Shalom crossing",
            "the Gaza death toll",
            "Hamas leadership",
            "the Israeli war cabinet",
            "the UN Security Council resolution",
        ),
        verbs=("negotiate", "suspend", "resume", "expand", "scale back", "oversee"),
        sources=("Jerusalem Correspondent", "Gaza Ledger"),
        related=("middle-east", "world"),
    ),
    "business": _Vocab(
        name="Business",
        weight=1.3,
        actors=(
            "the European Central Bank",
            "the Federal Reserve",
            "the Bank of England",
            "the Bank of Japan",
            "the IMF",
            "OPEC+",
            "the World Trade Organization",
            "Hartwell Holdings",
            "Northbridge Capital",
            "Meridian Retail Group",
        ),
        people=(
            "chief executive Dana Whitfield",
            "economist Priya Nair",
            "Finance Minister Lena Hartmann",
            "fund manager Marcus Lowe",
            "strategist Tomas Berg",
            "central banker Ines Moreau",
        ),
        places=(
            "Europe",
            "Frankfurt",
            "London",
            "Hong Kong",
            "Tokyo",
            "Shanghai",
            "the eurozone",
            "Singapore",
            "New York",
            "Zurich",
        ),
        topics=(
            "interest rates",
            "inflation",
            "the bond market",
            "corporate earnings",
            "consumer spending",
            "mortgage rates",
            "the labour market",
            "wage growth",
            "oil prices",
            "the dollar",
            "stock buybacks",
            "quarterly profits",
            "supply chains",
            "tariffs",
            "retail sales",
            "bank lending",
            "merger activity",
            "private equity deals",
            "commercial property",
            "the housing market",
            "credit ratings",
            "government borrowing",
            "sovereign debt",
            "freight costs",
            "factory orders",
            "dividend payouts",
            "IPO filings",
            "small business confidence",
            "currency markets",
            "pension funds",
            "household savings",
            "trade deficits",
            "layoffs",
            "the jobs report",
            "commodity prices",
            "gold prices",
            "leveraged loans",
            "shareholder activism",
            "the yield curve",
            "bank capital rules",
        ),
        verbs=("hold", "cut", "raise", "review", "price in", "bet on"),
        sources=("Market Street Journal", "Ledger Business"),
        related=("tech", "world", "sports"),
    ),
    "tech": _Vocab(
        name="Tech",
        weight=1.3,
        actors=(
            "Nimbus Cloud",
            "Vantage AI",
            "Helix Semiconductors",
            "Orbitly",
            "Cobalt Mobile",
            "the Federal Trade Commission",
            "the European Commission's digital unit",
            "Kestrel Software",
            "Lumen Robotics",
        ),
        people=(
            "chief technology officer Maya Chen",
            "founder Arjun Mehta",
            "security researcher Elena Petrova",
            "developer advocate Sam Okafor",
            "chip analyst Kenji Watanabe",
            "product chief Olivia Brandt",
        ),
        places=(
            "Silicon Valley",
            "San Francisco",
            "Seattle",
            "Shenzhen",
            "Bangalore",
            "Austin",
            "Taiwan",
            "Seoul",
            "Tel Aviv's startup scene",
            "Dublin",
        ),
        topics=(
            "generative AI",
            "large language models",
            "chip exports",
            "semiconductor supply",
            "data privacy",
            "cloud computing",
            "cybersecurity",
            "ransomware attacks",
            "smartphone sales",
            "app store rules",
            "open-source software",
            "antitrust scrutiny of big tech",
            "quantum computing",
            "AI regulation",
            "content moderation",
            "end-to-end encryption",
            "data centres",
            "GPU shortages",
            "browser market share",
            "autonomous vehicles",
            "satellite internet",
            "5G networks",
            "developer tools",
            "subscription pricing",
            "social media algorithms",
            "facial recognition",
            "cloud outages",
            "chip fabrication plants",
            "digital identity",
            "online advertising",
            "AI chatbots",
            "passwordless logins",
            "microchip design",
            "wearable devices",
            "robotics",
            "bug bounty programmes",
            "source code leaks",
            "the AI compute race",
            "software supply chain security",
            "startup venture funding",
        ),
        verbs=("launch", "roll out", "patch", "license", "open-source", "ship"),
        sources=("ByteWire", "The Circuit"),
        related=("business", "science", "culture"),
    ),
    "science": _Vocab(
        name="Science",
        weight=0.9,
        actors=(
            "NASA",
            "the European Space Agency",
            "CERN",
            "the Royal Society",
            "the National Science Foundation",
            "the Max Planck Society",
            "the Japanese space agency",
            "the Smithsonian Institution",
        ),
        people=(
            "astrophysicist Ingrid Solberg",
            "geneticist Tomas Reyes",
            "physicist Hana Kobayashi",
            "marine biologist Aoife Byrne",
            "palaeontologist David Okoro",
            "neuroscientist Lucia Ferraro",
        ),
        places=(
            "Geneva",
            "Cambridge",
            "Pasadena",
            "Hawaii",
            "Antarctica",
            "Chile's Atacama Desert",
            "Heidelberg",
            "Boston",
            "Cape Canaveral",
            "French Guiana",
        ),
        topics=(
            "dark matter",
            "gene editing",
            "the James Webb telescope",
            "exoplanet atmospheres",
            "fusion energy",
            "particle physics",
            "CRISPR trials",
            "fossil discoveries",
            "the lunar mission",
            "Mars samples",
            "gravitational waves",
            "quantum entanglement",
            "protein folding",
            "neutrino detectors",
            "asteroid tracking",
            "deep-sea exploration",
            "stem cell research",
            "the human genome",
            "black holes",
            "solar flares",
            "peer review",
            "research funding",
            "ancient DNA",
            "dinosaur fossils",
            "superconductors",
            "the Higgs boson",
            "rocket launches",
            "space telescopes",
            "microbial life",
            "cosmic rays",
            "brain mapping",
            "materials science",
            "laboratory replication",
            "the International Space Station",
            "comet observations",
            "evolutionary biology",
            "archaeological digs",
            "the particle collider upgrade",
            "radio astronomy",
            "synthetic biology",
        ),
        verbs=("publish", "replicate", "measure", "map", "fund", "study"),
        sources=("Lab Notes", "The Observatory"),
        related=("climate", "health", "tech"),
    ),
    "sports": _Vocab(
        name="Sports",
        weight=1.2,
        actors=(
            "FIFA",
            "UEFA",
            "the International Olympic Committee",
            "the NBA",
            "the Premier League",
            "World Athletics",
            "the ATP",
            "Formula One",
            "the England and Wales Cricket Board",
        ),
        people=(
            "coach Marta Alvarez",
            "striker Luca Moretti",
            "captain Jonah Reed",
            "sprinter Amara Diallo",
            "tennis star Sofia Lind",
            "manager Rui Carvalho",
        ),
        places=(
            "Madrid",
            "Manchester",
            "Melbourne",
            "Wembley",
            "Milan",
            "Los Angeles",
            "Barcelona",
            "Munich",
            "Liverpool",
            "Buenos Aires",
        ),
        topics=(
            "the title race",
            "the transfer window",
            "the Champions League",
            "the World Cup qualifiers",
            "the playoff race",
            "injury concerns",
            "the relegation battle",
            "doping tests",
            "the Grand Slam season",
            "the Olympic trials",
            "match fixing inquiries",
            "broadcast rights",
            "the derby",
            "the semi-final",
            "penalty shootouts",
            "the coaching carousel",
            "the draft",
            "salary caps",
            "the marathon season",
            "world records",
            "the Formula One calendar",
            "the Ryder Cup",
            "home advantage",
            "VAR decisions",
            "the league table",
            "the cup final",
            "the quarter-finals",
            "squad rotation",
            "the captaincy",
            "the training camp",
            "stadium upgrades",
            "the rookie season",
            "the tennis rankings",
            "the cycling tour",
            "the rugby championship",
            "the cricket series",
            "the goalkeeping crisis",
            "the scoring streak",
            "the midfield rebuild",
            "the Golden Boot race",
        ),
        verbs=("clinch", "extend", "dominate", "chase", "secure", "overhaul"),
        sources=("The Touchline", "Matchday Report"),
        related=("business", "culture", "health"),
    ),
    "health": _Vocab(
        name="Health",
        weight=1.0,
        actors=(
            "the World Health Organization",
            "the CDC",
            "the NHS",
            "the FDA",
            "the European Medicines Agency",
            "the health ministry",
            "the Gavi vaccine alliance",
            "Médecins Sans Frontières",
        ),
        people=(
            "epidemiologist Rosa Jimenez",
            "Dr Kwame Asante",
            "nurse Hannah Cole",
            "public health chief Ian Murray",
            "cardiologist Mei Lin",
            "health economist Paul Adeyemi",
        ),
        places=(
            "London",
            "Nairobi",
            "Toronto",
            "Delhi",
            "Sydney",
            "Lagos",
            "Chicago",
            "Lisbon",
            "Birmingham",
            "Johannesburg",
        ),
        topics=(
            "vaccine uptake",
            "measles outbreaks",
            "hospital waiting lists",
            "mental health services",
            "antibiotic resistance",
            "obesity drugs",
            "cancer screening",
            "bird flu",
            "long Covid",
            "drug pricing",
            "nurse shortages",
            "maternal health",
            "dementia research",
            "childhood vaccination",
            "emergency room delays",
            "malaria treatment",
            "health insurance",
            "organ donation",
            "the opioid crisis",
            "heart disease",
            "diabetes care",
            "clinical trials",
            "primary care access",
            "prescription costs",
            "flu season",
            "tuberculosis cases",
            "nutrition guidelines",
            "sleep disorders",
            "telehealth",
            "blood supplies",
            "cholera outbreaks",
            "medical debt",
            "ambulance response times",
            "weight-loss injections",
            "hearing loss",
            "teenage anxiety",
            "cholesterol",
            "patient safety",
            "GP appointments",
            "hospital infections",
        ),
        verbs=("treat", "screen for", "vaccinate against", "tackle", "fund", "monitor"),
        sources=("The Clinic", "Health Bulletin"),
        related=("science",),
    ),
    "climate": _Vocab(
        name="Climate",
        weight=0.9,
        actors=(
            "the UN climate secretariat",
            "the IPCC",
            "the International Energy Agency",
            "the World Meteorological Organization",
            "the environment ministry",
            "Greenpeace",
            "the European Environment Agency",
            "the Green Climate Fund",
        ),
        people=(
            "climate scientist Freya Larsen",
            "Environment Minister Jorge Silva",
            "activist Tala Moana",
            "glaciologist Erik Nystrom",
            "energy analyst Ruth Ashby",
            "meteorologist Diego Paredes",
        ),
        places=(
            "the Arctic",
            "Greenland",
            "the Amazon",
            "the Sahel",
            "Bangladesh",
            "Switzerland",
            "California",
            "the Great Barrier Reef",
            "Indonesia",
            "Fiji",
        ),
        topics=(
            "carbon emissions",
            "heatwaves",
            "sea level rise",
            "wildfire season",
            "drought",
            "glacier melt",
            "renewable energy",
            "solar capacity",
            "wind farms",
            "carbon capture",
            "the coal phase-out",
            "climate finance",
            "deforestation",
            "methane leaks",
            "flood defences",
            "electric vehicles",
            "emissions targets",
            "net zero pledges",
            "coral bleaching",
            "extreme rainfall",
            "climate adaptation",
            "carbon markets",
            "heat pumps",
            "ocean warming",
            "Arctic sea ice",
            "the loss and damage fund",
            "climate litigation",
            "green hydrogen",
            "permafrost thaw",
            "record temperatures",
            "the COP summit",
            "biodiversity loss",
            "crop failures",
            "water rationing",
            "El Nino",
            "battery storage",
            "grid upgrades",
            "plastic pollution",
            "rewilding",
            "air quality",
        ),
        verbs=("curb", "cut", "phase out", "decarbonise", "adapt to", "monitor"),
        sources=("Climate Desk", "The Thermometer"),
        related=("science", "world", "business"),
    ),
    "culture": _Vocab(
        name="Culture",
        weight=1.0,
        actors=(
            "the Louvre",
            "the Booker Prize committee",
            "the Cannes Film Festival",
            "the Royal Opera House",
            "UNESCO",
            "Streamline Studios",
            "the National Gallery",
            "the Academy",
        ),
        people=(
            "director Ana Sousa",
            "novelist Theo Grant",
            "singer Lila Moreau",
            "curator Benedikt Hahn",
            "actor Ravi Menon",
            "critic Julia Hartley",
        ),
        places=(
            "Venice",
            "Berlin",
            "Edinburgh",
            "Cannes",
            "Hollywood",
            "London's West End",
            "Mexico City",
            "Kyoto",
            "Vienna",
            "Nashville",
        ),
        topics=(
            "the box office",
            "streaming royalties",
            "museum attendance",
            "the art market",
            "the literary prize",
            "film festival season",
            "the summer blockbuster",
            "concert tours",
            "ticket resale",
            "book bans",
            "arts funding",
            "the Oscars race",
            "indie cinema",
            "vinyl sales",
            "the Venice Biennale",
            "theatre revivals",
            "music streaming",
            "celebrity memoirs",
            "fashion week",
            "looted artefacts",
            "restitution claims",
            "poetry readings",
            "the opera season",
            "television reboots",
            "video game adaptations",
            "podcast charts",
            "the festival lineup",
            "dance companies",
            "heritage sites",
            "street art",
            "comic book sales",
            "translated fiction",
            "documentary films",
            "the album release",
            "gallery openings",
            "orchestra funding",
            "the animated feature",
            "public libraries",
            "reality television",
            "the Eurovision contest",
        ),
        verbs=("premiere", "showcase", "celebrate", "stage", "revive", "curate"),
        sources=("The Arts Review", "Encore"),
        related=("tech", "world", "business"),
    ),
    "world": _Vocab(
        name="World",
        weight=1.4,
        actors=(
            "the United Nations",
            "NATO",
            "the European Union",
            "the G7",
            "the African Union",
            "the UN Security Council",
            "the US State Department",
            "ASEAN",
            "the International Criminal Court",
        ),
        people=(
            "Prime Minister Elena Vasquez",
            "President Tomasz Nowak",
            "Foreign Secretary Alan Pierce",
            "UN official Grace Mwangi",
            "opposition leader Kenji Sato",
            "Defence Minister Ingrid Sorensen",
        ),
        places=(
            "Brussels",
            "Kyiv",
            "Washington",
            "Beijing",
            "New Delhi",
            "Brasilia",
            "Moscow",
            "Addis Ababa",
            "Caracas",
            "Manila",
            "Warsaw",
        ),
        topics=(
            "election results",
            "the peace summit",
            "border disputes",
            "refugee flows",
            "arms control",
            "coalition talks",
            "the war in Ukraine",
            "economic sanctions",
            "diplomatic relations",
            "a snap election",
            "constitutional reform",
            "military aid",
            "the Security Council vote",
            "migration policy",
            "mass protests",
            "a coup attempt",
            "humanitarian aid",
            "territorial disputes",
            "nuclear talks",
            "the opposition crackdown",
            "press freedom",
            "human rights abuses",
            "the prime minister's resignation",
            "parliamentary elections",
            "the South China Sea",
            "defence spending",
            "espionage charges",
            "prisoner swaps",
            "embassy closures",
            "the referendum",
            "election fraud claims",
            "peacekeeping missions",
            "visa restrictions",
            "diplomatic expulsions",
            "the NATO summit",
            "the migrant crisis",
            "martial law",
            "ceasefire violations",
            "the Black Sea grain corridor",
            "EU enlargement",
        ),
        verbs=("condemn", "sanction", "back", "oppose", "broker", "veto"),
        sources=("Global Desk", "The Foreign Wire"),
        related=("middle-east", "climate", "business"),
    ),
}

DEMO_CATEGORIES: dict[str, str] = {slug: vocab.name for slug, vocab in _VOCAB.items()}

# ---------------------------------------------------------------------------------------------
# The shared pool: generic news words every category's text is mixed with.

_SHARED_HEADLINE_VERBS = (
    "weigh",
    "review",
    "warn over",
    "signal shift on",
    "face questions over",
    "come under fire over",
    "split over",
    "unveil plans for",
    "step up scrutiny of",
    "take aim at",
)
_SHARED_ACTIONS = (
    "review",
    "tackle",
    "overhaul",
    "address",
    "rethink",
    "step up scrutiny of",
    "reassess",
    "act on",
)
# (base, past) for verbs that describe how a topic is moving; the present is conjugated.
_TRENDS = (
    ("rise", "rose"),
    ("fall", "fell"),
    ("ease", "eased"),
    ("cool", "cooled"),
    ("slow", "slowed"),
    ("surge", "surged"),
    ("stall", "stalled"),
    ("climb", "climbed"),
    ("deepen", "deepened"),
    ("worsen", "worsened"),
    ("improve", "improved"),
    ("rebound", "rebounded"),
    ("persist", "persisted"),
    ("shift", "shifted"),
    ("falter", "faltered"),
    ("grow", "grew"),
    ("slip", "slipped"),
    ("accelerate", "accelerated"),
    ("intensify", "intensified"),
)
_SHARED: dict[str, tuple[str, ...]] = {
    "generic": (
        "uncertainty",
        "debate",
        "negotiations",
        "speculation",
        "scrutiny",
        "criticism",
        "delays",
        "pressure",
        "setbacks",
        "protests",
        "warnings",
        "disagreement",
        "mixed signals",
        "political wrangling",
    ),
    "thing": (
        "report",
        "review",
        "proposal",
        "agreement",
        "announcement",
        "plan",
        "study",
        "deal",
        "investigation",
        "summit",
        "briefing",
        "survey",
    ),
    "state": (
        "under pressure",
        "at a turning point",
        "far from settled",
        "back on track",
        "a growing concern",
        "more fragile than it looks",
        "a test of credibility",
        "harder to predict",
    ),
    "judgement": (
        "a turning point",
        "long overdue",
        "deeply worrying",
        "a welcome surprise",
        "a wake-up call",
        "only the beginning",
    ),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "period": ("week", "month", "quarter", "year", "season"),
    "periods": ("weeks", "months", "quarters", "years"),
    "several": ("two", "three", "four", "six", "several"),
    "ordinal": ("second", "third", "fourth", "fifth"),
    "count": ("Three", "Four", "Five", "Six", "Seven"),
    "pct": tuple(str(n) for n in range(2, 46)),
    "year": tuple(str(n) for n in range(2008, 2024)),
}
_SHARED_SOURCES = ("Newsfeed Wire", "Evening Courier", "The Daily Ledger")

_HEADLINES = (
    "{actor_h} {verb} {topic} as {topic2~trend} in {place}",
    "{topic~trend} in {place} as {actor_h} weighs {topic2}",
    "{person} {verb} {topic} amid {generic} in {place}",
    "{actor_h} {verb} {topic} after {generic} over {topic2}",
    "What {topic~mean} for {place} as {topic2~trend}",
    "{topic~trend} for a {ordinal} straight {period} in {place}",
    "{actor_h} warns {topic} could {trend} as {topic2~trend}",
    "Inside the race to {act} {topic} in {place}",
    "{place} braces for {topic} as {actor_h} {verb} {topic2}",
    "{person} says {topic~be} {state} despite {generic}",
    "{count} things to know about {topic} in {place}",
    "{actor_h} and {actor_h2} clash over {topic}",
    "{topic~trend} as {actor_h} moves to {act} {topic2}",
    "{person} calls for new {thing} on {topic}",
)
_SENTENCES = (
    "{actor} said on {weekday} it would {act} {topic} in {place}, a step analysts had "
    "expected after {several} {periods} of {generic} over {topic2}.",
    "{person} told reporters in {place} that {topic~be} now the most pressing issue, adding "
    "that {topic2} would be reviewed by the end of the {period}.",
    "Officials in {place} said {topic~trended} over the past {period}, while {actor} "
    "cautioned that {topic2} remained a concern.",
    "The decision follows {several} {periods} of {generic} over {topic}, with {actor} under "
    "growing pressure to {act} {topic2}.",
    "Analysts expect {topic} to {trend} further in the coming {periods}, although much "
    "depends on how {actor} handles {topic2}.",
    "According to figures released on {weekday}, {topic~trended} by {pct} percent in "
    "{place}, the sharpest change since {year}.",
    "{person}, who has followed {topic} for years, said the latest {thing} showed how "
    "quickly conditions in {place} could change.",
    "Critics argue that {topic~have} been neglected, and several groups in {place} have "
    "called on {actor} to act before {topic2~trend} further.",
    "The {thing} is expected to be discussed at a meeting in {place} next {period}, where "
    "{actor} will set out its plans for {topic}.",
    "People in {place} said {topic} had already changed daily life, and many are now "
    "worried about {topic2} as well.",
    "{person} said the {thing} would {act} {topic} without adding to {topic2}, but gave "
    "no timetable for the next steps.",
    "Details of the {thing} remain unclear, and {actor} declined to comment on {topic2} "
    "when contacted on {weekday}.",
    "It is the {ordinal} such {thing} this year, and it underscores how {topic~have} "
    "become central to the debate in {place}.",
    "Observers noted that {topic} and {topic2} are increasingly linked, a trend {person} "
    "described as {judgement}.",
    '"We are watching {topic} very closely, and we will act if needed," {person} said in '
    "{place} on {weekday}.",
    '"Nobody expected {topic} to {trend} this quickly," said {person}, who warned that '
    "{topic2} could be next.",
    "A new {thing} published by {actor} found that {topic~trended} in each of the last "
    "{several} {periods}, with {place} among the most affected.",
    "Despite the {generic}, {actor} insisted that {topic~be} {state} and that its approach "
    "to {topic2} would not change.",
)

# ---------------------------------------------------------------------------------------------
# Templates compiled once into (literal, slot, suffix) parts, so filling them is cheap.

_Part = tuple[str, str, str, str]  # literal, pool name, full slot name ("topic2"), suffix
_Template = tuple[tuple[_Part, ...], str]  # parts, trailing literal


def _compile(template: str) -> _Template:
    parts: list[_Part] = []
    tail = ""
    for literal, field, _spec, _conv in Formatter().parse(template):
        if field is None:
            tail = literal
            continue
        slot, _, suffix = field.partition("~")
        pool = slot.rstrip("0123456789")
        parts.append((literal, pool, slot, suffix))
    return tuple(parts), tail


_NON_PLURAL_ENDINGS = ("ss", "us", "is", "ics", "'s")


def _is_plural(phrase: str) -> bool:
    last = phrase.rsplit(" ", 1)[-1].lower()
    return last.endswith("s") and not last.endswith(_NON_PLURAL_ENDINGS)


def _third_person(verb: str) -> str:
    """'push back on' -> 'pushes back on': conjugate the first word of a base-form phrase."""
    head, sep, rest = verb.partition(" ")
    if head == "be":
        head = "is"
    elif head == "have":
        head = "has"
    elif head.endswith(("s", "sh", "ch", "x", "z", "o")):
        head += "es"
    elif head.endswith("y") and head[-2:-1] not in "aeiou":
        head = head[:-1] + "ies"
    else:
        head += "s"
    return head + sep + rest


class _Lexicon:
    """One category's pools, merged with the shared pool and pre-conjugated."""

    def __init__(self, vocab: _Vocab) -> None:
        verbs = vocab.verbs + _SHARED_HEADLINE_VERBS
        self.pools: dict[str, tuple[str, ...]] = dict(_SHARED)
        self.pools.update(
            actor=vocab.actors,
            actor_h=tuple(a[4:] if a.startswith("the ") else a for a in vocab.actors),
            person=vocab.people,
            place=vocab.places,
            topic=vocab.topics,
            verb=tuple(_third_person(v) for v in verbs),
            act=vocab.verbs + _SHARED_ACTIONS,
            trend=tuple(base for base, _past in _TRENDS),
            trended=tuple(past for _base, past in _TRENDS),
        )
        self.plural = {t: _is_plural(t) for t in vocab.topics}
        self.sources = vocab.sources + _SHARED_SOURCES
        self.name = vocab.name


_AGREE: dict[str, tuple[str, str]] = {  # suffix -> (singular, plural) form of a fixed verb
    "be": ("is", "are"),
    "have": ("has", "have"),
    "mean": ("means", "mean"),
}
_TREND_FORMS = tuple((_third_person(base), base, past) for base, past in _TRENDS)


def _fill(
    template: _Template, lex: _Lexicon, rng: random.Random, focus: Mapping[str, str] | None = None
) -> str:
    parts, tail = template
    chosen: dict[str, str] = {}
    out: list[str] = []
    choice = rng.choice
    pools = lex.pools
    for literal, pool, slot, suffix in parts:
        values = pools[pool]
        if focus and slot in focus and rng.random() < _FOCUS_SHARE:
            value = focus[slot]
        else:
            value = choice(values)
        if slot != pool:  # "topic2" must differ from "topic" when both appear
            while value == chosen.get(pool):
                value = choice(values)
        chosen[slot] = value
        if suffix:
            plural = lex.plural.get(value, False)
            if suffix == "trend":
                form = choice(_TREND_FORMS)
                value = f"{value} {form[1] if plural else form[0]}"
            elif suffix == "trended":
                value = f"{value} {choice(_TREND_FORMS)[2]}"
            else:
                value = f"{value} {_AGREE[suffix][plural]}"
        out.append(literal)
        out.append(value)
    out.append(tail)
    text = "".join(out)
    return text[0].upper() + text[1:]


_COMPILED_HEADLINES = tuple(_compile(t) for t in _HEADLINES)
_COMPILED_SENTENCES = tuple(_compile(t) for t in _SENTENCES)
_LEXICONS = {slug: _Lexicon(vocab) for slug, vocab in _VOCAB.items()}

_TITLE_WORDS = (6, 12)
_SUMMARY_WORDS = (20, 40)
_BODY_WORDS = (80, 200)
_BODY_SENTENCES = (3, 6)
_SECOND_CATEGORY_SHARE = 0.15
_SECONDARY_SENTENCE_SHARE = 0.3  # body sentences of a two-category article from the second
_MAX_ATTEMPTS = 200
# An article is one story: its topic, actor, place and person fill most of their slots in
# the title, summary and body, as a real report keeps to its subject. Without this every
# slot was drawn afresh and a "topic" was a single phrase, which no reader could follow.
_FOCUS_POOLS = ("topic", "actor", "place", "person")
_FOCUS_SHARE = 0.7

_ID_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG_CHARS = 60
URL_BASE = "https://news.example.com"


def _title(lex: _Lexicon, rng: random.Random, focus: Mapping[str, str]) -> str:
    low, high = _TITLE_WORDS
    for _ in range(_MAX_ATTEMPTS):
        title = _fill(rng.choice(_COMPILED_HEADLINES), lex, rng, focus)
        if low <= title.count(" ") + 1 <= high:
            return title
    raise RuntimeError("demo vocabulary cannot make a title of the required length")


def _summary(lex: _Lexicon, rng: random.Random, focus: Mapping[str, str]) -> str:
    low, high = _SUMMARY_WORDS
    for _ in range(_MAX_ATTEMPTS):
        first, second = rng.sample(_COMPILED_SENTENCES, 2)
        text = _fill(first, lex, rng, focus)
        if len(text.split()) < low:
            text = f"{text} {_fill(second, lex, rng, focus)}"
        if low <= len(text.split()) <= high:
            return text
    raise RuntimeError("demo vocabulary cannot make a summary of the required length")


def _body(
    lex: _Lexicon, second: _Lexicon | None, rng: random.Random, focus: Mapping[str, str]
) -> str:
    low, high = _BODY_WORDS
    fewest, most = _BODY_SENTENCES
    for _ in range(_MAX_ATTEMPTS):
        target = rng.randint(low + 5, high - 10)
        sentences: list[str] = []
        words = 0
        for template in rng.sample(_COMPILED_SENTENCES, most):
            if second and rng.random() < _SECONDARY_SENTENCE_SHARE:
                sentence = _fill(template, second, rng)
            else:
                sentence = _fill(template, lex, rng, focus)
            sentences.append(sentence)
            words += len(sentence.split())
            if len(sentences) >= fewest and words >= target:
                break
        if low <= words <= high and fewest <= len(sentences) <= most:
            return " ".join(sentences)
    raise RuntimeError("demo vocabulary cannot make a body of the required length")


def _slugify(text: str) -> str:
    slug = _NOT_SLUG.sub("-", text.lower().replace("'", "")).strip("-")
    if len(slug) > _SLUG_CHARS:
        slug = slug[:_SLUG_CHARS].rsplit("-", 1)[0]
    return slug


def _check_categories(categories: Sequence[str] | None) -> list[str]:
    if categories is None:
        return list(_VOCAB)
    if isinstance(categories, str):
        raise TypeError("categories must be a sequence of slugs, not a single string")
    wanted = list(dict.fromkeys(categories))
    if not wanted:
        raise ValueError("categories must name at least one category")
    unknown = [slug for slug in wanted if slug not in _VOCAB]
    if unknown:
        raise ValueError(f"unknown demo categories {unknown}; known: {sorted(_VOCAB)}")
    return wanted


def generate_articles(
    count: int,
    *,
    seed: int = 7,
    now: datetime | None = None,
    categories: Sequence[str] | None = None,
    max_age_days: float = 14.0,
    id_prefix: str = "demo",
) -> list[dict[str, object]]:
    """Articles in the API wire format; the same arguments always give the same articles.

    Ids are ``f"{id_prefix}-{n:06d}"`` for n = 1..count, in order of publication (oldest
    first), and ``published_at`` lies within ``[now - max_age_days, now]`` to the second. A
    naive ``now`` is taken as UTC. About 15% of articles carry a second, related category
    (when it is among ``categories``), listed after the primary one.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if not max_age_days >= 0 or math.isinf(max_age_days):
        raise ValueError("max_age_days must be a finite number >= 0")
    if not _ID_PREFIX.fullmatch(id_prefix) or len(id_prefix) > 100:
        raise ValueError(
            "id_prefix must be 1-100 characters from A-Z a-z 0-9 . _ : @ -, "
            "starting with a letter or digit"
        )
    slugs = _check_categories(categories)
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    rng = random.Random(seed)
    newest = math.floor(now.timestamp())
    oldest = min(math.ceil(now.timestamp() - max_age_days * 86400), newest)
    moments = sorted(rng.randint(oldest, newest) for _ in range(count))

    allowed = set(slugs)
    related = {s: [r for r in _VOCAB[s].related if r in allowed] for s in slugs}
    weights = [_VOCAB[s].weight for s in slugs]
    primaries = rng.choices(slugs, weights=weights, k=count)

    articles: list[dict[str, object]] = []
    for n, (moment, primary) in enumerate(zip(moments, primaries, strict=True), start=1):
        lex = _LEXICONS[primary]
        cats = [primary]
        second: _Lexicon | None = None
        if related[primary] and rng.random() < _SECOND_CATEGORY_SHARE:
            # The first related slug is the most natural pairing, so it is drawn most often.
            options = related[primary]
            pick = options[0] if rng.random() < 0.6 else rng.choice(options)
            cats.append(pick)
            second = _LEXICONS[pick]
        focus = {pool: rng.choice(lex.pools[pool]) for pool in _FOCUS_POOLS}
        title = _title(lex, rng, focus)
        articles.append(
            {
                "id": f"{id_prefix}-{n:06d}",
                "url": f"{URL_BASE}/{primary}/{_slugify(title)}-{n}",
                "title": title,
                "summary": _summary(lex, rng, focus),
                "body": _body(lex, second, rng, focus),
                "categories": cats,
                "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)),
                "source": rng.choice(lex.sources),
            }
        )
    return articles


def write_jsonl(path: str | os.PathLike[str], articles: Iterable[Mapping[str, object]]) -> int:
    """Write one JSON object per line (UTF-8) and answer how many were written."""
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for article in articles:
            out.write(json.dumps(article, ensure_ascii=False))
            out.write("\n")
            written += 1
    return written
