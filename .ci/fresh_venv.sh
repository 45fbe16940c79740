#!/usr/bin/env bash
# The README's two commands, exactly as printed (read from README.md: the first ```bash block
# of "## Install and run" and of "## Test"), in a fresh virtual environment with no extras and
# no system site-packages, on a scratch copy of the sources as git sees them (a fresh clone,
# less the history).  Tests of optional integrations must skip there, naming their extra
# (tests/extras.py), and everything else must pass; CI is unset for this run, since CI=true
# turns those skips into failures.  Prints the test summary and the time of each command.
# Measured 4 to 14 min on the 2-core EPYC by the load of other jobs (load average 8 for
# the 14): the install and `python -m rnnx` 71-154 s, the test extra's install and the
# suite 174-648 s.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"

source "$root/.ci/scratch_build.sh"
scratch_copy fresh_venv

readme_command() {   # the first ```bash block under the heading $1 of README.md
    "$python" - "$root/README.md" "$1" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
start = lines.index(sys.argv[2])
begin = next(i for i in range(start, len(lines)) if lines[i].strip() == "```bash")
end = next(i for i in range(begin + 1, len(lines)) if lines[i].strip() == "```")
print("\n".join(lines[begin + 1:end]))
PY
}
install_command="$(readme_command "## Install and run")"
test_command="$(readme_command "## Test")"

"$python" -m venv "$work/venv"
cd "$src"
run() {   # run $1 in the fresh environment, without CI's setting; print its time
    local start=$SECONDS
    echo "fresh_venv: \$ $1"
    env -u CI -u PYTHONPATH VIRTUAL_ENV="$work/venv" PATH="$work/venv/bin:$PATH" \
        bash -euo pipefail -c "$1" 2>&1 | tee -a "$work/log" | tail -n "$2"
    echo "fresh_venv: $((SECONDS - start)) s"
}
run "$install_command" 5
run "$test_command" 40
summary="$(grep -E "^[0-9]+ (passed|failed)|^=+ .*(passed|failed).* =+$" "$work/log" | tail -1)"
echo "fresh_venv: $summary"
case "$summary" in
    *failed*|*error*|"") echo "fresh_venv: the README's commands fail on a fresh machine"; exit 1 ;;
esac
