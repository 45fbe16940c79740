"""Build of the rnnx extension: the C99 kernels in csrc/ and the Cython binding
rnnx/_core.pyx compiled into one module, rnnx._core.  Everything else about the
package is in pyproject.toml."""
import os
import glob
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    # Warnings on and clean; no -ffast-math/-Ofast: NaN, Inf and rounding stay IEEE.
    # -ffp-contract=off: the compiler fuses no a*b+c on its own; the kernels ask for
    # every FMA they want (csrc/kernels/vec.h, MADD and vmadd), so each value is computed
    # the same way in every loop shape and with every compiler.
    # -fno-trapping-math only lets the compiler assume no FP exception traps (we
    # never enable any), so the branch-free activations vectorize.  Neither changes
    # NaN or Inf handling.
    compile_args = ["-std=c99", "-O3", "-ffp-contract=off", "-fno-trapping-math",
                    "-Wall", "-Wextra", "-Wno-unused-function", "-pthread"]

# The kernels are compiled once per instruction set (csrc/kernels_body.c); the
# AVX2 and AVX-512 builds compile to nothing where the compiler cannot target
# them, and the core then runs the portable build.
ISAS = ("generic", "avx2", "avx512")

# --- packaging (see README "Install"): a stripped extension on Linux (371 KB instead of
# 1.8 MB); RNNX_NO_STRIP=1 keeps the symbols, e.g. for a debugger or a sanitizer build.
link_args = (["-s"] if sys.platform.startswith("linux") and not os.environ.get("RNNX_NO_STRIP")
             else [])
# Regenerate rnnx/_core.c only when _core.pyx or its shim changed: pip's isolated build env
# has freshly installed Cython and NumPy .pxd files, newer than _core.c, so cythonize would
# otherwise rewrite it, and rebuild the whole extension, on every `pip install -e ".[extra]"`.
_generated = "rnnx/_core.c"
_cython_sources = ["rnnx/_core.pyx", "rnnx/_core_shim.h"]
_regenerate = not os.path.exists(_generated) or any(
    os.path.getmtime(source) > os.path.getmtime(_generated) for source in _cython_sources)
# --- end packaging

core = Extension(
    "rnnx._core",
    sources=["rnnx/_core.pyx", "csrc/dispatch.c", "csrc/pool.c", "csrc/cell_table.c",
             "csrc/status.c"]
            + [f"csrc/kernels_{dt}_{isa}.c" for dt in ("f32", "f64") for isa in ISAS],
    include_dirs=["csrc", "rnnx", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args + ([] if sys.platform == "win32" else ["-pthread"]),
    depends=sorted(glob.glob("csrc/**/*.[ch]", recursive=True)) + ["rnnx/_core_shim.h"],
)

if _regenerate:
    ext_modules = cythonize([core], language_level=3)
else:                                   # compile the existing C, as cythonize would have
    core.sources[0] = _generated
    ext_modules = [core]


# --- packaging: a build cache, so that an unchanged core is not compiled again.
# pip builds an editable install (`pip install -e ".[extra]"`) in new temporary folders every
# time, so setuptools alone recompiles everything. This keeps the last compiled extension in
# build/core-cache/, named by a hash of everything the compiler's output depends on: the
# bytes of every source and header and of this file, the compiler commands and flags
# (CC, CFLAGS, LDFLAGS, ... included), the Python and NumPy versions. A hit copies it; any
# change is a miss and a normal compile. RNNX_NO_BUILD_CACHE=1 turns the cache off.
import hashlib  # noqa: E402
import shutil  # noqa: E402
import sysconfig  # noqa: E402

from setuptools.command.build_ext import build_ext  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(globals().get("__file__", "setup.py")))
_CACHE = os.path.join(_HERE, "build", "core-cache")


class build_ext_cached(build_ext):
    def _fingerprint(self, ext):
        digest = hashlib.sha256()
        files = []
        # every source and header of the core, not only those named in ext.depends
        inputs = glob.glob(os.path.join(_HERE, "csrc", "**", "*.[ch]"), recursive=True) + glob.glob(
            os.path.join(_HERE, "rnnx", "_core*.[ch]")) + glob.glob(os.path.join(_HERE, "rnnx", "*.pyx"))
        for path in set(ext.sources) | set(ext.depends) | set(inputs) | {os.path.join(_HERE, "setup.py")}:
            full = os.path.abspath(path)      # a build env's files by name: its folder varies
            name = os.path.relpath(full, _HERE) if full.startswith(_HERE + os.sep) \
                else os.path.basename(full)
            with open(full, "rb") as f:
                files.append((name, hashlib.sha256(f.read()).hexdigest()))
        digest.update(repr(sorted(files)).encode())
        compiler = self.compiler
        config = [getattr(compiler, name, None) for name in ("compiler_so", "linker_so")]
        config += [ext.extra_compile_args, ext.extra_link_args, ext.define_macros, sys.version,
                   np.__version__, sysconfig.get_config_var("EXT_SUFFIX"), sys.platform]
        config += [os.environ.get(name) for name in ("CC", "CFLAGS", "CPPFLAGS", "LDFLAGS",
                                                     "LDSHARED", "RNNX_NO_STRIP")]
        digest.update(repr(config).encode())
        return digest.hexdigest()[:32]

    def build_extension(self, ext):
        if os.environ.get("RNNX_NO_BUILD_CACHE"):
            return super().build_extension(ext)
        target = self.get_ext_fullpath(ext.name)
        cached = os.path.join(_CACHE, self._fingerprint(ext)
                              + sysconfig.get_config_var("EXT_SUFFIX"))
        if os.path.exists(cached):
            print(f"rnnx: reusing the compiled core from {cached} (sources and flags unchanged)")
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            shutil.copyfile(cached, target)
            shutil.copymode(cached, target)
            return
        super().build_extension(ext)
        try:                                 # keep only the latest build
            shutil.rmtree(_CACHE, ignore_errors=True)
            os.makedirs(_CACHE, exist_ok=True)
            shutil.copy2(target, cached)
        except OSError:
            pass
# --- end packaging


setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext_cached})
