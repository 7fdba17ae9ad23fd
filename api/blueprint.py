"""The Blueprint every resource uses: flask-smorest's, with a leaner query-string parser."""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

MULTI_VALUE_FIELDS = (ma.fields.List, ma.fields.Tuple)


class QueryParser(FlaskParser):
    """Parse query strings into a plain dict when no field takes repeated values.

    webargs wraps the query in a proxy that asks the schema, key by key, whether a value may
    repeat; on the feed's hot path that proxy cost several times the validation itself.
    """

    def load_querystring(self, req: flask.Request, schema: ma.Schema) -> Any:
        if any(isinstance(f, MULTI_VALUE_FIELDS) for f in schema.fields.values()):
            return super().load_querystring(req, schema)
        return req.args.to_dict()


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = QueryParser()
