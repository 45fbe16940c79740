"""rnnx/cells.py and rnnx.layers.variants(): the Python side's one list of cells is the
core's table, and every layer built from it runs the cell the table names, with its gates,
states and parameter shapes."""
import numpy as np
import pytest

import rnnx
from rnnx import _core, cells


def test_every_cell_of_the_core_has_one_layer_class_and_runs_as_named():
    variants = rnnx.layers.variants()
    assert list(variants) == cells.names() and len(variants) == len(_core.cell_table())
    for row in _core.cell_table():
        cls, options = variants[cells.variant_name(row["name"])]
        layer = cls(3, 4, dtype=np.float64, seed=0, **options)
        assert layer._cell == row["code"] and cells.row(layer.cell_name) is cells.row(row["name"])
        assert layer._gates == row["gates"] and layer.state_names == row["states"]
        shapes = {name: p.shape for name, p in layer.state_dict().items()}
        assert shapes == {name + "_l0": shape for name, shape in
                          _core.parameter_shapes(row["code"], 3, 4).items()}


def test_variant_names_are_the_reference_ones():
    from rnnx import reference
    assert cells.names() == list(reference.CELLS)
    assert cells.row("gru_reset_after") is cells.row("gru")


def test_parameter_shapes_with_every_option():
    shapes = cells.parameter_shapes("lstm", 3, 5, proj_size=2, peephole=True, bias=False)
    assert shapes == {"weight_ih": (20, 3), "weight_hh": (20, 2), "weight_hr": (2, 5),
                      "weight_peephole": (15,)}


def test_unknown_cell_is_named():
    with pytest.raises(ValueError, match=r"cell must be one of \['rnn_tanh', .*'gru_reset_before'\], "
                                         r"got 'elman'"):
        cells.row("elman")
