"""The demo's closing summary and its chart (throughput and lag over the run)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def chart(samples: list[dict[str, float]], path: Path) -> Path:
    """Plot accepted and loaded events per second, and the lag, against run time."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    t = [s["t"] for s in samples]

    def rate(key: str) -> list[float]:
        out = [0.0]
        for a, b in pairwise(samples):
            out.append((b[key] - a[key]) / max(1e-9, b["t"] - a["t"]))
        return out[: len(samples)]

    top.plot(t, rate("accepted"), label="accepted by the gateway")
    top.plot(t, rate("loaded"), label="loaded into ClickHouse")
    top.plot(t, rate("cdc"), label="CDC changes loaded")
    top.set_ylabel("events / s")
    top.legend(loc="upper right")
    top.set_title("Sluicegate demo: throughput and lag")
    bottom.plot(t, [s["lag"] for s in samples], color="tab:red")
    bottom.set_ylabel("lag (events)")
    bottom.set_xlabel("seconds since the workload started")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_summary(summary: dict[str, Any]) -> None:
    rows = summary["rows_in_clickhouse"]
    training = summary["training_set"]
    lines = [
        (
            "events accepted",
            f"{summary['events_accepted']:,} ({summary['throughput_events_per_s']:,} events/s)",
        ),
        (
            "events rejected",
            f"{summary['events_rejected']:,} (listed with every violation; see /v1/rejections/<subject>)",
        ),
        (
            "CDC changes",
            f"{summary['cdc_changes']:,} ({summary['cdc_rows_seeded']:,} snapshot rows + live changes)",
        ),
        (
            "rows in ClickHouse",
            f"{rows['http'] + rows['cdc']:,} in events ({rows['http']:,} http, {rows['cdc']:,} cdc)",
        ),
        (
            "upvotes v1 / v2",
            f"{summary['upvotes']['posted_v1']:,} posted as v1, {summary['upvotes']['posted_v2']:,} as v2; "
            f"{summary['upvotes']['v1_upcast_to_v2']:,} v1 events loaded after the evolution landed as v2",
        ),
        ("dead letters", str(summary["dead_letters"])),
        ("max lag", f"{summary['max_lag_events']:,} events"),
        (
            "freshness",
            f"{summary['freshness_ms'].get('p50', '?')} ms median, accept to online read",
        ),
        (
            "training set",
            f"{training['rows']:,} rows x {len(training['columns'])} columns -> {training['path']}",
        ),
        ("chart", summary["chart"]),
        (
            "console",
            f"{summary['console']['url']} (screenshots: "
            f"{', '.join(summary['console']['screenshots'].values()) or 'none'})",
        ),
        ("wall time", f"{summary['wall_time_s']} s"),
    ]
    print("\nSummary")
    for name, value in lines:
        print(f"  {name:<20} {value}")
