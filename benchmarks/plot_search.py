"""Draw benchmarks/search.json's median times as a horizontal bar chart.

One group of bars per workload, one bar per contender, in seconds on a log
scale, each annotated with its ratio to the group's first bar (skdnn's
batched contender), into docs/_static/search_timings.png.

Run: ``python benchmarks/plot_search.py`` after ``python benchmarks/search.py``.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "docs", "_static", "search_timings.png")


def main():
    with open(os.path.join(HERE, "search.json")) as f:
        results = json.load(f)["results"]
    labels, seconds, ratios, colors, y = [], [], [], [], []
    for i, (name, row) in enumerate(results.items()):
        batched = next(iter(row["seconds"].values()))
        for contender, value in row["seconds"].items():
            labels.append(f"{name}: {contender}")
            seconds.append(value)
            ratios.append(value / batched)
            colors.append(f"C{i}")
            # Top to bottom in the JSON's order, a gap between workloads.
            y.append(-len(y) - 0.6 * i)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 1), layout="constrained")
    ax.barh(y, seconds, color=colors)
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    ax.set_xlabel("median seconds (log scale)")
    for row, value, ratio in zip(y, seconds, ratios, strict=True):
        ax.annotate(f" {ratio:.1f}x", (value, row), va="center", fontsize=9)
    ax.set_xlim(right=max(seconds) * 3)
    ax.set_title("Batched searches and curves against scikit-learn's")
    fig.savefig(OUT, dpi=100)


if __name__ == "__main__":
    main()
