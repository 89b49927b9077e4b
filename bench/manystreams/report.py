"""The report of `bench/many_streams.py`: the table and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['backend']}: medians over rounds (gap excess = gap p99 - interval)")
    print(
        f"{'N':>5} {'variant':>10} {'err':>4} {'TTFE p50':>9} {'1st p99':>8} {'gap p50':>8} "
        f"{'gap p99':>8} {'excess':>7} {'late p99':>9} {'total':>6} {'cpu/chunk':>9} "
        f"{'RSS MiB':>13} {'KiB/strm':>8} {'gen+up cpu':>10}"
    )
    for row in result["rows"]:
        for name in ("direct", "turnstream"):
            v = row[name]
            rss = (
                f"{v['server_rss_before_mib']:.0f}->{v['server_rss_peak_mib']:.0f}"
                if name == "turnstream"
                else "-"
            )
            per = f"{v['server_rss_per_stream_kib']:.0f}" if name == "turnstream" else "-"
            cpu = f"{v['server_cpu_per_chunk_ms']:.3f}" if name == "turnstream" else "-"
            print(
                f"{row['streams']:>5} {name:>10} {v['errors_total']:>4} {v['ttfe_p50_ms']:>8.0f}m "
                f"{v['first_content_p99_ms']:>7.0f}m {v['gap_p50_ms']:>7.0f}m "
                f"{v['gap_p99_ms']:>7.0f}m {v['gap_excess_p99_ms']:>6.0f}m "
                f"{v['lateness_p99_ms']:>8.0f}m {v['total_p50_s']:>5.2f}s {cpu:>9} {rss:>13} "
                f"{per:>8} {v['client_cpu_s'] + v['upstream_cpu_s']:>9.1f}s"
            )
            for sample in v["error_samples"]:
                print(f"{'':>17} error: {sample}")


def plot(results: list[dict[str, Any]], interval_ms: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for result in results:
        for name, style in (("direct", "--"), ("turnstream", "-")):
            label = (
                f"{name} ({result['backend']})"
                if name == "turnstream"
                else f"direct ({result['backend']} run)"
            )
            ns = [row["streams"] for row in result["rows"]]
            fields = ("gap_excess_p99_ms", "first_content_p99_ms", "ttfe_p50_ms")
            for axis, field in zip(axes, fields, strict=True):
                axis.plot(
                    ns, [row[name][field] for row in result["rows"]], style, marker="o", label=label
                )
    axes[0].axhline(50, color="grey", linewidth=0.8)
    axes[0].set_title(f"p99 gap beyond the {interval_ms:.0f} ms pace (goal < 50 ms)")
    axes[1].set_title("p99 time to first content chunk")
    axes[2].set_title("median time to first event")
    for ax in axes[1:]:
        ax.set_yscale("log")  # direct and turnstream are orders of magnitude apart
    for ax in axes:
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("ms")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
