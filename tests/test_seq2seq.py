"""rnnx.Seq2Seq against PyTorch (an encoder with packed source lengths, its final state handed
to the decoder by hand, nn.Linear head): outputs and every gradient; float64 central
differences; greedy generate against a step-by-step loop over the decoder's layer stream;
the hand-over's errors; save/load and state_dict."""
import numpy as np
import pytest

import rnnx
from shared import assert_close_scaled, central_difference

TOL = {np.float32: 1e-5, np.float64: 1e-9}
V = 5          # target vocabulary: one-hot decoder inputs, V logits out


def build(cell, bidirectional, dtype, encoder_dense=False, seed=0, num_layers=2, I=3, H=4):
    """A Seq2Seq: [Dense tanh] + cell encoder (num_layers, bidirectional?), decoder cell of the
    handed-over width + Dense head."""
    Cell = getattr(rnnx, cell)
    width = 2 * H if bidirectional else H
    encoder = [Cell(I if not encoder_dense else 4, H, num_layers=num_layers,
                    bidirectional=bidirectional, dtype=dtype, seed=seed)]
    if encoder_dense:
        encoder.insert(0, rnnx.Dense(I, 4, "tanh", dtype=dtype, seed=seed + 1))
    decoder = rnnx.Sequential(Cell(V, width, num_layers=num_layers, dtype=dtype, seed=seed + 2),
                              rnnx.Dense(width, V, dtype=dtype, seed=seed + 3))
    return rnnx.Seq2Seq(rnnx.Sequential(*encoder), decoder)


def data(dtype, rng, T_src=6, T_tgt=5, B=4, I=3):
    src = rng.standard_normal((T_src, B, I)).astype(dtype)
    tokens = rng.integers(0, V, (T_tgt, B))
    tgt_in = np.eye(V, dtype=dtype)[tokens]
    lengths = np.array([T_src, 2, T_src - 1, 1][:B])
    return src, tgt_in, lengths


def torch_twin(model, torch):
    """The PyTorch modules with model's weights: (encoder Linear or None, encoder rnn,
    decoder rnn, head)."""
    nn = torch.nn
    tensor = lambda a: torch.from_numpy(np.array(a))      # noqa: E731
    enc_layers, dec_layers = model.encoder.layers, model.decoder.layers
    dense = enc_layers[0] if len(enc_layers) == 2 else None
    enc, dec, head = enc_layers[-1], dec_layers[0], dec_layers[1]
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32

    def make(layer):
        module = getattr(nn, type(layer).__name__)(layer.input_size, layer.hidden_size,
                                                   layer.num_layers,
                                                   bidirectional=layer.bidirectional).to(dtype)
        module.load_state_dict({k: tensor(v) for k, v in layer.state_dict().items()})
        return module

    linear = None
    if dense is not None:
        linear = nn.Linear(dense.in_features, dense.out_features).to(dtype)
        linear.load_state_dict({k: tensor(v) for k, v in dense.state_dict().items()})
    out = nn.Linear(head.in_features, head.out_features).to(dtype)
    out.load_state_dict({k: tensor(v) for k, v in head.state_dict().items()})
    return linear, make(enc), make(dec), out


def torch_forward(twin, src, tgt_in, lengths, torch):
    """PyTorch as its users write a seq2seq: packed source, the final state handed over
    (bidirectional: torch.cat((h_n[0::2], h_n[1::2]), dim=2))."""
    linear, enc, dec, out = twin
    x = torch.tanh(linear(src)) if linear is not None else src
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    _, state = enc(packed)
    parts = state if isinstance(state, tuple) else (state,)
    if enc.bidirectional:
        parts = tuple(torch.cat((p[0::2], p[1::2]), dim=2) for p in parts)
    y, _ = dec(tgt_in, parts if len(parts) > 1 else parts[0])
    return out(y)


