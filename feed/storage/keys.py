"""What may fill each slot of a Redis key template, so no two keys of different things coincide.

Every module owns its key families as ``*_KEY`` constants (docs/design.md: Redis keys). A
plain string's ``%s`` holds an id of feed.ids' shape, the accepted shape of every identifier
that ends up inside a key, and its ``%d`` a non-negative integer. A template whose slots hold
anything else says so by being a ``KeyTemplate``. tests/test_keys.py collects every ``*_KEY``
of ``feed`` and proves, over generated slot values, that no two distinct (family, values)
pairs make the same key, and that each key keeps its template's hash tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from feed.ids import ID_PATTERN, SLUG_PATTERN

CONVERSION = re.compile(r"%([sd])")


@dataclass(frozen=True)
class Slot:
    """One kind of value a key template is filled with."""

    what: str
    pattern: str  # every value the slot can hold, as a regex without anchors


def _unanchored(pattern: str) -> str:
    return pattern.removeprefix("^").removesuffix("$")


ID = Slot("id", _unanchored(ID_PATTERN))
SLUG = Slot("slug", _unanchored(SLUG_PATTERN))
# As "%d" writes a non-negative int: no sign, no leading zeros.
INTEGER = Slot("integer", r"0|[1-9][0-9]*")


class KeyTemplate(str):
    """A key template (a ``str``, filled with ``%``) that names what fills each of its slots."""

    slots: tuple[Slot, ...]

    def __new__(cls, template: str, *slots: Slot) -> KeyTemplate:
        conversions = CONVERSION.findall(template)
        if len(conversions) != len(slots):
            raise ValueError(f"{template!r} has {len(conversions)} slots, {len(slots)} named")
        made = super().__new__(cls, template)
        made.slots = slots
        return made


def slots_of(template: str) -> tuple[Slot, ...]:
    """The slots of any key template: those it names, else ids for %s and integers for %d."""
    if isinstance(template, KeyTemplate):
        return template.slots
    return tuple(ID if kind == "s" else INTEGER for kind in CONVERSION.findall(template))
