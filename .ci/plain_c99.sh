#!/usr/bin/env bash
# The core as a compiler without GCC's extensions builds it (MSVC: Windows wheels).  With
# RNNX_PLAIN_C99 (csrc/compiler.h) GCC pretends to have no vector extensions and no pthreads,
# and refuses (#pragma GCC poison) every GNU name the fallback must do without: the kernels'
# vector type becomes one scalar and the thread pool runs every task on the caller
# (csrc/runtime/serial.c).  This job
#   1. builds rnnx._core so in a scratch copy (-std=c99 -pedantic);
#   2. compiles every core source so, -std=c99 -pedantic -Werror -Wvla (MSVC has no VLAs);
#   3. builds and runs the C library and its C tests (ctest) so;
#   4. runs the kernel, core, ISA/thread, layer, projection and length-0 tests on the build
#      of 1, against the NumPy reference, PyTorch and finite differences: the scalar kernels
#      and the serial pool give what the others give; and the quantized ones: the int8/
#      bfloat16 kernels against their NumPy twin (test_quantize_kernels.py), and the C
#      library's quantized models and streams, built so too (CFLAGS), against the Python
#      ones of 1 (test_quant_c.py).
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
for source in "$src"/csrc/dispatch.c "$src"/csrc/runtime/team.c "$src"/csrc/runtime/trial.c \
              "$src"/csrc/runtime/blas.c "$src"/csrc/driver/wavefront.c "$src"/csrc/cell_table.c \
              "$src"/csrc/status.c "$src"/csrc/projection_plan.c "$src"/csrc/model/*.c \
              "$src"/csrc/stream/*.c "$src"/csrc/quant/*.c; do
    # named by folder too: csrc/model/stream.c and csrc/stream/stream.c are two files
    "$cc" "${strict[@]}" -O2 -I"$src/csrc" -c "$source" \
        -o "$work/obj/$(basename "$(dirname "$source")")_$(basename "$source").o"
done
# the kernels once per dtype and instruction set of csrc/kernels/isa_list.h, as setup.py's units
isas=$(sed -n 's/^[[:space:]]*X(\([a-z0-9_]*\),.*/\1/p' "$src/csrc/kernels/isa_list.h")
for isa in $isas; do
    for dtype in f32 f64; do
        flags=(-DRNNX_ISA_SFX=_"$isa" -DRNNX_VEC_HEADER="\"kernels/vec_$isa.h\"")
        [ "$dtype" = f64 ] && flags+=(-DRNNX_DOUBLE)
        "$cc" "${strict[@]}" "${flags[@]}" -O2 -I"$src/csrc" -c "$src/csrc/kernels_body.c" \
            -o "$work/obj/kernels_${dtype}_$isa.o"
    done
done
# no GNU vector code and no thread in what came out: no pthread symbols, and no vector
# registers wider than SSE2's (only the portable kernels were built, on scalars)
if for object in "$work"/obj/*.o; do nm "$object"; done | grep -E "pthread_|dlopen"; then
    echo "plain_c99: the objects above still use pthreads or dlopen"; exit 1
fi
if for object in "$work"/obj/kernels_*.o; do objdump -d "$object"; done | grep -m 5 -E "%[yz]mm"; then
    echo "plain_c99: the kernels above still use AVX registers (an AVX build)"; exit 1
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
    set -- "$src"/tests/test_{kernels,gemm,core,isa_threads,layers,proj,projection_plan,zero_lengths}.py \
        "$src"/tests/test_{quantize_kernels,quant_c}.py
fi
# CFLAGS: the C library that tests build with CMake (test_quant_c.py's) is plain C99 too
CFLAGS="-DRNNX_PLAIN_C99${CFLAGS:+ $CFLAGS}" "$python" -m pytest -q -p no:cacheprovider -x -c "$src/pyproject.toml" --rootdir "$src" "$@"
echo "plain_c99: passed"
