"""The core's table of cells (_core.cell_table, parameter_shapes) and its status
sentences (_core.strerror): what the Python lists of cells are built from."""
import numpy as np
import pytest

from rnnx import _core


def test_table_names_every_cell_code_once():
    table = _core.cell_table()
    assert [c["code"] for c in table] == list(range(len(table)))
    assert [c["name"] for c in table] == ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"]
    for c in table:
        assert c["gates"] == _core.gate_count(c["code"]) == len(c["gate_order"])
        assert c["states"] == (("h", "c") if c["name"] == "lstm" else ("h",))
    lstm = table[_core.LSTM]
    assert lstm["gate_order"] == ("i", "f", "g", "o") and lstm["options"] == ("proj", "peephole")
    assert table[_core.GRU]["gate_order"] == ("r", "z", "n")


@pytest.mark.parametrize("cell", range(5))
def test_parameter_shapes_are_what_forward_takes(cell):
    """The shapes the table gives run through _core.forward; one row more is refused."""
    I, H, T, B = 3, 5, 2, 2
    shapes = _core.parameter_shapes(cell, I, H)
    assert list(shapes) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    w = [np.full(s, 0.1) for s in shapes.values()]
    lstm = cell == _core.LSTM
    c = np.zeros((B, H)) if lstm else None
    _core.forward(cell, np.ones((T, B, I)), np.zeros((B, H)), c, *w, None, False,
                  np.empty((T, B, H)), np.empty((B, H)), np.empty((B, H)) if lstm else None, False)
    w[1] = np.zeros((shapes["weight_hh"][0] + 1, H))
    with pytest.raises(ValueError, match="w_hh"):
        _core.forward(cell, np.ones((T, B, I)), np.zeros((B, H)), c, *w, None, False,
                      np.empty((T, B, H)), np.empty((B, H)), np.empty((B, H)) if lstm else None,
                      False)


def test_parameter_shapes_with_options():
    assert _core.parameter_shapes(_core.LSTM, 3, 8, proj_size=4, peephole=True) == {
        "weight_ih": (32, 3), "weight_hh": (32, 4), "bias_ih": (32,), "bias_hh": (32,),
        "weight_hr": (4, 8), "weight_peephole": (24,)}
    with pytest.raises(ValueError, match="peepholes are for an LSTM only"):
        _core.parameter_shapes(_core.GRU, 3, 8, peephole=True)
    with pytest.raises(ValueError, match="proj_size"):
        _core.parameter_shapes(_core.LSTM, 3, 8, proj_size=8)
    with pytest.raises(ValueError, match="unknown cell code"):
        _core.parameter_shapes(9, 3, 8)
    with pytest.raises(TypeError, match="hidden_size"):
        _core.parameter_shapes(_core.LSTM, 3, 8.0)


def test_strerror_names_every_status():
    unknown = _core.strerror(-1)
    codes = list(range(0, 8)) + list(range(16, 25))   # rnnx.h's, then rnnx_model.h's
    texts = [_core.strerror(c) for c in codes]
    assert all(t and t != unknown for t in texts)
    assert len(set(texts)) == len(texts)
    assert _core.strerror(8) == unknown
