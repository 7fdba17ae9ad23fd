"""The Blueprint every resource uses: flask-smorest's, with a parser that is lean on query
strings and strict on JSON bodies."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, NoReturn

import flask
import flask_smorest
import marshmallow as ma
from webargs import core
from webargs.flaskparser import FlaskParser, abort

MULTI_VALUE_FIELDS = (ma.fields.List, ma.fields.Tuple)
# A \uD800-\uDFFF escape in the body: only then are its strings walked for a lone surrogate.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Python refuses to read longer integers (CVE-2020-10735); no field of ours takes one anyway.
MAX_INT_DIGITS = sys.get_int_max_str_digits()


class RefusedJson(Exception):
    """Parsed, but not a body we take: the message says why (it is safe to show the client)."""


class RequestParser(FlaskParser):
    """Query strings into a plain dict when no field takes repeated values; JSON bodies that
    Python parses but nothing can store refused as invalid JSON (400), not a 500 later.

    webargs wraps the query in a proxy that asks the schema, key by key, whether a value may
    repeat; on the feed's hot path that proxy cost several times the validation itself.
    """

    def load_querystring(self, req: flask.Request, schema: ma.Schema) -> Any:
        if any(isinstance(f, MULTI_VALUE_FIELDS) for f in schema.fields.values()):
            return super().load_querystring(req, schema)
        return req.args.to_dict()

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not core.is_json(req.mimetype):
            return core.missing
        raw = req.get_data(cache=True)
        try:
            loaded = parse_json(raw)
        except RefusedJson as refused:
            _invalid(str(refused))
        if SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(loaded):
            _invalid("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff): not Unicode text")
        return loaded


def parse_json(raw: bytes) -> Any:
    """RFC 8259 JSON, stricter than Python's reader where leniency would be ambiguous.

    Refused (RefusedJson): NaN and Infinity (not JSON), a key twice in one object (parsers
    disagree on which one wins, so a proxy that checked the first would be fooled by us
    reading the last), integers Python will not read, and nesting deeper than its parser
    recurses. Malformed JSON raises json.JSONDecodeError, as webargs expects.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A non-empty doc: webargs takes an empty one for "no body".
        raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", "<bytes>", 0) from None
    try:
        return json.loads(text, parse_constant=_not_json, object_pairs_hook=_unique_keys)
    except RecursionError:  # Python's parser gives up around a thousand levels
        raise RefusedJson("the JSON body is nested too deeply") from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # the only other one json.loads raises: an integer too long to read
        raise RefusedJson(f"a number has more than {MAX_INT_DIGITS} digits") from None


def _not_json(constant: str) -> NoReturn:
    raise RefusedJson(f"{constant} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RefusedJson(f"the key {key[:100]!r} appears twice in one object")
            seen.add(key)
    return obj


def _invalid(message: str) -> NoReturn:
    abort(400, messages={"json": [message]})
    raise AssertionError("abort raises")  # for the type checker


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string in the parsed body (keys included) holds a lone surrogate: valid
    JSON, but no UTF-8 to store it as."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = RequestParser()

    def add_url_rule(self, rule: str, *args: Any, **options: Any) -> None:
        # A `//` in a path is a 404 in the error shape: werkzeug would merge the slashes and
        # answer a redirect with an HTML page, which flask hands out past every error handler.
        options.setdefault("merge_slashes", False)
        super().add_url_rule(rule, *args, **options)
