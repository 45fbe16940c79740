"""The optional packages the tests use, and which extra of pyproject.toml brings each.

A test of an optional integration imports its package with plain
``pytest.importorskip("torch")``; tests/conftest.py turns that skip into one whose reason
names the extra ("needs the `torch` extra (torch): pip install -e '.[torch]'"), and, under CI
(CI=true: .ci/run installs every extra), into a failure, so a missing install step cannot
hide behind a skip.  tests/test_readme.py does the same for a README block that imports one.
"""
import os

import pytest

# top-level module -> the extra (pyproject.toml [project.optional-dependencies]) that installs it
EXTRAS = {
    "torch": "torch",
    "onnx": "onnx", "onnxruntime": "onnx", "onnxscript": "onnx",
    "keras": "keras", "jax": "keras", "jaxlib": "keras",
    "dask": "dask", "distributed": "dask",
    "mpi4py": "mpi",
    "matplotlib": "plot",
    "hypothesis": "test", "threadpoolctl": "test", "mpmath": "test",
}


def in_ci():
    """True where CI runs the tests (CI set to anything but "", "0" or "false")."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def extra_of(module):
    """The extra that installs `module` (a dotted name: its top-level package counts), or None
    for a module that is not an optional dependency of rnnx."""
    return EXTRAS.get((module or "").split(".")[0])


def reason(module):
    """Why a test of `module` does not run here, naming the extra that makes it run."""
    extra = extra_of(module)
    return f"needs the `{extra}` extra ({module}): pip install -e '.[{extra}]'"


def ci_failure(module):
    return (f"{module} is missing, but CI installs every extra (CI=true): {reason(module)}; "
            f"add its install step to .ci/run")


def missing(module, where=""):
    """Skip the running test (or module) for the optional `module` that is not installed,
    or, under CI, fail it; `where` (e.g. "README.md:155: ") starts the message."""
    if in_ci():
        pytest.fail(where + ci_failure(module), pytrace=False)
    pytest.skip(where + reason(module), allow_module_level=True)
