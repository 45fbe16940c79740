#!/usr/bin/env bash
# The AVX-512 kernels' tile shapes on any x86-64 machine.  The AVX-512 build works on one
# 64-byte vector per panel row: 8-row tiles (MR = 8) and row calls of up to 8 blocks, shapes
# that the AVX2 (MR = 4) and SSE2 (MR = 2) builds never take, so a CI machine without
# AVX-512 would not run them.  This job builds the core in a scratch copy with the portable
# kernels on 64-byte GCC vectors (-DRNNX_GENERIC_VBYTES=64, lowered by the compiler to the
# baseline ISA: slower, the same arithmetic) and runs the kernel, core, ISA/thread, layer,
# checkpoint, projection and length-0 tests with RNNX_ISA=generic, i.e. on those kernels,
# against the NumPy reference, PyTorch and finite differences; and the int8/bfloat16 ones
# (test_quantize_kernels.py, test_quantize.py, test_quantized_stream.py: every quantized
# kernel of the build against the NumPy twin, the quantized models and their streams).
#
#   bash .ci/wide_vectors.sh                 # the default test subset
#   bash .ci/wide_vectors.sh "$PWD/tests/test_x.py" -k y   # other pytest arguments instead
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"

source "$root/.ci/scratch_build.sh"
scratch_build wide_vectors "-DRNNX_GENERIC_VBYTES=64"

export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export RNNX_ISA=generic
cd "$work"
scratch_check_import wide_vectors

if [ "$#" -eq 0 ]; then
    set -- "$src"/tests/test_{kernels,gemm,core,isa_threads,layers,checkpoint,proj,zero_lengths}.py \
        "$src"/tests/test_{quantize_kernels,quantize,quantized_stream}.py
fi
"$python" -m pytest -q -p no:cacheprovider -x -c "$src/pyproject.toml" --rootdir "$src" "$@"
echo "wide_vectors: passed"
