"""The C library built alone with CMake (no Python, no BLAS): its C tests pass (ctest), and
examples/embed's rnnx_stream, given a model saved or exported from Python, prints what the
Python model's stream gives, bit for bit where the kernel path is the same; cross-compiled for
aarch64 and run under qemu, it gives x86-64's outputs to 1e-5 (float32) and 1e-12 (float64),
bit for bit between builds that multiply-add alike (NEON and AVX2 with FMA, generic and generic),
and bit for bit between any two for int8 and bfloat16 models (tests/c/data's *_int8, *_bf16).

Needs cmake and a C compiler (and for the aarch64 test gcc-aarch64-linux-gnu and qemu-user).
Outside CI a missing tool skips; in CI (CI=true, .ci/run installs them) it fails."""
import math
import os
import shutil
import subprocess

import numpy as np
import pytest

import rnnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "c", "data")
CASES = ["lstm2_f32", "lstm_dense_f64", "gru_bi_softmax_m2o_f32", "gru_before_nobias_f64",
         "rnn_relu_sigmoid_f32", "lstm_m2o_f32", "embed_gru_dense_f32",
         "embed_lstm_m2o_f64", "lstm_bi_output_m2o_f64", "lstm2_dense_int8",
         "embed_gru_before_int8", "gru_bi_m2o_int8", "lstm2_dense_bf16", "lstm_proj_int8"]


def _require(*tools):
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {missing} (.ci/run installs them)")
        pytest.skip(f"needs {missing}")


def head_model():
    """The model compiled into rnnx_stream_static: a stack with a softmax head."""
    return rnnx.Sequential(rnnx.GRU(3, 12, num_layers=2, seed=21),
                           rnnx.Dense(12, 6, activation="relu", seed=22),
                           rnnx.Dense(6, 4, activation="softmax", seed=23), many_to_one=True)


