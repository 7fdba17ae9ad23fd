"""The Blueprint every resource uses: flask-smorest's, with a parser that is lean on query
strings and strict on JSON bodies."""

from __future__ import annotations

import re
from typing import Any, NoReturn

import flask
import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser, abort

MULTI_VALUE_FIELDS = (ma.fields.List, ma.fields.Tuple)
# A \uD800-\uDFFF escape in the body: only then are its strings walked for a lone surrogate.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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
        try:
            loaded = super()._raw_load_json(req)
        except RecursionError:  # Python's parser gives up around a thousand levels
            _invalid("the JSON body is nested too deeply")
        if SURROGATE_ESCAPE.search(req.get_data(cache=True)) and _has_lone_surrogate(loaded):
            _invalid("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff): not Unicode text")
        return loaded


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
