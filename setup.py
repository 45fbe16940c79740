"""Build of the rnnx extension: the C99 kernels in csrc/ and the Cython binding
rnnx/_core.pyx compiled into one module, rnnx._core.  Everything else about the
package is in pyproject.toml."""
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    # Warnings on and clean; no -ffast-math/-Ofast: NaN, Inf and rounding stay IEEE.
    # -ffp-contract=fast lets a*b+c be one FMA (one rounding instead of two);
    # -fno-trapping-math only lets the compiler assume no FP exception traps (we
    # never enable any), so the branch-free activations vectorize.  Neither changes
    # NaN or Inf handling.
    compile_args = ["-std=c99", "-O3", "-ffp-contract=fast", "-fno-trapping-math",
                    "-Wall", "-Wextra", "-Wno-unused-function", "-pthread"]

# The kernels are compiled once per instruction set (csrc/kernels_body.c); the
# AVX2 and AVX-512 builds compile to nothing where the compiler cannot target
# them, and the core then runs the portable build.
ISAS = ("generic", "avx2", "avx512")

core = Extension(
    "rnnx._core",
    sources=["rnnx/_core.pyx", "csrc/dispatch.c", "csrc/pool.c"]
            + [f"csrc/kernels_{dt}_{isa}.c" for dt in ("f32", "f64") for isa in ISAS],
    include_dirs=["csrc", "rnnx", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
    depends=["csrc/rnnx.h", "csrc/kernels.h", "csrc/layout.h", "csrc/real.h", "csrc/pool.h",
             "csrc/kernels_body.c", "csrc/common.c", "csrc/driver.c", "csrc/rnn.c", "csrc/lstm.c",
             "csrc/gru.c", "rnnx/_core_shim.h"],
)

setup(ext_modules=cythonize([core], language_level=3))
