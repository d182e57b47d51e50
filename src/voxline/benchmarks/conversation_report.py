"""The conversation benchmark's table and plot: share of replies right per mode, part and category."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from voxline.benchmarks.report import plot_bars


def _cell(row: dict | None) -> str:
    if not row or not row.get("turns"):
        return "-"
    return f"{row['right']}/{row['turns']} ({100 * row['share']:.0f} %)"


def conversation_table(summary: dict) -> Table:
    table = Table(title="Replies right (conversation benchmark)")
    columns = [(mode, part) for mode in summary for part in summary[mode]]
    table.add_column("")
    for mode, part in columns:
        table.add_column(f"{mode} / {part}")
    table.add_row("all", *(_cell(summary[m][p]) for m, p in columns))
    categories = sorted({c for m, p in columns for c in summary[m][p]["by_category"]})
    for category in categories:
        table.add_row(category, *(_cell(summary[m][p]["by_category"].get(category)) for m, p in columns))
    businesses = sorted({b for m, p in columns for b in summary[m][p]["by_business"]})
    for business in businesses:
        table.add_row(business, *(_cell(summary[m][p]["by_business"].get(business)) for m, p in columns))
    table.add_row(
        "v2v p50 / p95 ms",
        *(
            f"{summary[m][p]['v2v_p50_ms']:.0f} / {summary[m][p]['v2v_p95_ms']:.0f}"
            if summary[m][p]["v2v_p50_ms"] is not None
            else "-"
            for m, p in columns
        ),
    )
    return table


def plot_conversation(path: Path, summary: dict) -> Path:
    values = {
        f"{mode} / {part} / {category}": round(100 * row["share"], 1)
        for mode in summary
        for part in summary[mode]
        for category, row in summary[mode][part]["by_category"].items()
        if row["share"] is not None
    }
    return plot_bars(path, "Replies right, % (conversation benchmark)", values, "% right")
