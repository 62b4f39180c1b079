# One image for the six Baton services and the `baton` CLI. compose.yaml runs
# it once per service, choosing the service with `command:` (baton-negotiator,
# baton-pricing, baton-chain, baton-inference, baton-transcode, baton-monitor).
#
#   docker build -t baton:latest .     (or: docker compose build)

# ---- build: install the packages into a virtual environment ----
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/baton
ENV PATH=/opt/baton/bin:$PATH

WORKDIR /src
# The pinned versions first, then only the package folders (.dockerignore
# drops tests, caches and egg-info). setuptools builds non-editable wheels,
# so the sources do not stay in the image.
COPY constraints.txt ./
COPY libs/common libs/common
COPY services services
COPY cli cli
RUN pip install -c constraints.txt \
        ./libs/common \
        ./services/negotiator \
        ./services/pricing \
        ./services/chain \
        ./services/inference \
        ./services/transcode \
        ./services/monitor \
        ./cli

# ---- runtime ----
FROM python:3.11-slim-bookworm

# ffmpeg for the transcode service. Debian's build loads NVENC/NVDEC from the
# driver libraries the NVIDIA container toolkit mounts (capability "video").
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 baton \
    && useradd --system --uid 10001 --gid baton --home-dir /home/baton --create-home \
        --shell /usr/sbin/nologin baton

COPY --from=build /opt/baton /opt/baton
ENV PATH=/opt/baton/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /home/baton

# compose.yaml overrides this with the service to run.
CMD ["baton", "--help"]
