# One image for every discarr process: `docker run IMAGE poller|tracker|bot|doctor|...`
# (compose.yaml runs one container per process, compose.demo.yaml the demo with simarr). The
# entrypoint is the `discarr` command.
#
#   docker build -t discarr .
#   docker build --build-arg BASE_IMAGE=python:3.12-slim -t discarr .
#
# BASE_IMAGE: any Debian-based Python >= 3.10 image (python:3.1x-slim); pip installs from PyPI.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid, so a bind-mounted /data can be chown'ed to it on the host (chown 10001 ./data).
RUN groupadd --system --gid 10001 discarr \
 && useradd --system --uid 10001 --gid discarr --home-dir /data --no-create-home --shell /usr/sbin/nologin discarr

# Only what the package needs: tests, data and a local .venv stay out of the image.
COPY pyproject.toml README.md /src/
COPY common /src/common
COPY services /src/services
RUN pip install /src && rm -rf /src \
 && mkdir -p /data /run/discarr && chown discarr:discarr /data /run/discarr

# Where every process keeps its files: one volume (compose shares it between the processes).
ENV TRACKER_STATE_FILE=/data/tracker-state.msgpack \
    AUDIT_LOG=/data/removals.jsonl \
    BOT_STATE_FILE=/data/bot-state.json \
    STATS_DB=/data/discarr.sqlite3
VOLUME /data
WORKDIR /data
USER discarr

# No HEALTHCHECK: the one image runs three different processes (and one-off commands such as
# `doctor`), so no single probe fits them all; `docker compose run --rm poller doctor` checks the
# whole installation (from the poller's container, which can reach *arrs on the Docker host), and
# every process exits non-zero when it cannot go on, so its restart policy restarts it.
ENTRYPOINT ["discarr"]
CMD ["--help"]
