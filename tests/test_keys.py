"""No id can name another key: over generated ids, slugs, numbers and every key family of
``feed`` (its ``*_KEY`` constants, found in the code), no two distinct (family, values) pairs
make the same Redis key, and every key keeps its template's cluster hash tag."""

from __future__ import annotations

import ast
import hashlib
import importlib
import itertools
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import feed
from feed.storage.keys import CONVERSION, INTEGER, Slot, slots_of
from feed.storage.ratelimit import RateLimiter, Rule, counter_key

ROOT = Path(__file__).resolve().parent.parent
# Old layouts, read only to move them to the current one: names that collide by design.
MIGRATION = ROOT / "feed" / "model" / "migrate.py"


@dataclass(frozen=True)
class Family:
    name: str  # the constant that names it, e.g. feed.corpus.articles.CARD_KEY
    template: str
    slots: tuple[Slot, ...]

    @property
    def literals(self) -> list[str]:
        return CONVERSION.split(self.template)[::2]

    def key(self, values: tuple[str, ...]) -> str:
        kinds = CONVERSION.findall(self.template)
        return self.template % tuple(
            int(v) if kind == "d" else v for kind, v in zip(kinds, values, strict=True)
        )

    def parses(self, key: str) -> list[tuple[str, ...]]:
        """Every tuple of slot values that makes ``key`` from this template."""
        literals, found = self.literals, []

        def walk(slot: int, at: int, values: tuple[str, ...]) -> None:
            if slot == len(self.slots):
                if at == len(key):
                    found.append(values)
                return
            after = literals[slot + 1]
            end = key.find(after, at + 1) if after else len(key)
            while end != -1:
                if _compiled(self.slots[slot].pattern).fullmatch(key[at:end]):
                    walk(slot + 1, end + len(after), (*values, key[at:end]))
                end = key.find(after, end + 1) if after else -1

        if key.startswith(literals[0]):
            walk(0, len(literals[0]), ())
        return found

    def tag(self, values: tuple[str, ...]) -> str | None:
        """The hash tag the template puts around its slots (None: the whole key is hashed)."""
        start = self.template.find("{")
        end = self.template.find("}", start + 1)
        if start == -1 or end == -1 or end == start + 1:
            return None
        before = len(CONVERSION.findall(self.template[:start]))
        inside = CONVERSION.findall(self.template[start + 1 : end])
        part = Family("tag", self.template[start + 1 : end], self.slots[before:])
        return part.key(values[before : before + len(inside)])


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def hash_tag(key: str) -> str | None:
    """The part of a key Redis Cluster hashes, when it is not the whole key."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start == -1 or end == -1 or end == start + 1:
        return None
    return key[start + 1 : end]


def key_families() -> list[Family]:
    """Every ``*_KEY`` of every module under ``feed``: a family added later is covered."""
    found: dict[str, Family] = {}
    for info in pkgutil.walk_packages(feed.__path__, "feed."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.endswith("_KEY") and isinstance(value, str) and value not in found:
                found[value] = Family(f"{info.name}.{name}", value, slots_of(value))
    return sorted(found.values(), key=lambda f: f.name)


FAMILIES = key_families()


def collisions(families: list[Family], family: Family, values: tuple[str, ...]) -> list[str]:
    """Other (family, values) pairs that make the same key as ``family`` with ``values``."""
    key = family.key(values)
    return [
        f"{key!r} is {family.name}{values} and {other.name}{parsed}"
        for other in families
        for parsed in other.parses(key)
        if (other.name, parsed) != (family.name, values)
    ]


def _fragments() -> list[str]:
    """Words of the templates themselves, so ids like "x:body" or "lock" are tried often."""
    words = {w for f in FAMILIES for lit in f.literals for w in re.split(r"[:{}%]", lit) if w}
    return sorted(words | {"a", "x1", "0", "7", "12"})


@cache
def tricky_values(pattern: str) -> list[str]:
    fragments = _fragments()
    joined = (
        ":".join(parts)
        for size in (1, 2, 3)
        for parts in itertools.product(fragments[: 60 if size < 3 else 25], repeat=size)
    )
    return [v for v in joined if _compiled(pattern).fullmatch(v)]


def values_for(slot: Slot) -> st.SearchStrategy[str]:
    generated = st.from_regex(slot.pattern, fullmatch=True)
    tricky = tricky_values(slot.pattern)
    return st.one_of(generated, st.sampled_from(tricky)) if tricky else generated


@st.composite
def family_and_values(draw: st.DrawFn) -> tuple[Family, tuple[str, ...]]:
    family = draw(st.sampled_from(FAMILIES))
    return family, tuple(draw(values_for(slot)) for slot in family.slots)


def test_the_families_are_found_in_the_code():
    names = {f.name.rpartition(".")[2] for f in FAMILIES}
    assert {"CARD_KEY", "BODY_KEY", "RETIRED_KEY", "USER_KEY", "COUNTER_KEY"} <= names
    assert all(f.template.startswith("nf:") for f in FAMILIES)  # rq's keys start with rq:


@settings(max_examples=400, deadline=None)
@given(family_and_values())
def test_no_two_distinct_families_or_values_make_the_same_key(drawn):
    family, values = drawn
    assert collisions(FAMILIES, family, values) == []


@settings(max_examples=200, deadline=None)
@given(family_and_values())
def test_a_key_keeps_the_hash_tag_of_its_template(drawn):
    """Ids cannot open or close a tag, so a user's or the corpus's keys stay in one slot."""
    family, values = drawn
    assert hash_tag(family.key(values)) == family.tag(values)


def test_the_check_finds_the_collisions_of_the_old_layout():
    """The layout before this one: "x:body" named the body of "x", "lock" a retired feed."""
    card = Family("card", "nf:{corpus}:article:%s", slots_of("%s"))
    body = Family("body", "nf:{corpus}:article:%s:body", slots_of("%s"))
    lock = Family("lock", "nf:{u:%s}:feed:lock", slots_of("%s"))
    retired = Family("retired", "nf:{u:%s}:feed:%s", slots_of("%s%s"))
    assert collisions([card, body], body, ("x",)) == [
        "'nf:{corpus}:article:x:body' is body('x',) and card('x:body',)"
    ]
    assert collisions([lock, retired], lock, ("alice",)) != []
    assert collisions([card, body], card, ("x",)) == []


def test_every_key_name_in_the_code_is_a_key_constant():
    """A key spelled anywhere but in a module-level *_KEY would escape the tests above."""
    stray = []
    for folder in ("feed", "api", "cli", "recommender"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == MIGRATION:
                continue
            tree = ast.parse(path.read_text())
            declared = {
                id(node)
                for statement in tree.body
                if isinstance(statement, ast.Assign | ast.AnnAssign)
                and any(
                    isinstance(t, ast.Name) and t.id.endswith("_KEY")
                    for t in (
                        statement.targets
                        if isinstance(statement, ast.Assign)
                        else [statement.target]
                    )
                )
                for node in ast.walk(statement)
            }
            stray += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith("nf:")
                and id(node) not in declared
            ]
    assert stray == []


def test_integers_are_written_as_percent_d_writes_them():
    assert Family("n", "nf:n:{%d}", (INTEGER,)).parses("nf:n:{7}") == [("7",)]
    assert Family("n", "nf:n:{%d}", (INTEGER,)).parses("nf:n:{07}") == []


def test_a_limited_key_that_could_leave_its_hash_tag_is_counted_by_its_digest(redis_client):
    rule = Rule.parse("ip", "2/minute")[0]
    assert counter_key(rule, "2001:db8::1", 5) == "nf:ratelimit:{ip:2001:db8::1}:60s:5"
    hostile = "1.2.3.4}:60s:5"  # a forwarded address that a misconfigured proxy let through
    key = counter_key(rule, hostile, 5)
    assert hash_tag(key) == "ip:#" + hashlib.sha1(hostile.encode()).hexdigest()
    limiter = RateLimiter(redis_client, clock=lambda: 1_000_000.0)
    assert [limiter.check([(rule, hostile)]) is None for _ in range(3)] == [True, True, False]
    assert limiter.check([(rule, "1.2.3.4")]) is None  # its own counter
