#!/usr/bin/env bash
# Creates the two virtual environments the python-socketio drivers run in: .venv5
# (requirements-5.txt) and .venv4 (requirements-4.txt), beside this script. Idempotent: a venv
# whose stamp matches its requirements file and the interpreter is left alone, so a second run
# takes well under a second. PYTHON_BIN picks the interpreter (default: python3 on PATH).
set -euo pipefail
cd "$(dirname "$0")"

python="${PYTHON_BIN:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup.sh: $python not found: the python-socketio tests need Python 3 with its venv" \
    "module (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
# Debian ships venv's pip bootstrap (ensurepip) apart from python3, in python3-venv.
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "setup.sh: $python has no working venv module (ensurepip is missing)" \
    "(Debian: apt-get install python3-venv)" >&2
  exit 1
fi

interpreter="$("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
for major in 5 4; do
  venv=".venv$major"
  requirements="requirements-$major.txt"
  stamp="$venv/herald-requirements.stamp"
  want="$(sha256sum "$requirements" | cut -d' ' -f1) $interpreter"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    continue
  fi
  echo "setup.sh: creating $venv from $requirements with $interpreter" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements"; then
    rm -rf "$venv"
    echo "setup.sh: pip install -r $requirements failed" >&2
    exit 1
  fi
  # Written last: an interrupted install leaves no stamp and is redone next time.
  echo "$want" >"$stamp"
done
