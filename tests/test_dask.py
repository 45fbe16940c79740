"""rnnx.dask.predict on a dask.distributed LocalCluster of two worker processes: the result
equals model.predict on the whole array, and the model travels once to each worker."""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")           # the `dask` extra (tests/extras.py)
distributed = pytest.importorskip("distributed")

import rnnx  # noqa: E402
import rnnx.dask  # noqa: E402


def lstm_model(dtype=np.float64, many_to_one=False, batch_first=False):
    return rnnx.Sequential(rnnx.LSTM(3, 8, batch_first=batch_first, dtype=dtype, seed=0),
                           rnnx.Dense(8, 2, dtype=dtype, seed=1), many_to_one=many_to_one)


def data(T=20, N=37, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, N, 3)), rng.integers(1, T + 1, N)


# A chunk's rows are scored by the same code as the whole batch's, but BLAS may group a
# different number of rows differently: equal to float64 rounding, not always bit for bit.
RTOL64 = 1e-12


def test_predict_without_a_cluster(monkeypatch):
    # no distributed Client: the model is one graph node that every chunk's task depends on
    monkeypatch.setattr(rnnx.dask, "_current_client", lambda: None)
    import dask
    model = lstm_model()
    x, lengths = data()
    with dask.config.set(scheduler="synchronous"):
        y = rnnx.dask.predict(model, da.from_array(x, chunks=(20, 6, 3)), lengths).compute()
    np.testing.assert_allclose(y, model.predict(x, lengths=lengths), rtol=RTOL64, atol=1e-15)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None)
    with cluster, distributed.Client(cluster) as c:
        yield c


def loads(client):
    return client.run(rnnx.dask.shipped_model_loads)


def test_time_major_with_lengths_ships_the_model_once_per_worker(client):
    model = lstm_model()
    x, lengths = data()
    dx = da.from_array(x, chunks=(20, 4, 3))          # 10 chunks, so 10 tasks on 2 workers
    assert dx.numblocks[1] == 10
    before = loads(client)
    y = rnnx.dask.predict(model, dx, lengths)
    assert isinstance(y, da.Array) and y.shape == (20, 37, 2) and y.dtype == np.float64
    result = y.compute()
    np.testing.assert_allclose(result, model.predict(x, lengths=lengths), rtol=RTOL64, atol=1e-15)
    after = loads(client)
    assert len(after) == 2
    # once per worker for this predict, whatever the number of tasks
    assert {w: after[w] - before.get(w, 0) for w in after} == {w: 1 for w in after}


def test_batch_first_data_with_dask_lengths_on_a_time_major_model(client):
    model = lstm_model()
    x, lengths = data(seed=1)
    # chunked along T too: predict merges those chunks
    xb = da.from_array(np.ascontiguousarray(np.swapaxes(x, 0, 1)), chunks=(5, 7, 3))
    y = rnnx.dask.predict(model, xb, da.from_array(lengths, chunks=9), batch_first=True)
    assert y.shape == (37, 20, 2)
    expected = np.swapaxes(model.predict(x, lengths=lengths), 0, 1)
    np.testing.assert_allclose(y.compute(), expected, rtol=RTOL64, atol=1e-15)


def test_many_to_one_float32_batch_first_model(client):
    model = lstm_model(np.float32, many_to_one=True, batch_first=True)
    x, lengths = data(seed=2)
    xb = np.ascontiguousarray(np.swapaxes(x, 0, 1)).astype(np.float32)
    y = rnnx.dask.predict(model, da.from_array(xb, chunks=(8, 20, 3)), lengths)
    assert y.shape == (37, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y.compute(), model.predict(xb, lengths=lengths), rtol=1e-5,
                               atol=1e-6)


def test_bare_layer(client):
    layer = rnnx.GRU(3, 4, bidirectional=True, dtype=np.float64, seed=3)
    x, _ = data(seed=3)
    y = rnnx.dask.predict(layer, da.from_array(x, chunks=(20, 10, 3)))
    np.testing.assert_allclose(y.compute(), layer(x)[0], rtol=RTOL64, atol=1e-15)


def test_bad_input_names_the_argument():
    model = lstm_model()
    x, lengths = data()
    with pytest.raises(TypeError, match="x must be a dask"):
        rnnx.dask.predict(model, x)
    with pytest.raises(ValueError, match=r"x must be \(T, N, 3\)"):
        rnnx.dask.predict(model, da.zeros((20, 4, 5), chunks=2))
    with pytest.raises(ValueError, match="lengths must be integers of shape"):
        rnnx.dask.predict(model, da.from_array(x), lengths[:5])
    with pytest.raises(ValueError, match="lengths must lie in"):
        rnnx.dask.predict(model, da.from_array(x), lengths + 100)
    with pytest.raises(TypeError, match="model must be"):
        rnnx.dask.predict(rnnx.Dense(3, 2), da.from_array(x))
    with pytest.raises(TypeError, match="batch_first"):
        rnnx.dask.predict(model, da.from_array(x), batch_first="yes")
