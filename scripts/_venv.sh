# Sourced by scripts/demo and scripts/test: make .venv in the repo root and install into it the
# exact versions pinned, with hashes, in requirements.lock, then the project itself (editable,
# no dependencies of its own choosing). Reinstalls whenever requirements.lock or pyproject.toml
# changes. The lock is compiled for one target (its "# target:" line); on any other Python or
# platform the project is installed from pyproject.toml's ranges instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCK="$ROOT/requirements.lock"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "nstpipe: creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
TARGET="$("$VENV/bin/python" -c 'import platform, sys; print("cp%d%d-%s-%s" % (sys.version_info[0], sys.version_info[1], platform.system().lower(), platform.machine().lower()))')"
LOCKED_FOR="$(sed -n 's/^# target: //p' "$LOCK")"
if [ "$TARGET" = "$LOCKED_FOR" ]; then MODE=locked; else MODE=ranges; fi
# The stamp holds what the install was made from: the mode and the two files' contents (hashed),
# so that a changed lock (a git pull, a branch switch, scripts/lock) triggers a reinstall.
WANT="$("$VENV/bin/python" - "$MODE" "$LOCK" "$ROOT/pyproject.toml" <<'EOF'
import hashlib, sys
h = hashlib.sha256(sys.argv[1].encode())
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        h.update(hashlib.sha256(f.read()).digest())
print(h.hexdigest())
EOF
)"
STAMP="$VENV/.nstpipe-installed"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    LOG="$VENV/install.log"
    PIP=("$VENV/bin/python" -m pip)
    if [ "$MODE" = locked ]; then
        echo "nstpipe: installing the locked dependencies (requirements.lock) and the project into $VENV (first run: a few minutes)" >&2
        # --no-build-isolation: the project is built with the locked setuptools already in .venv.
        do_install() {
            "${PIP[@]}" install --require-hashes -r "$LOCK" &&
                "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
        }
    else
        echo "nstpipe: requirements.lock is for $LOCKED_FOR and this Python is $TARGET;" \
            "installing from pyproject.toml's ranges into $VENV instead (first run: a few minutes)" >&2
        do_install() {
            "${PIP[@]}" install --upgrade pip && "${PIP[@]}" install -e "$ROOT[test]"
        }
    fi
    rm -f "$STAMP"
    if ! do_install >"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        echo "nstpipe: installation failed; the whole log is $LOG" >&2
        exit 1
    fi
    echo "$WANT" >"$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
