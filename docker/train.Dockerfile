# syntax=docker/dockerfile:1
# The training image: stream/ + model_store/ with the core and `train`
# dependencies from constraints.txt, the same lock as the serving image (so both
# sides run the same Python and River). No api/ code and no FastAPI/uvicorn: the
# build context leaves api/ out (train.Dockerfile.dockerignore), nothing below
# copies it, and the build fails if either is importable.
# Build from the repository root: docker build -f docker/train.Dockerfile .

FROM python:3.11.14-slim-trixie AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY model_store/ model_store/
COPY stream/ stream/
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt '.[train]' \
 && /opt/venv/bin/python -c "import importlib.util as u, sys; \
bad = [m for m in ('api', 'fastapi', 'uvicorn', 'starlette') if u.find_spec(m)]; \
sys.exit(f'the training image must not contain {bad}' if bad else 0)"

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
# Every configured model; the heartbeat file feeds the container healthcheck.
CMD ["streamlearn", "train", "--all", "--heartbeat", "/home/streamlearn/trainer.alive"]
