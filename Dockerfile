# The image every task of a pipeline compiled by `toolkit export --target kfp` runs in.
#
#   docker build -t toolkit:latest .            (toolkit:latest is the export's default --image)
#
# It installs exactly requirements.lock (the versions the tests run), then the toolkit
# itself without dependencies, so nothing outside the lock enters. It holds nothing of a
# project: a compiled pipeline carries its notebook and module files, so this one image
# serves every export (a project's own packages: `toolkit export --requirements`).
FROM python:3.11-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app

COPY requirements.lock ./
RUN python -m pip install --no-cache-dir uv==0.13.9 \
 && python -m uv pip install --system --no-cache -r requirements.lock

COPY pyproject.toml README.md ./
COPY toolkit ./toolkit
RUN python -m uv pip install --system --no-cache --no-deps . \
 && python -c "import toolkit, kfp, papermill, ipykernel"