def _build(source_dir, build_dir, *options, env=None):
    """Configure and build; returns the build's output (compiler warnings included)."""
    subprocess.run(["cmake", "-S", source_dir, "-B", build_dir, *options], check=True,
                   capture_output=True, env=env)
    result = subprocess.run(["cmake", "--build", build_dir, "-j", "2"], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _warnings(log):
    return [line for line in log.splitlines() if "warning:" in line]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A fresh CMake build of the repository, its static example built from head_model()."""
    _require("cmake", "cc")
    tmp = tmp_path_factory.mktemp("cbuild")
    model = head_model()
    rnnx.save(model, tmp / "head.rnnx")
    rnnx.export_c(model, tmp / "head_data.c")
    log = _build(ROOT, str(tmp / "build"), f"-DRNNX_EMBED_MODEL_SOURCE={tmp / 'head_data.c'}")
    (tmp / "build.log").write_text(log)
    return tmp


def test_gcc_build_is_warning_free(build):
    """The library, the C tests and the example (an exported model's source included) compile
    with -std=c99 -pedantic -Wall -Wextra and no warning."""
    assert _warnings((build / "build.log").read_text()) == []


def test_clang_build_is_warning_free(tmp_path):
    _require("cmake", "clang")
    log = _build(ROOT, str(tmp_path / "clang"), env=dict(os.environ, CC="clang"))
    assert _warnings(log) == []


def _stream_c(binary, x, *args, emulator=()):
    """Outputs (T, out) of rnnx_stream --hex for the samples x (T, I), exactly."""
    lines = "\n".join(" ".join(repr(float(v)) for v in row) for row in x) + "\n"
    result = subprocess.run([*emulator, binary, "--hex", *args], input=lines, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return np.array([[float.fromhex(v) for v in line.split()] for line in result.stdout.splitlines()])


def _dense_twin(layer, x):
    """A Dense layer computed as csrc/stream/heads.c computes it (products added in order of k, one
    rounding per operation, the bias after the sum; sigmoid/tanh by the core's activation;
    softmax's exp in double), so the C result can be checked bit for bit."""
    params = layer.parameters()
    w, dtype = params["weight"], layer.dtype
    acc = np.zeros((x.shape[0], layer.out_features), dtype)
    for k in range(layer.in_features):
        acc = acc + w[:, k][None, :] * x[:, k][:, None]
    z = acc + params["bias"] if layer.bias else acc
    if layer.activation in ("sigmoid", "tanh"):
        from rnnx import _core
        return _core.activation(layer.activation, z)
    if layer.activation == "relu":
        return np.where(z > 0, z, dtype.type(0))
    if layer.activation == "softmax":
        out = np.empty_like(z)
        for n, row in enumerate(z):
            e = np.array([math.exp(float(v)) for v in row - row.max()]).astype(dtype)
            total = dtype.type(0)
            for v in e:
                total = dtype.type(total + v)
            out[n] = e / total
        return out
    return z


def _python_stream(model, x):
    """The model's outputs step by step: its recurrent layers through layer.stream() (the
    Python API's streaming path), its Dense layers as the twin above or as Python's Dense."""
    layers = model.layers if isinstance(model, rnnx.Sequential) else [model]
    recurrent = [i for i, layer in enumerate(layers) if not isinstance(layer, rnnx.Dense)]
    twin_streams = {i: layers[i].stream() for i in recurrent}
    python_streams = {i: layers[i].stream() for i in recurrent}
    twin, python = [], []
    for x_t in x:
        h_twin = h_python = x_t[None, :].astype(layers[0].dtype)
        for i, layer in enumerate(layers):
            if i in recurrent:
                h_twin = twin_streams[i].step(h_twin)
                h_python = python_streams[i].step(h_python)
            else:
                h_twin, h_python = _dense_twin(layer, h_twin), layer(h_python)
        twin.append(h_twin[0])
        python.append(h_python[0])
    return np.array(twin), np.array(python)


def _compile_pedantic(build, tmp_path, data):
    """tmp_path/main.c and tmp_path/<data> (export_c's output) linked with the library into
    tmp_path/main, -std=c99 -pedantic with every warning an error."""
    library = build / "build" / "librnnx.a"
    result = subprocess.run(["cc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror",
                             "-I", os.path.join(ROOT, "csrc"), str(tmp_path / "main.c"),
                             str(tmp_path / data), str(library), "-lm", "-pthread",
                             "-o", str(tmp_path / "main")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exported_source_compiles_pedantic_and_checks(build, tmp_path, dtype):
    """export_c's output is -std=c99 -pedantic clean for both dtypes and every layer kind, and
    the model it defines passes rnnx_model_check with the sizes of the Python model."""
    _require("cc")
    model = rnnx.Sequential(rnnx.Dense(2, 3, activation="tanh", dtype=dtype, seed=0),
                            rnnx.GRU(3, 4, num_layers=2, bidirectional=True, reset_after=False,
                                     bias=False, dtype=dtype, seed=1),
                            rnnx.RNN(8, 2, nonlinearity="relu", dtype=dtype, seed=2),
                            rnnx.Dense(2, 5, activation="softmax", dtype=dtype, seed=3),
                            many_to_one=True)
    rnnx.export_c(model, tmp_path / "data.c", name="exported")
    (tmp_path / "main.c").write_text(r'''
#include <stdio.h>
#include "rnnx_model.h"
extern const rnnx_model exported;
int main(void) {
    printf("%d %d %d %d %d %d\n", rnnx_model_check(&exported), exported.dtype,
           exported.many_to_one, exported.num_layers, exported.input_size, exported.output_size);
    return 0;
}
''')
    _compile_pedantic(build, tmp_path, "data.c")
    out = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", str(int(dtype == np.float64)), "1", "4", "2", "5"]


def test_ctest_passes(build):
    result = subprocess.run(["ctest", "--output-on-failure"], cwd=build / "build",
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recurrent_stream_equals_python_bit_for_bit(build, tmp_path, dtype):
    layer = rnnx.LSTM(4, 24, num_layers=2, dtype=dtype, seed=5)
    rnnx.save(layer, tmp_path / "lstm.rnnx")
    x = np.random.default_rng(1).standard_normal((40, 4)).astype(dtype)
    got = _stream_c(str(build / "build" / "examples" / "embed" / "rnnx_stream"), x,
                    str(tmp_path / "lstm.rnnx"))
    stream = layer.stream()
    want = np.array([stream.step(x_t) for x_t in x])
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.astype(dtype), want)


def test_default_output_is_float32_exact(build):
    """%.9g prints a float32 so that it reads back as the same float32."""
    binary = str(build / "build" / "examples" / "embed" / "rnnx_stream")
    x = np.random.default_rng(2).standard_normal((20, 3)).astype(np.float32)
    lines = "\n".join(" ".join(map(str, row)) for row in x) + "\n"
    plain = subprocess.run([binary, str(build / "head.rnnx")], input=lines, capture_output=True,
                           text=True, check=True).stdout
    exact = _stream_c(binary, x, str(build / "head.rnnx"))
    parsed = np.array([[float(v) for v in line.split()] for line in plain.splitlines()])
    np.testing.assert_array_equal(parsed.astype(np.float32), exact.astype(np.float32))


def test_model_with_heads_file_and_static_equal_python(build):
    model = head_model()
    x = np.random.default_rng(3).standard_normal((30, 3)).astype(np.float32)
    embed = build / "build" / "examples" / "embed"
    from_file = _stream_c(str(embed / "rnnx_stream"), x, str(build / "head.rnnx"))
    static = _stream_c(str(embed / "rnnx_stream_static"), x)
    twin, python = _python_stream(model, x)
    np.testing.assert_array_equal(from_file, static)       # the file and the C source: one model
    np.testing.assert_array_equal(from_file.astype(np.float32), twin)   # bit for bit
    # Python's Dense (BLAS, scipy's softmax) rounds differently, by a few float32 ulp
    np.testing.assert_allclose(from_file, python, rtol=1e-6, atol=1e-7)
    # and a stream of a many-to-one model ends where the whole-sequence model ends
    np.testing.assert_allclose(from_file[-1], model(x)[0], rtol=1e-5, atol=1e-6)


def token_model(dtype=np.float32):
    """A token model: an Embedding first, so the C library takes int32 ids."""
    return rnnx.Sequential(rnnx.Embedding(13, 5, padding_idx=0, dtype=dtype, seed=31),
                           rnnx.LSTM(5, 16, num_layers=2, dtype=dtype, seed=32),
                           rnnx.Dense(16, 13, activation="softmax", dtype=dtype, seed=33))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_token_model_from_c_equals_python(build, tmp_path, dtype):
    """A token model saved as .rnnx streams ids through rnnx_stream, and exported as C source
    runs whole sequences of int32 ids through rnnx_model_run (-std=c99 -pedantic clean): both
    equal the Python model to float32's/float64's rounding."""
    _require("cc")
    model = token_model(dtype)
    ids = np.random.default_rng(4).integers(0, 13, (25, 3))
    want = model(ids)[0]                                              # (T, B, 13)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    rnnx.save(model, tmp_path / "token.rnnx")
    streamed = _stream_c(str(build / "build" / "examples" / "embed" / "rnnx_stream"),
                         ids[:, :1], str(tmp_path / "token.rnnx"))
    np.testing.assert_allclose(streamed, want[:, 0], rtol=tol, atol=tol)
    rnnx.export_c(model, tmp_path / "token_data.c", name="token")
    T, B = ids.shape
    (tmp_path / "main.c").write_text(r'''
#include <stdio.h>
#include <stdlib.h>
#include "rnnx_model.h"
extern const rnnx_model token;
int main(void) {
    int32_t ids[%d];
    for (int k = 0; k < %d; k++)
        if (scanf("%%d", &ids[k]) != 1)
            return 3;
    size_t bytes = rnnx_model_run_work_size(&token, %d, %d);
    void* work = malloc(bytes);
    static %s y[%d];
    int status = rnnx_model_run(&token, NULL, ids, %d, %d, NULL, NULL, NULL, y, work, bytes);
    for (int k = 0; status == RNNX_OK && k < %d; k++)
        printf("%%a\n", (double)y[k]);
    ids[0] = 13;   /* out of range: refused */
    int refused = rnnx_model_run(&token, NULL, ids, %d, %d, NULL, NULL, NULL, y, work, bytes);
    free(work);
    return status != RNNX_OK ? 1 : refused != RNNX_EINVAL ? 2 : 0;
}
''' % (T * B, T * B, T, B, "double" if dtype == np.float64 else "float", want.size, T, B,
       want.size, T, B))
    _compile_pedantic(build, tmp_path, "token_data.c")
    out = subprocess.run([str(tmp_path / "main")], input=" ".join(map(str, ids.ravel())),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = np.array([float.fromhex(v) for v in out.stdout.split()]).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_bad_input_is_reported(build, tmp_path):
    binary = str(build / "build" / "examples" / "embed" / "rnnx_stream")
    result = subprocess.run([binary, str(build / "head.rnnx")], input="1 2\n", capture_output=True,
                            text=True)
    assert result.returncode == 1 and "line 1: expected 3 numbers, got 2" in result.stderr
    result = subprocess.run([binary, str(build / "head.rnnx")], input="1 2 x\n",
                            capture_output=True, text=True)
    assert result.returncode == 1 and "not a number" in result.stderr
    (tmp_path / "cut.rnnx").write_bytes((build / "head.rnnx").read_bytes()[:100])
    result = subprocess.run([binary, str(tmp_path / "cut.rnnx")], input="", capture_output=True,
                            text=True)
    assert result.returncode == 1 and "truncated" in result.stderr
    bi = rnnx.GRU(3, 2, bidirectional=True, seed=0)
    rnnx.save(bi, tmp_path / "bi.rnnx")
    result = subprocess.run([binary, str(tmp_path / "bi.rnnx")], input="", capture_output=True,
                            text=True)
    assert result.returncode == 1 and "bidirectional" in result.stderr
    rnnx.save(token_model(), tmp_path / "token.rnnx")
    for line, message in (("1.5\n", "expected 1 integer id, got 0 and text that is not an integer"),
                          ("1 2\n", "expected 1 integer id, got 2"),
                          ("13\n", "step: an argument is out of range")):
        result = subprocess.run([binary, str(tmp_path / "token.rnnx")], input=line,
                                capture_output=True, text=True)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    info = subprocess.run([binary, "--info", str(tmp_path / "token.rnnx")], capture_output=True,
                          text=True, check=True).stdout
    assert "input 13 ids (one int32 per line), output 13" in info


def _dump(command, isa=None):
    """test_model --dump's outputs, {(case, output): values}; isa: RNNX_ISA for the run."""
    env = {**os.environ, "RNNX_ISA": isa} if isa else {k: v for k, v in os.environ.items()
                                                       if k != "RNNX_ISA"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return {tuple(line.split()[:2]): np.array([float.fromhex(v) for v in line.split()[2:]])
            for line in result.stdout.splitlines()}


def _bitwise_equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)


def test_aarch64_under_qemu_equals_x86(build, tmp_path):
    """Library, C tests and example cross-compiled with gcc-aarch64-linux-gnu; under
    qemu-aarch64 the C tests pass and the outputs equal x86-64's to 1e-5 relative (float32)
    and 1e-12 (float64).

    Bit for bit, where both sides multiply-add the same way (the kernels add each element's
    products in the same order of k on every ISA): aarch64's default kernels are the NEON
    build, with FMA, and give what x86-64's AVX2 build (FMA) gives; with RNNX_ISA=generic
    (the portable kernels, no FMA: a*b+c rounds twice) aarch64 gives what x86-64's generic
    build gives.  NEON and generic differ in the last bits (FMA rounds once), so RNNX_ISA
    switches the C library's kernels."""
    _require("aarch64-linux-gnu-gcc", "qemu-aarch64")
    arm = tmp_path / "arm"
    log = _build(ROOT, str(arm), f"-DCMAKE_TOOLCHAIN_FILE={os.path.join(ROOT, 'cmake', 'aarch64-linux-gnu.cmake')}",
           f"-DRNNX_EMBED_MODEL_SOURCE={build / 'head_data.c'}")
    assert _warnings(log) == []
    result = subprocess.run(["ctest", "--output-on-failure"], cwd=arm,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    qemu = ("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu")
    x86_model = [str(build / "build" / "tests" / "c" / "test_model"), "--dump", DATA, *CASES]
    arm_model = [*qemu, str(arm / "tests" / "c" / "test_model"), "--dump", DATA, *CASES]
    x86 = _dump(x86_model)
    a64 = _dump(arm_model)
    # a run per case, and a stream per case without a bidirectional layer
    assert x86.keys() == a64.keys()
    assert len(x86) == 2 * len(CASES) - sum("_bi_" in case for case in CASES)
    for key, want in x86.items():
        tol = 1e-12 if "f64" in key[0] else 1e-5
        np.testing.assert_allclose(a64[key], want, rtol=tol, atol=tol, err_msg=str(key))
    # int8 and bfloat16 models (rnnx.quantize): bit for bit between the default kernels of
    # both machines (NEON sdot / AVX-512 VNNI or AVX2 here), and the portable ones
    quantized = [key for key in x86 if key[0].endswith(("_int8", "_bf16"))]
    assert len(quantized) == 2 * 5 - 1
    for key in quantized:
        np.testing.assert_array_equal(a64[key], x86[key], err_msg=str(key))
    a64_generic = _dump(arm_model, "generic")
    assert _bitwise_equal(_dump(arm_model, "neon"), a64), "aarch64 runs NEON by default"
    assert not _bitwise_equal(a64_generic, a64), "RNNX_ISA=generic left the NEON kernels on"
    assert _bitwise_equal(a64_generic, _dump(x86_model, "generic"))
    if "avx2" in rnnx.info()["available_isas"]:
        x86_avx2 = _dump(x86_model, "avx2")
        assert _bitwise_equal(a64, x86_avx2)
        assert all(np.array_equal(x86_avx2[key], x86[key]) for key in quantized)
    x = np.random.default_rng(4).standard_normal((25, 3)).astype(np.float32)
    native = _stream_c(str(build / "build" / "examples" / "embed" / "rnnx_stream_static"), x)
    emulated = _stream_c(str(arm / "examples" / "embed" / "rnnx_stream_static"), x, emulator=qemu)
    np.testing.assert_allclose(emulated, native, rtol=1e-5, atol=1e-6)


def test_install_and_pkg_config(build, tmp_path):
    """cmake --install gives the headers, both libraries and rnnx.pc; a program built with
    `pkg-config --cflags --libs rnnx` alone reads a model and reports the version."""
    _require("pkg-config")
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(build / "build"), "--prefix", str(prefix)],
                   check=True, capture_output=True)
    libdir = next(p for p in (prefix / "lib", prefix / "lib64", *prefix.glob("lib/*"))
                  if (p / "pkgconfig" / "rnnx.pc").exists())
    for header in ("rnnx.h", "rnnx_model.h", "rnnx_version.h"):
        assert (prefix / "include" / header).exists()
    assert (libdir / "librnnx.a").exists() and list(libdir.glob("librnnx.so*"))
    program = tmp_path / "use.c"
    program.write_text(r'''
#include <stdio.h>
#include <stdlib.h>
#include "rnnx_model.h"
int main(int argc, char** argv) {
    size_t bytes = 0;
    rnnx_model m;
    int status = rnnx_model_file_size(argv[1], &bytes);
    void* mem = malloc(bytes);
    if (status == RNNX_OK) status = rnnx_model_from_file(&m, argv[1], mem, bytes);
    if (status != RNNX_OK) { printf("%s\n", rnnx_strerror(status)); return 1; }
    printf("%s %d %d %d %d\n", rnnx_version(), RNNX_VERSION_MAJOR, m.num_layers, m.input_size,
           m.output_size);
    free(mem);
    return argc == 2 ? 0 : 1;
}
''')
    env = dict(os.environ, PKG_CONFIG_PATH=str(libdir / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "--static", "rnnx"], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", str(program), "-o", str(tmp_path / "use"),
                    *flags], check=True)
    run_env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    out = subprocess.run([str(tmp_path / "use"), str(build / "head.rnnx")], capture_output=True,
                         text=True, check=True, env=run_env).stdout.split()
    assert out == [rnnx.__version__, "0", "3", "3", "4"]


def test_help_prints_the_usage(build):
    """--help is not read as a model path: the usage and the options, on stdout, status 0;
    an unknown option is refused with the usage (status 2)."""
    embed = build / "build" / "examples" / "embed"
    for binary, model_arg in ((embed / "rnnx_stream", "MODEL.rnnx"),
                              (embed / "rnnx_stream_static", "compiled in")):
        result = subprocess.run([str(binary), "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and result.stderr == ""
        assert result.stdout.startswith("usage: ") and model_arg in result.stdout
        assert all(option in result.stdout for option in ("--hex", "--time", "--info"))
        result = subprocess.run([str(binary), "--bogus"], capture_output=True, text=True)
        assert result.returncode == 2 and "unknown option --bogus" in result.stderr
