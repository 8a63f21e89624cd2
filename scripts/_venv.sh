# Sourced by scripts/demo and scripts/test: make .venv in the repo root and install the
# project (with test extras) into it, once; reinstall only when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "nstpipe: creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.nstpipe-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    echo "nstpipe: installing the project and its dependencies into $VENV (first run: a few minutes)" >&2
    LOG="$VENV/install.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -e "$ROOT[test]"; } >"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        echo "nstpipe: installation failed; the whole log is $LOG" >&2
        exit 1
    fi
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
