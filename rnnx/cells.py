"""The core's table of cells, the one list of cells that rnnx's Python reads.

``_core.cell_table()`` (csrc/layout.h) gives one row per cell code: ``name``, ``code``,
``gates`` (G / H), ``gate_order``, ``states`` (("h",) or ("h", "c")), ``options`` (the
variants it takes: "proj", "peephole") and ``parameters`` (one layer and direction's
parameter names, every option on, in the core's order); ``_core.parameter_shapes`` gives
their shapes.  The layers, io, the converters, the benchmarks and the tests build their
lists from it, so a new cell is a row in the core and a layer class that names it in its
``_cells`` (rnnx/layers.py, whose ``variants()`` pairs the two).

A variant's name (a layer's ``cell_name``, the name rnnx/reference.py's forward takes) is
the core's, but for the core's "gru", which rnnx calls "gru_reset_after" beside
"gru_reset_before" (PyTorch's GRU resets after the recurrent product).
"""
from . import _core

TABLE = tuple(_core.cell_table())
_BY_NAME = {row["name"]: row for row in TABLE}
_VARIANT_NAMES = {"gru": "gru_reset_after"}
_CORE_NAMES = {variant: core for core, variant in _VARIANT_NAMES.items()}


def row(name):
    """The core's row of a cell, by the core's name or the variant's ("gru_reset_after")."""
    name = _CORE_NAMES.get(name, name)
    if name not in _BY_NAME:
        raise ValueError(f"cell must be one of {names()}, got {name!r}")
    return _BY_NAME[name]


def variant_name(core_name):
    """The variant name (a layer's cell_name) of a core cell."""
    return _VARIANT_NAMES.get(core_name, core_name)


def names():
    """The variant names of every cell of the core, in code order."""
    return [variant_name(r["name"]) for r in TABLE]


def parameter_shapes(name, input_size, hidden_size, proj_size=0, peephole=False, bias=True):
    """{name: shape} of one layer and direction's parameters (names without _l{k}), in the
    core's order; without the biases for bias=False."""
    shapes = _core.parameter_shapes(row(name)["code"], input_size, hidden_size, proj_size,
                                    peephole)
    return {n: s for n, s in shapes.items() if bias or not n.startswith("bias_")}
