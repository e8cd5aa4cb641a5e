"""A PNG of the latency distributions (needs the optional `bench` extra: matplotlib)."""

from __future__ import annotations

from pathlib import Path


def plot_latencies(samples: dict[str, list[float]], path: Path, title: str) -> str | None:
    """Empirical CDFs, one line per figure, on a log time axis. None, or why not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a headless device or CI
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install -e '.[bench]'"
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for name, values in samples.items():
        ordered = sorted(values)
        n = len(ordered)
        ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=f"{name} (n={n})")
    ax.axvline(2, color="grey", linestyle="--", linewidth=1)
    ax.text(2, 0.02, " 2 ms target (p50)", color="grey", fontsize=8)
    ax.axvline(10, color="grey", linestyle=":", linewidth=1)
    ax.text(10, 0.5, " 10 ms target (p99, relay)", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of samples at or below")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None
