"""The demo corpus's words, read from demo_vocabulary.json, and the templates they fill."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from string import Formatter
from typing import Any

VOCABULARY_FILE = "demo_vocabulary.json"  # beside this module; shipped as package data

# The file holds, per category slug: name, weight (relative frequency in a corpus), actors
# (organisations, "it"), people (with their role), places, topics (noun phrases; plural ones
# end in a plural word), verbs (base-form, transitive), sources and related (slugs a second
# category is drawn from, most likely first). Shared by every category: headline_verbs and
# actions (base form), trends ([base, past]; the present is conjugated here), pools (generic
# news words by slot name), sources, and the headline and sentence templates. A template slot
# is "{pool}", "{pool2}" (a second, different value) or "{pool~suffix}" (a value followed by
# the verb form that agrees with it: be, have, mean, trend or trended).
CATEGORY_POOLS = ("actor", "actor_h", "person", "place", "topic", "verb", "act", "trend", "trended")

_NON_PLURAL_ENDINGS = ("ss", "us", "is", "ics", "'s")
_AGREE: dict[str, tuple[str, str]] = {  # suffix -> (singular, plural) form of a fixed verb
    "be": ("is", "are"),
    "have": ("has", "have"),
    "mean": ("means", "mean"),
}
_TREND_SUFFIXES = ("trend", "trended")

# An article is one story: its topic, actor, place and person fill most of their slots in
# the title, summary and body, as a real report keeps to its subject. Without this every
# slot was drawn afresh and a "topic" was a single phrase, which no reader could follow.
FOCUS_POOLS = ("topic", "actor", "place", "person")
FOCUS_SHARE = 0.7

Part = tuple[str, str, str, str]  # literal, pool name, full slot name ("topic2"), suffix
Template = tuple[tuple[Part, ...], str]  # parts, trailing literal
TrendForm = tuple[str, str, str]  # third person, base, past


@dataclass(frozen=True)
class Lexicon:
    """One category's pools, merged with the shared ones and pre-conjugated."""

    name: str
    weight: float
    related: tuple[str, ...]
    pools: Mapping[str, tuple[str, ...]]
    plural: Mapping[str, bool]  # topic -> whether it takes a plural verb
    sources: tuple[str, ...]
    trend_forms: tuple[TrendForm, ...]


@dataclass(frozen=True)
class DemoVocabulary:
    """Every category's lexicon, in file order, and the compiled templates."""

    lexicons: Mapping[str, Lexicon]
    headlines: tuple[Template, ...]
    sentences: tuple[Template, ...]


def is_plural(phrase: str) -> bool:
    """Whether a noun phrase takes a plural verb, judged by its last word."""
    last = phrase.rsplit(" ", 1)[-1].lower()
    return last.endswith("s") and not last.endswith(_NON_PLURAL_ENDINGS)


def third_person(verb: str) -> str:
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


def compile_template(template: str, pools: set[str]) -> Template:
    """Split a template once into (literal, slot, suffix) parts, so filling it is cheap."""
    parts: list[Part] = []
    tail = ""
    for literal, field, _spec, _conv in Formatter().parse(template):
        if field is None:
            tail = literal
            continue
        slot, _, suffix = field.partition("~")
        pool = slot.rstrip("0123456789")
        # The file is edited by hand: a typo should fail here, not mid-corpus.
        if pool not in pools or (suffix and suffix not in _AGREE and suffix not in _TREND_SUFFIXES):
            raise ValueError(f"{VOCABULARY_FILE}: unknown slot {{{field}}} in {template!r}")
        parts.append((literal, pool, slot, suffix))
    return tuple(parts), tail


def _lexicon(entry: Mapping[str, Any], shared: Mapping[str, Any]) -> Lexicon:
    actors, verbs, topics = tuple(entry["actors"]), tuple(entry["verbs"]), tuple(entry["topics"])
    trends = [tuple(pair) for pair in shared["trends"]]
    pools = {name: tuple(words) for name, words in shared["pools"].items()}
    pools.update(
        actor=actors,
        actor_h=tuple(a[4:] if a.startswith("the ") else a for a in actors),
        person=tuple(entry["people"]),
        place=tuple(entry["places"]),
        topic=topics,
        verb=tuple(third_person(v) for v in verbs + tuple(shared["headline_verbs"])),
        act=verbs + tuple(shared["actions"]),
        trend=tuple(base for base, _past in trends),
        trended=tuple(past for _base, past in trends),
    )
    return Lexicon(
        name=entry["name"],
        weight=entry["weight"],
        related=tuple(entry["related"]),
        pools=pools,
        plural={t: is_plural(t) for t in topics},
        sources=tuple(entry["sources"]) + tuple(shared["sources"]),
        trend_forms=tuple((third_person(base), base, past) for base, past in trends),
    )


def load_vocabulary(text: str | None = None) -> DemoVocabulary:
    """The vocabulary in ``text`` (JSON), by default the file shipped beside this module."""
    if text is None:
        text = resources.files("devtools").joinpath(VOCABULARY_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    lexicons = {slug: _lexicon(entry, data) for slug, entry in data["categories"].items()}
    for slug, lex in lexicons.items():
        unknown = [r for r in lex.related if r not in lexicons]
        if unknown:
            raise ValueError(f"{VOCABULARY_FILE}: {slug} is related to unknown {unknown}")
    pools = set(data["pools"]) | set(CATEGORY_POOLS)
    return DemoVocabulary(
        lexicons=lexicons,
        headlines=tuple(compile_template(t, pools) for t in data["headlines"]),
        sentences=tuple(compile_template(t, pools) for t in data["sentences"]),
    )


def fill(
    template: Template, lex: Lexicon, rng: random.Random, focus: Mapping[str, str] | None = None
) -> str:
    """The template with every slot drawn from ``lex`` (mostly ``focus``'s value, if it has one)."""
    parts, tail = template
    chosen: dict[str, str] = {}
    out: list[str] = []
    choice = rng.choice
    pools = lex.pools
    for literal, pool, slot, suffix in parts:
        values = pools[pool]
        if focus and slot in focus and rng.random() < FOCUS_SHARE:
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
                form = choice(lex.trend_forms)
                value = f"{value} {form[1] if plural else form[0]}"
            elif suffix == "trended":
                value = f"{value} {choice(lex.trend_forms)[2]}"
            else:
                value = f"{value} {_AGREE[suffix][plural]}"
        out.append(literal)
        out.append(value)
    out.append(tail)
    text = "".join(out)
    return text[0].upper() + text[1:]
