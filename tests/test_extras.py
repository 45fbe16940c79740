"""A fresh machine (README "Test"): a test of an optional integration whose package is not
installed skips, and its reason names the extra that installs it; under CI (CI=true, every
extra installed) the same skip is a failure.  The table of tests/extras.py names every
optional package the tests and the README import, and only extras that pyproject.toml has."""
import ast
import os
import re
import subprocess
import sys

import pytest

import extras
import rnnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")

# imported by the tests or the README, but not optional: rnnx's own dependencies, pytest,
# and the project's own scripts (tests/, benchmarks/, examples/, tools/ put them on sys.path)
REQUIRED = {"rnnx", "numpy", "scipy", "pytest", "_pytest"} | {
    name[:-3] for folder in ("tests", "benchmarks", "examples", "tools")
    if os.path.isdir(os.path.join(ROOT, folder))
    for name in os.listdir(os.path.join(ROOT, folder)) if name.endswith(".py")}


def pyproject_extras():
    tomllib = pytest.importorskip("tomllib")          # Python >= 3.11
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


def test_every_extra_in_the_table_is_in_pyproject_and_brings_its_module():
    declared = pyproject_extras()
    names = {extra: {re.split(r"[\[<>=! ;]", requirement)[0] for requirement in requirements}
             for extra, requirements in declared.items()}
    # modules whose distribution has another name, and what brings it
    brought_by = {"distributed": "dask", "jaxlib": "jax"}
    for module, extra in extras.EXTRAS.items():
        assert extra in declared, f"tests/extras.py names an extra {extra!r} that pyproject lacks"
        assert brought_by.get(module, module) in names[extra], (module, extra, names[extra])
    # the `all` extra (what CI installs) brings every other extra but `test`
    assert set(re.findall(r"\w+", declared["all"][0].split("[", 1)[1])) == set(declared) - {"all", "test"}


def imported_modules(source):
    """Top-level names of the modules `source` imports, by import statement or importorskip."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("importorskip", "peer", "missing") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value.split(".")[0])
    return found


def test_every_optional_package_the_tests_and_the_readme_import_is_in_the_table():
    import test_readme
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        pytest.skip("sys.stdlib_module_names is Python >= 3.10")
    sources = {name: open(os.path.join(TESTS, name), encoding="utf-8").read()
               for name in sorted(os.listdir(TESTS)) if name.endswith(".py")}
    sources.update({f"README.md:{line}": source for line, source, _ in test_readme.python_blocks()})
    unknown = {}
    for where, source in sources.items():
        for module in imported_modules(source) - REQUIRED - set(stdlib):
            if not module.startswith("test_") and extras.extra_of(module) is None:
                unknown.setdefault(module, []).append(where)
    assert not unknown, f"optional packages missing from tests/extras.py EXTRAS: {unknown}"


def test_no_importorskip_of_an_optional_package_gives_its_own_reason():
    """conftest.py recognises pytest.importorskip's own message; a reason of the test's own
    would hide which extra is missing, and the skip would not fail under CI."""
    offenders = []
    for name in sorted(os.listdir(TESTS)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(TESTS, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip"
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and extras.extra_of(node.args[0].value) is not None
                    and any(keyword.arg == "reason" for keyword in node.keywords)):
                offenders.append(f"tests/{name}:{node.lineno}")
    assert not offenders, f"importorskip with a reason of its own: {offenders}"


def run_pytest(fake_missing, *args, ci=None):
    """pytest on this suite's files in a child where the packages named in fake_missing cannot
    be imported (a folder first on sys.path holds stand-ins that raise ModuleNotFoundError)."""
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "-c", os.path.join(ROOT, "pyproject.toml"), "--rootdir", ROOT, *args],
        env=dict(env, PYTHONPATH=os.pathsep.join(
            [fake_missing] + [os.path.dirname(os.path.dirname(rnnx.__file__))]
            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))),
        capture_output=True, text=True, timeout=300, cwd=fake_missing)


@pytest.fixture
def without_torch_and_dask(tmp_path):
    for module in ("torch", "dask"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n")
    return str(tmp_path)


def test_a_missing_extra_skips_naming_it_and_fails_under_ci(without_torch_and_dask):
    """A test's importorskip (test_dense) and a module's (test_dask), with torch and dask
    missing: skipped, each naming its extra; with CI=true, a failure and a collection error."""
    files = [os.path.join(TESTS, "test_dense.py") + "::test_dense_matches_torch_linear",
             os.path.join(TESTS, "test_dask.py")]
    local = run_pytest(without_torch_and_dask, *files)
    out = local.stdout
    assert local.returncode == 0, out + local.stderr
    assert re.search(r"2 skipped", out), out
    assert "needs the `torch` extra (torch): pip install -e '.[torch]'" in out, out
    assert "needs the `dask` extra (dask.array): pip install -e '.[dask]'" in out, out
    ci = run_pytest(without_torch_and_dask, "--continue-on-collection-errors", *files, ci="true")
    out = ci.stdout
    assert ci.returncode != 0, out
    assert "skipped" not in out.splitlines()[-1], out
    assert "1 failed" in out and "1 error" in out, out
    assert out.count("CI installs every extra (CI=true)") >= 2, out


def test_in_ci_reads_the_ci_variable(monkeypatch):
    for value, expected in [("true", True), ("1", True), ("", False), ("false", False), ("0", False)]:
        monkeypatch.setenv("CI", value)
        assert extras.in_ci() is expected, value
    monkeypatch.delenv("CI")
    assert extras.in_ci() is False
