# One image for every overdue process: `overdue worker` (the default), `overdue api`,
# `overdue codec-server` and the one-shot `overdue migrate`. docker-compose.yml runs each from it.
# The base is pinned to a patch release so that a rebuild gets the interpreter it was tested with.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/overdue
# Only what the package is built from: a change to tests or docs does not rebuild this layer.
COPY pyproject.toml README.md ./
COPY overdue ./overdue
COPY workflows ./workflows
COPY activities ./activities
RUN /opt/overdue/bin/pip install .

FROM python:3.11.13-slim-bookworm
# A fixed uid, so that volumes (rendered notices) keep one owner across rebuilds and hosts.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/overdue overdue \
    && mkdir /var/lib/overdue/notices \
    && chown overdue:overdue /var/lib/overdue/notices
COPY --from=build /opt/overdue /opt/overdue
# OVERDUE_HOME holds the rendered notices; the metrics endpoint must listen beyond the loopback
# for a scraper in another container to reach it.
ENV PATH=/opt/overdue/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OVERDUE_HOME=/var/lib/overdue \
    OVERDUE_METRICS_ADDRESS=0.0.0.0:9464
USER overdue
WORKDIR /var/lib/overdue
# 8000: `overdue api`; 8081: `overdue codec-server`; 9464: the worker's Prometheus metrics.
EXPOSE 8000 8081 9464
ENTRYPOINT ["overdue"]
CMD ["worker"]
