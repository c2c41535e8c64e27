# The lienthong application image: one image for the worker, the gateway, the
# exporter and the one-shot migration job (docker-compose.yml picks the command).
# Only what runs: no test tools, no Temporal dev server, no compilers, no secrets.
# Configuration comes from the environment only (.env.example lists every variable).

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY definitions ./definitions
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY monitoring ./monitoring
COPY store ./store
COPY gateway ./gateway
COPY services ./services
COPY bench ./bench
# A virtual environment copied whole into the runtime stage; `pip install .`
# (not -e) so the image needs no source tree, and no extras: no dev server, no tests.
RUN python -m venv /opt/lienthong \
 && /opt/lienthong/bin/pip install --no-compile . \
 && /opt/lienthong/bin/python -m compileall -q /opt/lienthong/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="lienthong" \
      org.opencontainers.image.description="Routes administrative-procedure dossiers between agencies under legal deadlines, on Temporal"
ENV PATH=/opt/lienthong/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIENTHONG_LOG_JSON=true
# What WeasyPrint prints the forms with (services/documents): Pango, HarfBuzz's subsetter,
# and Debian's DejaVu fonts, which have every Vietnamese letter. No browser. Graphviz
# draws `lienthong definitions graph --format svg` for operators running the image's CLI.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    graphviz \
 && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged uid so mounted volumes and Kubernetes securityContext agree.
RUN groupadd --system --gid 10001 lienthong \
 && useradd --system --uid 10001 --gid lienthong --home-dir /home/lienthong --create-home lienthong
COPY --from=build /opt/lienthong /opt/lienthong
# The procedure definitions shipped with this version; an operator mounts their own
# folder here (docker-compose.yml does) and points LIENTHONG_DEFINITIONS at it.
COPY --chown=root:root definitions /srv/lienthong/definitions
ENV LIENTHONG_DEFINITIONS=/srv/lienthong/definitions
USER lienthong:lienthong
WORKDIR /home/lienthong
# Gateway 8080, exporter 9464, worker event counters 9465, worker SDK metrics 9466.
EXPOSE 8080 9464 9465 9466
ENTRYPOINT ["lienthong"]
CMD ["--help"]
