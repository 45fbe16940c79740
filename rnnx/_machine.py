"""A one-line description of the CPU that figures were measured on, for the examples and the
demo to print beside their timings and scores (floating-point results can differ in the
last bits between ISAs, e.g. AVX2 and AVX-512, and so can a training run's outcome)."""
import os
import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_cpu():
    """The CPU's model name, core count and vector ISA.

    Returns
    -------
    str
        e.g. ``"AMD EPYC, 2 cores, AVX2+FMA (no AVX-512)"``; "unknown" parts where the OS
        does not say (the ISA is read from /proc/cpuinfo, on Linux only).
    """
    model, flags = cpu_model(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    if "avx512f" in flags:
        isa = "AVX-512"
    elif "avx2" in flags:
        isa = "AVX2+FMA (no AVX-512)" if "fma" in flags else "AVX2 (no AVX-512)"
    elif "asimd" in flags:
        isa = "NEON"
    else:
        isa = "ISA unknown"
    return f"{model}, {os.cpu_count()} cores, {isa}"