CASES = [("LSTM", True, False), ("GRU", False, True), ("RNN", True, True), ("LSTM", False, False)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell, bidirectional, encoder_dense", CASES)
def test_outputs_and_every_gradient_equal_pytorch(cell, bidirectional, encoder_dense, dtype):
    torch = pytest.importorskip("torch")   # the `torch` extra (tests/extras.py)
    rng = np.random.default_rng(1)
    model = build(cell, bidirectional, dtype, encoder_dense, seed=3)
    src, tgt_in, lengths = data(dtype, rng)
    weights = rng.standard_normal((5, 4, V)).astype(dtype)     # loss = sum(y * weights)

    y, _, cache = model.forward(src, tgt_in, lengths)
    dsrc, dtgt, grads = model.backward(cache, weights)
    assert np.array_equal(model(src, tgt_in, lengths), y), "inference equals the training forward"

    twin = torch_twin(model, torch)
    t_src = torch.from_numpy(src).requires_grad_()
    t_tgt = torch.from_numpy(tgt_in).requires_grad_()
    t_y = torch_forward(twin, t_src, t_tgt, lengths, torch)
    (t_y * torch.from_numpy(weights)).sum().backward()
    tol = TOL[dtype]
    assert_close_scaled(y, t_y.detach().numpy(), dtype, tol, tol, "y")
    assert_close_scaled(dsrc, t_src.grad.numpy(), dtype, tol, tol, "dsrc")
    assert_close_scaled(dtgt, t_tgt.grad.numpy(), dtype, tol, tol, "dtgt")
    linear, enc, dec, out = twin
    expected = {}
    offset = 1 if linear is not None else 0
    for prefix, modules in (("encoder", [linear, enc][1 - offset:]), ("decoder", [dec, out])):
        for index, module in enumerate(modules):
            for name, p in module.named_parameters():
                expected[f"{prefix}.{index}.{name}"] = p.grad.numpy()
    assert set(grads) == set(expected) == set(model.state_dict())
    for name, grad in grads.items():
        assert_close_scaled(grad, expected[name], dtype, tol, tol, name)
    assert model.gradients() is grads


@pytest.mark.parametrize("cell, bidirectional, encoder_dense", CASES[:3])
def test_gradients_pass_central_differences_in_float64(cell, bidirectional, encoder_dense):
    rng = np.random.default_rng(2)
    model = build(cell, bidirectional, np.float64, encoder_dense, seed=5, H=3)
    src, tgt_in, lengths = data(np.float64, rng, T_src=4, T_tgt=3, B=3)
    lengths = np.array([4, 1, 2])
    weights = rng.standard_normal((3, 3, V))
    _, _, cache = model.forward(src, tgt_in, lengths)
    dsrc, dtgt, grads = model.backward(cache, weights)

    def loss():
        return float(np.sum(model(src, tgt_in, lengths) * weights))

    for name, param in model.parameters().items():
        assert_close_scaled(grads[name], central_difference(loss, param), np.float64, 1e-6, 1e-7,
                            name)
    assert_close_scaled(dsrc, central_difference(loss, src), np.float64, 1e-6, 1e-7, "dsrc")
    assert_close_scaled(dtgt, central_difference(loss, tgt_in), np.float64, 1e-6, 1e-7, "dtgt")
    assert np.all(dsrc[1:, 1] == 0) and np.all(dsrc[2:, 2] == 0), \
        "the padded source steps get no gradient"


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_end", [False, True])
def test_generate_equals_a_step_by_step_loop_over_the_decoder_stream(bidirectional, with_end):
    rng = np.random.default_rng(3)
    model = build("LSTM", bidirectional, np.float64, seed=7)
    src, _, lengths = data(np.float64, rng)
    start = np.array([0, 1, 3, 4])
    steps = 9
    # end: a token row 1 writes at step 2 without one, so that rows do reach it
    end = int(model.generate(src, start, steps, src_lengths=lengths)[2, 1]) if with_end else None
    ids = model.generate(src, start, steps, src_lengths=lengths, end=end)
    assert ids.shape == (steps, 4) and ids.dtype == np.int64

    # by hand: the encoder's final state, its directions side by side, the decoder's LSTM
    # stream and its Dense head one step at a time, the argmax fed back one-hot
    _, (state,) = model.encoder(src, None, lengths)
    if bidirectional:
        state = tuple(np.concatenate([p[0::2], p[1::2]], axis=2) for p in state)
    lstm, head = model.decoder.layers
    stream = lstm.stream(batch_size=4, state=state)
    token, done, expected = start, np.zeros(4, bool), []
    for _ in range(steps):
        token = np.argmax(head(stream.step(np.eye(V)[token])), axis=-1)
        if end is not None:
            token = np.where(done, end, token)
            done |= token == end
        expected.append(token)
    assert np.array_equal(ids, np.stack(expected))
    if end is not None:
        assert done[1]
        for b in range(4):                       # after a row's first `end`, only `end`
            hits = np.flatnonzero(ids[:, b] == end)
            if hits.size:
                assert np.all(ids[hits[0]:, b] == end)


def test_state_shapes_that_do_not_match_name_both_layers():
    encoder = rnnx.LSTM(3, 4, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"LSTM\(input_size=3.*h \(L=2, B, 8\).*LSTM\(input_size"
                                         r"=5.*h \(L=2, B, 4\).*2\*hidden_size"):
        rnnx.Seq2Seq(encoder, rnnx.Sequential(rnnx.LSTM(5, 4, num_layers=2), rnnx.Dense(4, 5)))
    with pytest.raises(ValueError, match=r"h \(L=1, B, 4\).*h \(L=2, B, 4\)"):
        rnnx.Seq2Seq(rnnx.GRU(3, 4), rnnx.GRU(5, 4, num_layers=2))
    with pytest.raises(ValueError, match=r"hands over a state h .*, c .*takes h "):
        rnnx.Seq2Seq(rnnx.LSTM(3, 4), rnnx.GRU(5, 4))
    with pytest.raises(ValueError, match="must end in its recurrent layer"):
        rnnx.Seq2Seq(rnnx.Sequential(rnnx.GRU(3, 4), rnnx.Dense(4, 2)), rnnx.GRU(5, 4))
    with pytest.raises(ValueError, match="unidirectional"):
        rnnx.Seq2Seq(rnnx.GRU(3, 4), rnnx.GRU(5, 2, bidirectional=True))
    with pytest.raises(TypeError, match="one dtype"):
        rnnx.Seq2Seq(rnnx.GRU(3, 4), rnnx.GRU(5, 4, dtype=np.float64))
    with pytest.raises(TypeError, match="encoder must be an rnnx.Sequential"):
        rnnx.Seq2Seq("lstm", rnnx.GRU(5, 4))
    model = rnnx.Seq2Seq(rnnx.GRU(3, 4), rnnx.Sequential(rnnx.GRU(5, 4), rnnx.Dense(4, 5)))
    src = np.zeros((3, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"same batch.*B=2.*B=3"):
        model(src, np.zeros((4, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"src must be batched and time-major, \(T, B, 3\), got "
                                         r"shape \(3, 3\)"):
        model.generate(src[:, 0], 0, 3)
    with pytest.raises(ValueError, match=r"tgt_in must be batched and time-major, \(T, B, 5\)"):
        model.forward(src, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"start must lie in \[0, 5\)"):
        model.generate(src, 5, 3)
    with pytest.raises(ValueError, match=r"start must be an int or 2 ints"):
        model.generate(src, [0, 1, 2], 3)
    with pytest.raises(ValueError, match=r"steps must be >= 1"):
        model.generate(src, 0, 0)


def test_save_load_and_state_dict_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    model = build("GRU", True, np.float32, encoder_dense=True, seed=9)
    src, tgt_in, lengths = data(np.float32, rng)
    path = tmp_path / "seq2seq.npz"
    rnnx.save(model, path)
    loaded = rnnx.load(path)
    assert isinstance(loaded, rnnx.Seq2Seq) and loaded.config() == model.config()
    assert np.array_equal(loaded(src, tgt_in, lengths), model(src, tgt_in, lengths))
    other = build("GRU", True, np.float32, encoder_dense=True, seed=10)
    assert not np.array_equal(other(src, tgt_in), model(src, tgt_in))
    rnnx.load(path, into=other)
    assert np.array_equal(other(src, tgt_in), model(src, tgt_in))

    before = other.state_dict()
    bad = {name: value + 1 for name, value in before.items()}
    bad["decoder.1.bias"] = np.zeros(3)          # the last key is wrong, after the encoder's
    with pytest.raises(ValueError, match=r"decoder\.1\.bias.*shape"):
        other.load_state_dict(bad)
    after = other.state_dict()                   # all or nothing: the encoder was not loaded
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="'encoder.' or 'decoder.'"):
        other.load_state_dict(dict(before, extra=np.zeros(1)))


def test_the_trainer_masks_target_padding_and_steps_like_a_hand_written_update():
    rng = np.random.default_rng(6)
    src, tgt_in, src_lengths = data(np.float64, rng)
    tgt_out = rng.integers(0, V, (5, 4))
    tgt_lengths = np.array([5, 3, 1, 4])
    trained, by_hand = (build("GRU", True, np.float64, seed=11) for _ in range(2))
    trainer = rnnx.Trainer(trained, rnnx.SoftmaxCrossEntropy(), rnnx.SGD(trained.parameters(),
                                                                         lr=0.5))
    history = trainer.fit((src, tgt_in), tgt_out, lengths=(src_lengths, tgt_lengths))

    mask = np.arange(5)[:, None] < tgt_lengths[None, :]
    logits, _, cache = by_hand.forward(src, tgt_in, src_lengths, tgt_lengths, logits=True)
    loss, dlogits = rnnx.SoftmaxCrossEntropy()(logits, tgt_out, mask)
    _, _, grads = by_hand.backward(cache, dlogits)
    assert history["loss"] == [loss] and trainer.updates == 1
    for name, value in by_hand.parameters().items():
        assert np.array_equal(trained.parameters()[name], value - 0.5 * grads[name]), name
    assert any(np.any(grads[name] != 0) for name in grads if name.startswith("encoder."))

    # padding is padding: other target ids past tgt_lengths, other source steps past
    # src_lengths, and the result is the same
    noisy_out = np.where(mask, tgt_out, (tgt_out + 1) % V)
    noisy_src = np.where((np.arange(6)[:, None] < src_lengths[None, :])[:, :, None], src, 9.0)
    again = build("GRU", True, np.float64, seed=11)
    rnnx.Trainer(again, rnnx.SoftmaxCrossEntropy(), rnnx.SGD(again.parameters(), lr=0.5)).fit(
        (noisy_src, tgt_in), noisy_out, lengths=(src_lengths, tgt_lengths))
    for name, value in again.parameters().items():
        assert np.array_equal(value, trained.parameters()[name]), name
    assert trainer.evaluate((src, tgt_in), tgt_out, (src_lengths, tgt_lengths)) < loss


def test_the_trainer_fits_mini_batches_and_names_bad_data():
    rng = np.random.default_rng(7)
    model = build("LSTM", False, np.float32, seed=12, num_layers=1)
    src, tgt_in, _ = data(np.float32, rng, B=4)
    tgt_out = rng.integers(0, V, (5, 4))
    trainer = rnnx.Trainer(model, "softmax_cross_entropy", rnnx.Adam(model.parameters(),
                                                                     lr=0.05), seed=0)
    history = trainer.fit((src, tgt_in), tgt_out, epochs=30, batch_size=2,
                          validation=((src, tgt_in), tgt_out))
    assert trainer.updates == 60 and len(history["val_loss"]) == 30
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]
    with pytest.raises(TypeError, match=r"x must be the pair \(src, tgt_in\)"):
        trainer.fit(src, tgt_out)
    with pytest.raises(ValueError, match="same N=4 pairs"):
        trainer.fit((src, tgt_in[:, :3]), tgt_out)
    with pytest.raises(ValueError, match=r"lengths\[1\] \(tgt_lengths\) must lie in \[0, 5\]"):
        trainer.fit((src, tgt_in), tgt_out, lengths=(None, [1, 2, 3, 6]))
    with pytest.raises(ValueError, match="bptt must be None for a Seq2Seq"):
        rnnx.Trainer(model, bptt=2)


def test_the_trainer_loop_shows_progress_and_stops_a_seq2seq_on_request(capsys):
    """A Seq2Seq trains through the Trainer's own epoch loop (rnnx/trainer_loop.py): its
    progress bar, and a callback's stop after the third update (in the second epoch)."""
    rng = np.random.default_rng(9)
    model = build("GRU", False, np.float64, seed=3, num_layers=1)
    src, tgt_in, _ = data(np.float64, rng, B=4)
    tgt_out = rng.integers(0, V, (5, 4))
    trainer = rnnx.Trainer(model, "softmax_cross_entropy", progress=True, seed=0)
    history = trainer.fit((src, tgt_in), tgt_out, epochs=3, batch_size=2,
                          callback=lambda info: info["update"] == 3)
    assert trainer.updates == 3 and len(history["step_loss"]) == 3
    assert len(history["loss"]) == 2 and trainer.epochs == 1      # the second epoch is partial
    assert "epoch 1/3 [" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_token_models_with_embeddings_equal_pytorch(dtype):
    """nn.Embedding + bidirectional nn.LSTM encoder over packed ids, its directions handed
    over concatenated to nn.Embedding + nn.LSTM decoder, nn.Linear head."""
    torch = pytest.importorskip("torch")   # the `torch` extra (tests/extras.py)
    nn = torch.nn
    rng = np.random.default_rng(8)
    S, E, H, T_src, T_tgt, B = 7, 3, 4, 6, 5, 4
    model = rnnx.Seq2Seq(
        rnnx.Sequential(rnnx.Embedding(S, E, padding_idx=0, dtype=dtype, seed=1),
                        rnnx.LSTM(E, H, num_layers=2, bidirectional=True, dtype=dtype, seed=2)),
        rnnx.Sequential(rnnx.Embedding(V, E, dtype=dtype, seed=3),
                        rnnx.LSTM(E, 2 * H, num_layers=2, dtype=dtype, seed=4),
                        rnnx.Dense(2 * H, V, dtype=dtype, seed=5)))
    src = rng.integers(1, S, (T_src, B))
    lengths = np.array([6, 2, 5, 1])
    src[np.arange(T_src)[:, None] >= lengths[None, :]] = 0        # padding id
    tgt_in = rng.integers(0, V, (T_tgt, B))
    weights = rng.standard_normal((T_tgt, B, V)).astype(dtype)
    y, _, cache = model.forward(src, tgt_in, lengths)
    dsrc, dtgt, grads = model.backward(cache, weights)
    assert dsrc is None and dtgt is None                           # ids have no gradient

    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    modules = {"encoder": [nn.Embedding(S, E, padding_idx=0), nn.LSTM(E, H, 2, bidirectional=True)],
               "decoder": [nn.Embedding(V, E), nn.LSTM(E, 2 * H, 2), nn.Linear(2 * H, V)]}
    for part, mods in modules.items():
        for index, module in enumerate(mods):
            module.to(torch_dtype).load_state_dict({k: torch.from_numpy(v) for k, v in getattr(
                model, part).layers[index].state_dict().items()})
    embed, enc = modules["encoder"]
    packed = nn.utils.rnn.pack_padded_sequence(embed(torch.from_numpy(src)),
                                               torch.from_numpy(lengths), enforce_sorted=False)
    _, (h_n, c_n) = enc(packed)
    state = tuple(torch.cat((p[0::2], p[1::2]), dim=2) for p in (h_n, c_n))
    dec_embed, dec, head = modules["decoder"]
    t_y = head(dec(dec_embed(torch.from_numpy(tgt_in)), state)[0])
    (t_y * torch.from_numpy(weights)).sum().backward()
    tol = TOL[dtype]
    assert_close_scaled(y, t_y.detach().numpy(), dtype, tol, tol, "y")
    for part, mods in modules.items():
        for index, module in enumerate(mods):
            for name, p in module.named_parameters():
                key = f"{part}.{index}.{name}"
                assert_close_scaled(grads[key], p.grad.numpy(), dtype, tol, tol, key)
    assert np.all(grads["encoder.0.weight"][0] == 0), "the padding row gets no gradient"

    ids = model.generate(src, 1, 6, src_lengths=lengths, end=V - 1)
    _, (enc_state,) = model.encoder(src, None, lengths)            # by hand, ids fed back
    state = tuple(np.concatenate([p[0::2], p[1::2]], axis=2) for p in enc_state)
    table, lstm, dense = model.decoder.layers
    stream = lstm.stream(batch_size=B, state=state)
    token, done, expected = np.ones(B, np.int64), np.zeros(B, bool), []
    for _ in range(6):
        token = np.where(done, V - 1, np.argmax(dense(stream.step(table(token))), axis=-1))
        done |= token == V - 1
        expected.append(token)
    assert np.array_equal(ids, np.stack(expected))


def test_a_one_rank_comm_trains_a_seq2seq_as_without():
    """The Trainer's MPI hooks (broadcast, combine, the update-count check) on a Seq2Seq,
    in-process with a one-rank communicator."""
    pytest.importorskip("mpi4py")   # the `mpi` extra (tests/extras.py)
    from test_mpi import FakeComm
    rng = np.random.default_rng(9)
    src, tgt_in, src_lengths = data(np.float64, rng)
    tgt_out = rng.integers(0, V, (5, 4))
    runs = []
    for comm in (None, FakeComm()):
        model = build("LSTM", True, np.float64, seed=13)
        trainer = rnnx.Trainer(model, rnnx.SoftmaxCrossEntropy(),
                               rnnx.Adam(model.parameters(), lr=0.01), comm=comm, seed=0)
        history = trainer.fit((src, tgt_in), tgt_out, lengths=(src_lengths, None), epochs=3,
                              batch_size=2)
        runs.append((history["step_loss"], model.state_dict()))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-12)
    for name, value in runs[0][1].items():
        np.testing.assert_allclose(runs[1][1][name], value, rtol=1e-10, atol=1e-12, err_msg=name)
