"""The C library's public headers and the README's recipe for one's own program.

- rnnx.h, rnnx_model.h and rnnx_version.h compile after (and before) every standard C header,
  <complex.h> (which defines I as a macro) and <iso646.h> included, as C99 and as C++11,
  warning-free with GCC and Clang at -Wall -Wextra -pedantic.
- The README's recipe (section "Your own program against the installed library") runs as
  printed: export a model as C source, install the library with CMake, compile chunks.c
  statically and against the shared library with pkg-config (and the rpath line); both
  programs print what Python's model(x) gives, outputs and final state, run 64 steps a call.

Needs cmake, pkg-config and a C compiler (C++ compilers for the C++ case). Outside CI a missing
tool skips; in CI (CI=true, .ci/run installs them) it fails.
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import rnnx
from test_embed import _require   # skips where a tool is missing, fails in CI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")

C_HEADERS = ["assert.h", "complex.h", "ctype.h", "errno.h", "fenv.h", "float.h", "inttypes.h",
             "iso646.h", "limits.h", "locale.h", "math.h", "setjmp.h", "signal.h", "stdarg.h",
             "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h", "string.h", "tgmath.h",
             "time.h", "wchar.h", "wctype.h"]
RNNX_HEADERS = ["rnnx.h", "rnnx_model.h", "rnnx_version.h"]


def _unit(rnnx_first):
    """A translation unit that includes the standard headers and rnnx's, and uses both."""
    std = [f"#include <{h}>" for h in C_HEADERS]
    own = [f'#include "{h}"' for h in RNNX_HEADERS]
    includes = own + std if rnnx_first else std + own
    return "\n".join(includes) + r'''
int main(void)
{
    rnnx_forward_args a;
    memset(&a, 0, sizeof a);
    a.input_size = 3;
    rnnx_model m;
    memset(&m, 0, sizeof m);
    printf("%d %d %s\n", a.input_size, rnnx_model_check(&m) != RNNX_OK, rnnx_strerror(RNNX_OK));
    return 0;
}
'''


@pytest.mark.parametrize("compiler, flags, suffix", [
    ("gcc", ["-std=c99"], ".c"), ("clang", ["-std=c99"], ".c"),
    ("gcc", ["-std=c11"], ".c"), ("g++", ["-std=c++11"], ".cpp"),
    ("clang++", ["-std=c++11"], ".cpp")])
@pytest.mark.parametrize("rnnx_first", [False, True])
def test_public_headers_compose_with_every_standard_header(tmp_path, compiler, flags, suffix,
                                                           rnnx_first):
    _require(compiler)
    source = tmp_path / f"unit{suffix}"
    source.write_text(_unit(rnnx_first))
    result = subprocess.run([compiler, *flags, "-Wall", "-Wextra", "-pedantic", "-Werror",
                             "-fsyntax-only", "-I", os.path.join(ROOT, "csrc"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr


def _recipe(name):
    """The code block after `<!-- recipe: name -->` in README.md."""
    text = open(README).read()
    match = re.search(r"<!--\s*recipe:\s*" + re.escape(name) + r"\s*-->\s*\n```\w*\n(.*?)```",
                      text, re.S)
    assert match, f"README.md has no block marked <!-- recipe: {name} -->"
    return match.group(1)


def _python_block_before(name):
    """The python block just before the recipe's C file: the model it exports."""
    text = open(README).read()
    marker = text.index(f"<!-- recipe: {name} -->")
    blocks = re.findall(r"```python\n(.*?)```", text[:marker], re.S)
    return blocks[-1]


def test_readme_recipe_compiles_an_exported_model_static_and_shared(tmp_path):
    _require("cmake", "cc", "pkg-config", "bash")
    source = tmp_path / "rnnx-src"        # the checkout, without its build outputs
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "build-*", "*.so", "_core.c", "__pycache__", ".pytest_cache", "*.egg-info",
        ".hypothesis"))
    project = tmp_path / "project"
    project.mkdir()
    namespace = {}
    cwd = os.getcwd()
    os.chdir(project)
    try:
        exec(_python_block_before("chunks.c"), namespace)
    finally:
        os.chdir(cwd)
    (project / "chunks.c").write_text(_recipe("chunks.c"))
    script = tmp_path / "recipe.sh"
    script.write_text("set -eu\n" + f"cd {source}\n" + _recipe("install") +
                      f"cd {project}\n" + _recipe("compile"))
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    env.pop("PKG_CONFIG_PATH", None)
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "home" / ".local" / "rnnx" / "lib" / "librnnx.a").exists()

    # the static program does not need librnnx.so; the shared one finds it by its rpath
    needed = subprocess.run(["readelf", "-d", str(project / "chunks_shared")],
                            capture_output=True, text=True).stdout if shutil.which("readelf") else ""
    if needed:
        assert "librnnx.so" in needed and ("RPATH" in needed or "RUNPATH" in needed)
        assert "librnnx" not in subprocess.run(["readelf", "-d", str(project / "chunks")],
                                               capture_output=True, text=True).stdout

    model = namespace["model"]
    x = np.loadtxt(project / "x.txt", dtype=np.float32).reshape(150, 1, 3)
    lines = (project / "y.txt").read_text().splitlines()
    assert len(lines) == 151
    got = np.array([[float(v) for v in line.split()] for line in lines[:-1]], np.float32)
    got_state = np.array([float(v) for v in lines[-1].split()], np.float32)
    want, state = model(x)
    # C runs 64 steps per call and no BLAS; Python one call with BLAS for the hoisted product,
    # and its Dense rounds differently: equal to float32 rounding over 150 steps
    np.testing.assert_allclose(got, want[:, 0], rtol=1e-5, atol=1e-6)
    want_state = np.concatenate([np.ravel(a) for layer in state
                                 for a in (layer if isinstance(layer, tuple) else (layer,))])
    assert got_state.shape == want_state.shape == (2 * 2 * 16,)
    np.testing.assert_allclose(got_state, want_state, rtol=1e-5, atol=1e-6)
