"""Bundled data sets and their loaders."""
import numpy as np
import pytest

from rnnx import data


def test_sunspots():
    years, counts = data.load_sunspots()
    assert years[0] == 1700 and years[-1] == 2008 and len(years) == 309
    np.testing.assert_array_equal(np.diff(years), 1)
    assert counts.dtype == np.float64 and counts.min() >= 0
    assert counts[0] == 5.0 and counts[-1] == 2.9          # 1700 and 2008 as published
    assert 150 < counts.max() < 200                        # 1957, the highest of the series
    assert years[np.argmax(counts)] == 1957


def test_text_and_char_streams():
    text = data.load_text()
    assert "disclaims copyright" in text and "void" in text
    ids, vocab = data.encode_text(text)
    assert vocab.decode(ids[:200]) == text[:200]
    inputs, targets = data.stream_batches(ids, 4)
    T = (len(ids) - 1) // 4
    assert inputs.shape == targets.shape == (T, 4)
    np.testing.assert_array_equal(inputs[:, 1], ids[T:2 * T])           # stream 1 is contiguous
    np.testing.assert_array_equal(targets[:-1], inputs[1:])             # next character
    onehot = data.one_hot(inputs[:3], len(vocab))
    assert onehot.shape == (3, 4, len(vocab)) and np.all(onehot.sum(-1) == 1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.encode("\x00")
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_text("shakespeare")
