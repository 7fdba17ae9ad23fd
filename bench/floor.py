"""The bench's "floor": the least a Flask endpoint on our gunicorn settings can do per request.

``GET /floor`` answers one Redis GET of a stored body (the bench stores a real feed page
there), so the cached feed's throughput can be compared with the cost of Flask, gunicorn and
one Redis round trip alone. Served as ``gunicorn --config python:config.gunicorn
bench.floor:app``; reads ``NEWSFEED_REDIS_URL`` like the service does.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, Response

FLOOR_KEY = "bench:floor:body"

app = Flask(__name__)
_redis = redis.Redis.from_url(os.environ["NEWSFEED_REDIS_URL"])


@app.get("/floor")
def floor() -> Response:
    return Response(_redis.get(FLOOR_KEY), mimetype="application/json")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
