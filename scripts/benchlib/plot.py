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


def plot_memory(results: dict, path: Path) -> str | None:
    """Resident memory over time under each flood, the agent beside baresip (first run)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install -e '.[bench]'"
    run = results["runs"][0]
    rates = sorted(run["agent"]["floods"], key=int)
    fig, axes = plt.subplots(1, len(rates), figsize=(12, 4.2), dpi=110, sharey=True)
    for ax, rate in zip(axes, rates, strict=True):
        for who, colour in (("agent", "tab:blue"), ("baresip", "tab:orange")):
            flood = run.get(who, {}).get("floods", {}).get(rate)
            if flood is None:
                continue
            times, rss = zip(*flood["trace"], strict=True)
            label = "sipagent" if who == "agent" else "baresip 1.0"
            ax.plot(times, rss, color=colour, label=label, linewidth=1.2)
            ax.axvline(flood["flood_ended_s"], color=colour, linestyle=":", linewidth=0.8)
        ax.axhline(100, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{rate} MESSAGE/s for 10 s via Kamailio", fontsize=9)
        ax.set_xlabel("seconds since the flood started")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("resident memory (MB)")
    axes[0].text(0.5, 101, "100 MB target (2000/s)", color="grey", fontsize=7)
    axes[-1].legend(fontsize=8, loc="upper right")
    binding = results.get("binding", "")
    fig.suptitle(
        f"sipagent{f' ({binding})' if binding else ''} and baresip under MESSAGE floods, "
        f"{results['machine']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None
