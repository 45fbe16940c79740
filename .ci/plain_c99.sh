#!/usr/bin/env bash
# The core as a compiler without GCC's extensions builds it (MSVC: Windows wheels).  With
# RNNX_PLAIN_C99 (csrc/compiler.h) GCC pretends to have no vector extensions and no pthreads,
# and refuses (#pragma GCC poison) every GNU name the fallback must do without: the kernels'
# vector type becomes one scalar and the thread pool runs every task on the caller
# (csrc/pool_serial.c).  This job
#   1. builds rnnx._core so in a scratch copy (-std=c99 -pedantic);
#   2. compiles every core source so, -std=c99 -pedantic -Werror -Wvla (MSVC has no VLAs);
#   3. builds and runs the C library and its C tests (ctest) so;
#   4. runs the kernel, core, ISA/thread, layer, projection and length-0 tests on the build
#      of 1, against the NumPy reference, PyTorch and finite differences: the scalar kernels
#      and the serial pool give what the others give.
# About 3 min on 2 cores, most of it the build.
#
#   bash .ci/plain_c99.sh                 # the default test subset
#   bash .ci/plain_c99.sh "$PWD/tests/test_x.py" -k y   # other pytest arguments instead
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
cc="${CC:-gcc}"
strict=(-std=c99 -pedantic -Werror -Wall -Wextra -Wvla -Wno-unused-function -DRNNX_PLAIN_C99)

source "$root/.ci/scratch_build.sh"
scratch_build plain_c99 "-pedantic -DRNNX_PLAIN_C99"

mkdir "$work/obj"
for source in "$src"/csrc/dispatch.c "$src"/csrc/pool.c "$src"/csrc/cell_table.c \
              "$src"/csrc/status.c "$src"/csrc/model/*.c "$src"/csrc/kernels_f*_*.c; do
    "$cc" "${strict[@]}" -O2 -I"$src/csrc" -c "$source" -o "$work/obj/$(basename "$source").o"
done
# no GNU vector code and no thread in what came out: no AVX kernels, no pthread symbols
if for object in "$work"/obj/*.o; do nm "$object"; done | grep -E "pthread_|_avx2|_avx512|dlopen"; then
    echo "plain_c99: the objects above still use pthreads, dlopen or an AVX build"; exit 1
fi
echo "plain_c99: every core source compiles as plain C99 (-pedantic -Werror, GNU names poisoned)"

if command -v cmake > /dev/null; then
    CC="$cc" cmake -S "$src" -B "$work/cmake" -DRNNX_WARNINGS_AS_ERRORS=ON \
        -DCMAKE_C_FLAGS="-DRNNX_PLAIN_C99" > /dev/null
    cmake --build "$work/cmake" -j "$(nproc)" > /dev/null
    (cd "$work/cmake" && ctest --output-on-failure > "$work/ctest.log") ||
        { cat "$work/ctest.log"; exit 1; }
    echo "plain_c99: the C library and its C tests pass"
elif [ -n "${CI:-}" ]; then
    echo "plain_c99: CI must have cmake (.ci/run installs it)"; exit 1
fi

export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
cd "$work"
scratch_check_import plain_c99
"$python" - <<'PY'
import rnnx
info = rnnx.info()
assert info["available_isas"] == ["generic"] and info["thread_pool"] == "serial", info
print("plain_c99: rnnx.info() says", {key: info[key] for key in ("isa", "thread_pool")})
PY

if [ "$#" -eq 0 ]; then
    set -- "$src"/tests/test_{kernels,core,isa_threads,layers,proj,zero_lengths}.py
fi
"$python" -m pytest -q -p no:cacheprovider -x -c "$src/pyproject.toml" --rootdir "$src" "$@"
echo "plain_c99: passed"
