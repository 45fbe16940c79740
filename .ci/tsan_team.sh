#!/usr/bin/env bash
# The thread team (csrc/runtime/) under ThreadSanitizer: tests/c/test_team.c built with
# -fsanitize=thread against the runtime's sources alone (the Python extension is not: an
# uninstrumented CPython and NumPy would drown the report in false positives), run with
# teams of 2, 3 and 5 threads and concurrent callers. Any report fails the job.
#
#   bash .ci/tsan_team.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cc="${CC:-gcc}"
work="$(mktemp -d "${TMPDIR:-/tmp}/rnnx-tsan.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$cc" -std=c99 -O1 -g -fsanitize=thread -Wall -Wextra -Wno-unused-function -I"$root/csrc" \
    "$root/tests/c/test_team.c" "$root"/csrc/runtime/{team,trial,blas}.c \
    -o "$work/test_team" -pthread -ldl
TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$work/test_team"
echo "tsan_team: no ThreadSanitizer report"
