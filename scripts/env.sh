#!/usr/bin/env bash
# Creates (or reuses) .venv from requirements.lock. Sourced by the other scripts.
# Re-installs only when requirements.lock or pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOOLKIT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp="$VENV/.toolkit-installed"
want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $VENV from requirements.lock (first time: a few minutes) ..." >&2
  "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
    echo "error: Python 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 2; }
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check uv==0.13.9
  "$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" -r "$ROOT/requirements.lock"
  "$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" --no-deps -e "$ROOT"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export TOOLKIT_ROOT="$ROOT"
