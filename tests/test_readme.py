"""Every ```python block of README.md runs as printed.

Each block runs on its own, in a fresh namespace, with a new empty temporary folder as the
working directory (so relative paths such as "sine.npz" are written there), unless it is
marked, by an HTML comment on the line just before its opening fence:

    <!-- continued -->              the block continues the previous python block: it runs
                                    in that block's namespace and folder, after it (so it
                                    may use its names); the chain is one test.
    <!-- skip: <reason> -->         the block is not run, for a reason given in the README
                                    (only for what cannot exist on a CI machine).

Blocks that need PyTorch, ONNX, dask or matplotlib run too where those are installed (CI
installs them, see .ci/run); where one is not, such a block skips, naming the extra that
installs it, as the other tests of optional integrations do (tests/extras.py; under CI it
fails instead). Other fenced blocks (```bash, plain ```) are not run.
"""
import os
import re
import sys

import pytest

import extras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*(continued|skip:\s*(?P<reason>.+?))\s*-->\s*$")


def python_blocks(path=README):
    """[(line number of the opening fence, source, marker)] of the ```python blocks, marker
    being None, "continued" or "skip"."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{index + 1}: a code block is never closed")
        if match.group(1) == "python":
            marker = None
            before = MARKER.match(lines[index - 1]) if index else None
            if before:
                marker = "continued" if before.group(1) == "continued" else "skip"
                if marker == "skip" and not before.group("reason").strip():
                    raise ValueError(f"README.md:{index}: a skip marker must give a reason")
            blocks.append((index + 1, "\n".join(lines[index + 1:end]) + "\n", marker))
        index = end + 1
    return blocks


def chains():
    """The blocks grouped into runs: a block and the continued blocks after it."""
    groups = []
    for line, source, marker in python_blocks():
        if marker == "skip":
            continue
        if marker == "continued":
            if not groups:
                raise ValueError(f"README.md:{line}: the first python block cannot be continued")
            groups[-1].append((line, source))
        else:
            groups.append([(line, source)])
    return groups


CHAINS = chains()


def test_the_readme_has_python_blocks_and_valid_markers():
    blocks = python_blocks()
    assert len(blocks) >= 5
    assert sum(len(chain) for chain in CHAINS) == sum(marker != "skip" for _, _, marker in blocks)


def run_chain(chain):
    """Runs the blocks of a chain in one namespace; a block that imports an optional package
    that is not installed skips (or under CI fails) naming the extra, see tests/extras.py."""
    namespace = {"__name__": "__readme__"}
    for line, source in chain:
        code = compile(source, f"README.md:{line}", "exec")
        try:
            exec(code, namespace)
        except ModuleNotFoundError as error:
            if extras.extra_of(error.name) is None:
                raise                          # rnnx's own modules, or a typo: a failure
            extras.missing(error.name, f"README.md:{line}: ")


@pytest.mark.parametrize("chain", CHAINS, ids=[f"line{chain[0][0]}" for chain in CHAINS])
def test_readme_block_runs(chain, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_chain(chain)


def test_markers_are_parsed(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("text\n```python\na = 1\n```\n<!-- continued -->\n```python\nb = a\n```\n"
                      "<!-- skip: needs a GPU -->\n```python\nimport cuda\n```\n```bash\nls\n```\n")
    assert [(line, marker) for line, _, marker in python_blocks(readme)] == [
        (2, None), (6, "continued"), (10, "skip")]
    readme.write_text("```python\nx = 1\n")
    with pytest.raises(ValueError, match="never closed"):
        python_blocks(readme)


def test_a_block_needing_a_missing_optional_package_skips_naming_its_extra(monkeypatch):
    """The README's test command on a fresh machine (no extras): a block that imports an
    optional package skips, naming the extra; under CI the same block fails; a module that
    is no optional package is an error either way."""
    monkeypatch.setitem(sys.modules, "torch", None)          # `import torch` now fails
    block = [(1, "import numpy as np\nx = np.zeros(3)\nimport torch\n")]
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception,
                       match=r"^README.md:1: needs the `torch` extra .*'\.\[torch\]'"):
        run_chain(block)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI installs every extra"):
        run_chain(block)
    with pytest.raises(ModuleNotFoundError):
        run_chain([(1, "import rnnx.no_such_module\n")])
