#!/usr/bin/env bash
# The sanitizer job: build rnnx._core with AddressSanitizer and UndefinedBehaviorSanitizer in a
# scratch copy of the sources (the normal build of the checkout is left alone), then run the
# core, layer, kernel, fuzz, thread and quantized (int8/bfloat16 kernels, models, streams)
# tests against that build. Any sanitizer report aborts
# the Python process, so pytest's exit status is non-zero and CI fails; the log is also
# searched for reports, in case one was printed by a process that still exited 0.
#
#   bash .ci/sanitize.sh                 # the default test subset
#   bash .ci/sanitize.sh "$PWD/tests/test_x.py" -k y   # other pytest arguments instead
#
# Budget: measured 5 min on a loaded 2-core machine, 3 of them the build (HYPOTHESIS_PROFILE=ci,
# 250 examples per property). Left out: the tests that import PyTorch or ONNX Runtime (not
# built with ASan; loading them under an LD_PRELOADed libasan is slow and not what this job
# checks), the RSS leak test (ASan's shadow memory and quarantine make RSS meaningless), and
# tests marked xfail (known, unfixed findings: tests/conftest.py skips them when
# RNNX_SANITIZE=1, so they run here as soon as their mark is removed; none are marked now).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"

source "$root/.ci/scratch_build.sh"
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"
scratch_build sanitize "$flags" "-fsanitize=address,undefined"

libasan="$(gcc -print-file-name=libasan.so)"
libubsan="$(gcc -print-file-name=libubsan.so)"
for lib in "$libasan" "$libubsan"; do
    [ -f "$lib" ] || { echo "sanitize: gcc has no $(basename "$lib") (install libasan/libubsan for gcc)"; exit 1; }
done
export LD_PRELOAD="$libasan $libubsan"
# ASan's reports also go to files ($work/report.<pid>); UBSan's go to stderr only (with
# -fsanitize=address,undefined, gcc 12's UBSan drops a report given a log_path), so pytest
# runs with --capture=sys: what C code writes to file descriptor 2 reaches the log, not a
# capture file that an aborting process takes with it. allocator_may_return_null: a huge
# allocation gives a MemoryError, as without ASan, instead of an abort.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:print_summary=1:allocator_may_return_null=1:log_path=$work/report"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"   # the sanitized rnnx before any installed one
export RNNX_SANITIZE=1   # tests/conftest.py: skip the known findings still marked xfail
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"

cd "$work"   # no rnnx folder here: `python -m` puts the working folder first on sys.path
scratch_check_import sanitize

if [ "$#" -eq 0 ]; then
    set -- "$src"/tests/test_{core,layers,kernels,gemm,fuzz_core,fuzz_api,threads_leaks,wavefront}.py \
        "$src"/tests/test_{zero_lengths,go_backwards,workspace,proj,projection_plan}.py \
        "$src"/tests/test_{quantize_kernels,quantize,quantized_stream}.py \
        -k "not torch and not onnx and not leak"
fi
set +e
"$python" -m pytest -q -p no:cacheprovider -x --capture=sys -c "$src/pyproject.toml" --rootdir "$src" "$@" \
    2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e
reports=("$work"/report.*)
if [ -e "${reports[0]}" ]; then
    cat "${reports[@]}"
    echo "sanitize: ${#reports[@]} sanitizer report(s), printed above"
    exit 1
fi
if grep -qE "ERROR: AddressSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer" "$work/test.log"; then
    echo "sanitize: a sanitizer report is in the log above"
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "sanitize: pytest failed under the sanitizers (status $status)"
    exit "$status"
fi
echo "sanitize: clean"
