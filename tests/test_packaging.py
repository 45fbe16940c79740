"""Packaging: the LICENSE, what the wheel leaves out, and a stripped extension on Linux.
(Building a wheel takes minutes: CI builds the sdist and the wheel, repairs, installs and
tests it in .ci/wheel.sh; these tests pin the settings that give them.)"""
import fnmatch
import os
import re
import struct
import sys

import pytest

import rnnx
import rnnx._core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_license_is_mit_for_the_rnnx_developers():
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("MIT License") and "Copyright (c) 2026 rnnx developers" in text
    assert "WITHOUT WARRANTY OF ANY KIND" in text


def test_wheel_leaves_out_the_generated_c_and_the_shim():
    tomllib = pytest.importorskip("tomllib")          # Python >= 3.11
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    excluded = project["tool"]["setuptools"]["exclude-package-data"]["rnnx"]
    assert {"_core.c", "_core_shim.h"} <= set(excluded)
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert project["project"]["scripts"]["rnnx"] == "rnnx.__main__:main"


def elf_section_names(path):
    """Names of the sections of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def section(index):
        return struct.unpack_from("<IIQQQQ", data, shoff + index * shentsize)
    names_offset = section(shstrndx)[4]
    names = []
    for index in range(shnum):
        start = names_offset + section(index)[0]
        names.append(data[start:data.index(b"\0", start)].decode())
    return names


@pytest.mark.skipif(not sys.platform.startswith("linux") or sys.maxsize < 2 ** 32,
                    reason="the strip flag is set for 64-bit Linux builds only")
def test_extension_is_stripped_on_linux():
    if os.environ.get("RNNX_NO_STRIP"):
        pytest.skip("built with RNNX_NO_STRIP=1 (symbols kept on purpose)")
    names = elf_section_names(rnnx._core.__file__)
    assert ".text" in names and ".dynsym" in names       # a real shared object
    assert ".symtab" not in names and ".debug_info" not in names


def test_sdist_and_cibuildwheel_settings():
    """The sdist carries what the build reads (its wheel is built from it by .ci/wheel.sh,
    which failed when _core.pyx was left out); cibuildwheel builds Linux x86-64 and aarch64,
    macOS and Windows, and tests each wheel where it was built."""
    tomllib = pytest.importorskip("tomllib")          # Python >= 3.11
    with open(os.path.join(ROOT, "MANIFEST.in"), encoding="utf-8") as f:
        manifest = f.read().split()
    assert {"rnnx/_core.pyx", "rnnx/_core_*.pxi", "rnnx/_core_shim.h", "CMakeLists.txt"} <= set(manifest)
    # every file _core.pyx includes is one that pattern takes into the sdist
    with open(os.path.join(ROOT, "rnnx", "_core.pyx"), encoding="utf-8") as f:
        included = re.findall(r'^include "([^"]+)"', f.read(), re.M)
    assert included and all(fnmatch.fnmatch("rnnx/" + name, "rnnx/_core_*.pxi") for name in included)
    assert all(os.path.exists(os.path.join(ROOT, "rnnx", name)) for name in included)
    assert "csrc" in manifest[manifest.index("graft") + 1:]
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        cibw = tomllib.load(f)["tool"]["cibuildwheel"]
    assert set(cibw["linux"]["archs"]) == {"x86_64", "aarch64"}
    assert set(cibw["macos"]["archs"]) == {"x86_64", "arm64"} and cibw["windows"]["archs"] == ["AMD64"]
    assert "-m rnnx" in " ".join(cibw["test-command"]) and cibw["test-extras"] == ["test"]
