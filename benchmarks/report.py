"""The results as a text table (Markdown pipe syntax), a JSON file and a PNG chart.

A result is {"meta": {...}, "rows": [...]}, rows as built by runner.run_entry.
"""

import json

CELL_LABELS = {"rnn": "RNN-tanh", "lstm": "LSTM", "gru": "GRU"}


def _significant(value, digits=3):
    """3 significant digits without an exponent: 0.0123, 1.23, 123, 12300."""
    if value >= 10 ** (digits - 1):
        return f"{value:.0f}"
    return f"{value:.{digits}g}" if value >= 1e-3 else f"{value:.2e}"


def _time_cell(row, peer, scale):
    if peer not in row["seconds"]:
        return "-"
    text = _significant(row["seconds"][peer] * scale)
    if peer != "rnnx":
        text += f" ({row['ratio_to_rnnx'][peer]:.2f}x)"
    return text


def _markdown(header, lines):
    widths = [max(len(str(line[k])) for line in [header] + lines) for k in range(len(header))]
    render = lambda line: "| " + " | ".join(str(v).ljust(w) for v, w in zip(line, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(header), rule] + [render(line) for line in lines])


def table(result):
    """The printable report: a header with the machine figures, then two tables."""
    meta = result["meta"]
    peers = meta["peers"]
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    threads = meta["threads"] if isinstance(meta["threads"], list) else [meta["threads"]]
    out = [
        f"rnnx benchmark: float32, {','.join(map(str, threads))} thread(s), "
        f"{'quick' if meta['quick'] else 'full'} grid"
        + (", next to one busy process" if meta.get("under_load") else ""),
        f"CPU: {meta.get('cpu', '?')}; rnnx kernels: {meta.get('isa', '?')} "
        f"(available: {', '.join(meta.get('available_isas', []))})",
        f"sgemm peak ({meta['sgemm_size']}^3, scipy BLAS, same threads): {meta['sgemm_gflops']:.1f} GFLOP/s"
        + _of_fma(meta, meta["sgemm_gflops"]),
        f"rnnx's GEMM alone (the same product, csrc/kernels/gemm_packed.c, same threads): "
        f"{meta['rnnx_gemm_gflops']:.1f} GFLOP/s" + _of_fma(meta, meta["rnnx_gemm_gflops"]),
        "FMA peak (register-only loop, benchmarks/fma_peak.c, same threads): "
        + (", ".join(f"{isa} {gflops:.1f}" for isa, gflops in meta["fma_gflops"].items() if gflops)
           or "not measured") + " GFLOP/s" + (f" ({meta['fma_note']})" if meta.get("fma_note") else ""),
        ("every engine in one process" if meta.get("same_process")
         else "each engine in its own process"),
        f"versions: {versions}",
    ]
    for name, reason in meta["missing_peers"].items():
        out.append(f"skipped {name}: {reason}")
    out.append("(Nx) = peer time / rnnx time, above 1 means rnnx is faster. GFLOP/s counts "
               "2 * multiply-adds of the matrix products, training = 3 x forward; % FMA = of the FMA "
               f"peak of rnnx's ISA ({meta.get('isa', '?')}), % sgemm = of the sgemm peak.")
    shares = [p for p in ("rnnx", "torch") if p in peers]
    for kind, title, unit, scale in (
            ("sequence", "Sequences: median milliseconds per call", "ms", 1e3),
            ("stream", "Streaming: median microseconds per step (one step per call)", "us", 1e6)):
        rows = [row for row in result["rows"] if row["kind"] == kind]
        if not rows:
            continue
        shape = ["cell", "mode", "B", "H", "I", "T"] if kind == "sequence" else ["cell", "B", "H", "I"]
        header = (["shapes"] + shape + ["threads"] + [f"{p} {unit}" for p in peers] + ["rnnx GFLOP/s"]
                  + [f"{p} % FMA" for p in shares] + ["rnnx % sgemm"])
        lines = [
            [row.get("source", "grid"), CELL_LABELS[row["cell"]]]
            + [row[field] for field in shape[1:]] + [row.get("threads", "")]
            + [_time_cell(row, peer, scale) for peer in peers]
            + [f"{row['gflops']['rnnx']:.2f}"]
            + [_share(row.get("fma_peak_fraction"), p) for p in shares]
            + [_share(row["peak_fraction"], "rnnx")]
            for row in rows
        ]
        out += ["", title, _markdown(header, lines)]
    return "\n".join(out)


def _of_fma(meta, gflops):
    """", N% of the FMA peak" of rnnx's ISA, or nothing where the peak was not measured."""
    peak = meta["fma_gflops"].get(meta.get("isa"))
    return f", {100 * gflops / peak:.0f}% of the {meta['isa']} FMA peak" if peak else ""


def _share(fractions, peer):
    if not fractions or peer not in fractions:
        return "-"
    return f"{100 * fractions[peer]:.1f}%"


def write_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def _row_label(row):
    threads = f" @{row['threads']}t" if "threads" in row else ""
    if row["kind"] == "stream":
        return f"{CELL_LABELS[row['cell']]} stream H={row['H']} I={row['I']}{threads}"
    shape = f"{row['B']}x{row['H']}x{row['I']}x{row['T']}"
    return f"{CELL_LABELS[row['cell']]} {row['mode'][:5]} {shape}{threads}"


def plot(result, path):
    """Bar chart of every peer's time relative to rnnx (log scale), one bar group per row
    (and per thread count, each row labelled @Nt)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    peers = [p for p in result["meta"]["peers"] if p != "rnnx"]
    width = 0.8 / max(1, len(peers))
    figure, axes = plt.subplots(figsize=(max(8, 0.45 * len(rows)), 5.5))
    for k, peer in enumerate(peers):
        positions = [i + (k - (len(peers) - 1) / 2) * width for i, row in enumerate(rows) if peer in row["seconds"]]
        ratios = [row["ratio_to_rnnx"][peer] for row in rows if peer in row["seconds"]]
        axes.bar(positions, ratios, width, label=peer)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_ylabel("time / rnnx time (above 1: rnnx faster)")
    axes.set_xticks(range(len(rows)), [_row_label(row) for row in rows], rotation=70, ha="right", fontsize=7)
    meta = result["meta"]
    threads = meta["threads"] if isinstance(meta["threads"], list) else [meta["threads"]]
    axes.set_title(f"rnnx ({meta.get('isa', '?')}) vs peers, float32, {','.join(map(str, threads))} "
                   f"thread(s){', under load' if meta.get('under_load') else ''}, B x H x I x T", pad=28)
    axes.legend(ncol=len(peers), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
