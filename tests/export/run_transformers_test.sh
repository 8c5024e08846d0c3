#!/usr/bin/env bash
# The CTest entry of the transformers round trip (tests/export/check_transformers.py): picks
# the Python that has torch and transformers, or skips (exit 77) saying why.
#   usage: run_transformers_test.sh QTRAIN QT_EXPORT_REF
# Python, in order: $QT_PYTHON; the repository's .venv/ (made by scripts/install_deps.sh);
# python3 on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${QT_PYTHON:-}"
if [ -z "$py" ] && [ -x "$root/.venv/bin/python3" ]; then py="$root/.venv/bin/python3"; fi
if [ -z "$py" ]; then py="$(command -v python3 || true)"; fi
if [ -z "$py" ]; then
  echo "SKIP: no python3 (bash scripts/install_deps.sh installs python3, torch and transformers)"
  exit 77
fi
exec "$py" "$here/check_transformers.py" --qtrain "$1" --ref "$2" --source "$root"
