# The desk in a container. `docker compose up -d` (compose.yaml) runs it behind Caddy, on
# PostgreSQL and Redis; alone, on SQLite in a volume:
#   docker build -t complaint-desk .
#   docker run -d --env-file .env -v desk-data:/data -p 127.0.0.1:8080:8080 complaint-desk
# 3.11: the Python the tests run on
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# the desk runs as its own user, never as root; /data is the one place it writes (SQLite, when
# no PostgreSQL is given)
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/desk \
        --shell /usr/sbin/nologin desk \
    && mkdir /data && chown desk:desk /data

# the project and its dependencies (no dev extras); the files stay root's, read-only to the desk.
# `python -m bot` runs from this directory: the templates live beside the packages, in templates/
WORKDIR /app
COPY . .
RUN pip install . && rm -rf build *.egg-info

USER desk

# in a container the instance listens on every address (the proxy and the health check reach it)
ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATABASE_URL=sqlite+aiosqlite:////data/desk.db
EXPOSE 8080

# /healthz answers 200 while the database (and Redis) answer, 503 otherwise and while stopping;
# slim has no curl, so Python's own urllib asks (an HTTP error status raises: exit 1)
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('HTTP_PORT', '8080')}/healthz\", timeout=4)"]

# on SIGTERM an instance stops taking requests, finishes what it holds and exits within 10 s
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
