"""python -m rnnx and the rnnx console command: --version, and a clean usage error (exit
status 2, a message naming the option, no traceback) for every bad value or combination."""
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

import rnnx
from rnnx.__main__ import parse_args

BAD = {
    ("--lr", "nan"): "--lr: must be a finite number > 0, got 'nan'",
    ("--lr", "inf"): "--lr: must be a finite number > 0, got 'inf'",
    ("--lr", "-1"): "--lr: must be a finite number > 0",
    ("--lr", "0"): "--lr: must be a finite number > 0",
    ("--lr", "fast"): "--lr: must be a number, got 'fast'",
    ("--clip-norm", "0"): "--clip-norm: must be a finite number > 0",
    ("--temperature", "-0.5"): "--temperature: must be a finite number > 0",
    ("--updates", "0"): "--updates: must be >= 1, got 0",
    ("--updates", "-5"): "--updates: must be >= 1, got -5",
    ("--updates", "2.5"): "--updates: must be an integer, got '2.5'",
    ("--hidden", "0"): "--hidden: must be >= 1",
    ("--bptt", "-1"): "--bptt: must be >= 1",
    ("--streams", "0"): "--streams: must be >= 1",
    ("--sample-length", "0"): "--sample-length: must be >= 1",
    ("--seed", "-1"): "--seed: must be >= 0",
    ("--shape", "1,2"): "--shape: must be four positive integers T,B,I,H, got '1,2'",
    ("--shape", "0,1,1,1"): "--shape: must be four positive integers",
    ("--shape", "a,b,c,d"): "--shape: must be four positive integers",
    ("--cell", "TRANSFORMER"): "--cell: invalid choice",
    ("--dtype", "float16"): "--dtype: invalid choice",
    ("--no-benchmark", "--benchmark-only"): "--benchmark-only: not allowed with argument "
                                            "--no-benchmark",
    ("--seconds", "5"): "unrecognized arguments: --seconds",
}


@pytest.mark.parametrize("argv", list(BAD), ids=[" ".join(a) for a in BAD])
def test_bad_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m rnnx") and BAD[argv] in err


def test_good_values_parse():
    args = parse_args(["--lr", "1e-2", "--updates", "7", "--shape", "3,2,1,4", "--seed", "0",
                       "--no-benchmark"])
    assert (args.lr, args.updates, args.shape, args.seed, args.no_benchmark) == (
        0.01, 7, (3, 2, 1, 4), 0, True)


def run(command, tmp_path):
    # from an empty folder: from the repository root `python -m` would find the source folder
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def console_command():
    """The rnnx console script that pip installed for this Python: in its scheme's scripts
    folder (a venv's bin, /usr/local/bin on Debian), beside the interpreter, or in the user
    scheme's (pip install --user)."""
    name = "rnnx.exe" if os.name == "nt" else "rnnx"
    folders = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable),
               sysconfig.get_path("scripts", f"{os.name}_user")]
    for folder in folders:
        if folder and os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return shutil.which(name) or os.path.join(folders[0], name)


def test_version_and_usage_errors_in_a_real_process(tmp_path):
    result = run([sys.executable, "-m", "rnnx", "--version"], tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"rnnx {rnnx.__version__}"
    bad = run([sys.executable, "-m", "rnnx", "--lr", "nan"], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "argument --lr: must be a finite number > 0, got 'nan'" in bad.stderr
    both = run([sys.executable, "-m", "rnnx", "--no-benchmark", "--benchmark-only"], tmp_path)
    assert both.returncode == 2 and "not allowed with" in both.stderr and both.stdout == ""


def test_console_command(tmp_path):
    command = console_command()
    assert os.path.exists(command), f"pip install -e . installs the rnnx command at {command}"
    result = run([command, "--version"], tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"rnnx {rnnx.__version__}"
    bad = run([command, "--updates", "0"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("usage: rnnx ")
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("example, argv, message", [
    ("char_model", ["--updates", "0"], "--updates must be >= 1, got 0"),
    ("char_model", ["--temperature", "nan"], "--temperature must be a finite number > 0"),
    ("char_model", ["--corpus", "no/such/file.txt"], "--corpus must be bundled, csrc or a text"),
    ("pulse", ["--seed", "-3"], "--seed must be >= 0, got -3"),
])
def test_examples_give_usage_errors(example, argv, message, tmp_path):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", f"{example}.py")
    result = run([sys.executable, path, *argv], tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
