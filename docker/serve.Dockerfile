# syntax=docker/dockerfile:1
# The serving image: api/ + model_store/ with the core and `serve` dependencies
# from constraints.txt, the same lock as the training image. No stream/ code and
# no trainer dependencies (confluent-kafka is here for the prediction-log producer
# only; the API never consumes): the build context leaves stream/ out
# (serve.Dockerfile.dockerignore), nothing below copies it, and the build fails
# if any of them is importable.
# Build from the repository root: docker build -f docker/serve.Dockerfile .

FROM python:3.11.14-slim-trixie AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY model_store/ model_store/
COPY api/ api/
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt '.[serve]' \
 && /opt/venv/bin/python -c "import importlib.util as u, sys; \
bad = [m for m in ('stream', 'tqdm', 'crc32c') if u.find_spec(m)]; \
sys.exit(f'the serving image must not contain {bad}' if bad else 0)"

FROM python:3.11.14-slim-trixie
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/streamlearn streamlearn
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The default models (configs/models relative to /app); compose mounts the host's over them.
COPY configs/models/ configs/models/
USER 10001:10001
EXPOSE 8000
CMD ["streamlearn", "serve", "--host", "0.0.0.0", "--port", "8000"]
