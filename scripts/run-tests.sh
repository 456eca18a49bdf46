#!/usr/bin/env bash
# Runs the whole pytest suite; pytest's exit 5 ("no tests collected") counts as failure here,
# because a suite that ran nothing has proven nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen
.venv/bin/python -m pytest -ra -p no:cacheprovider --durations=20 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run-tests: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
