"""Count what the property-based tests find: cases tried, crashes, wrong results, modified
inputs and unclear errors, over every fuzz test including the xfail ones (--runxfail).

    python tools/fuzz_survey.py [--profile ci] [pytest args...]
    python tools/fuzz_survey.py --summarize TALLY_FILE

The second form summarises a tally written by another run, e.g. under the sanitizers, where
misaligned loads and overflows abort the (forked) call and count as crashes:
    RNNX_FUZZ_TALLY=/tmp/tally bash .ci/sanitize.sh "$PWD"/tests/test_fuzz_*.py --runxfail

Runs tests/test_fuzz_*.py with RNNX_FUZZ_TALLY set (tests/fuzzing.py then records every case
and every failed check instead of raising it, so no case is hidden behind a first failure), and
prints the counts and the distinct findings, most frequent first.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", help="hypothesis profile (tests/conftest.py)")
    parser.add_argument("--summarize", metavar="TALLY_FILE", help="summarise an existing tally")
    args, rest = parser.parse_known_args()
    if args.summarize:
        summarize(open(args.summarize).read().splitlines())
        return
    with tempfile.TemporaryDirectory() as tmp:
        tally = os.path.join(tmp, "tally")
        env = dict(os.environ, RNNX_FUZZ_TALLY=tally, HYPOTHESIS_PROFILE=args.profile)
        tests = rest or [os.path.join(ROOT, "tests", "test_fuzz_core.py"),
                         os.path.join(ROOT, "tests", "test_fuzz_api.py"),
                         os.path.join(ROOT, "tests", "test_fuzz_edges.py")]
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--runxfail",
                        *tests], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        summarize(open(tally).read().splitlines() if os.path.exists(tally) else [])


def summarize(lines):
    kinds = collections.Counter(line.split(" ", 1)[0] for line in lines)
    print(f"cases tried: {kinds['case']}  crashes: {kinds['crash']}  wrong results: {kinds['wrong']}  "
          f"modified inputs: {kinds['modified']}  unclear errors: {kinds['unclear']}")
    # a finding is a failed check's message with its numbers, shapes and problem details removed
    findings = collections.Counter()
    for line in lines:
        kind, _, message = line.partition(" ")
        if kind == "case":
            continue
        key = re.sub(r"Problem\(.*?\)|\(.*?\)|\[.*?\]|\d+(\.\d+)?(e-?\d+)?", "#", message)
        findings[f"{kind}: {key[:160]}"] += 1
    for finding, count in findings.most_common():
        print(f"{count:6d}  {finding}")


if __name__ == "__main__":
    main()
