"""The Playground's colours: orange for negative or class 0, blue for positive."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

ORANGE = "#f59322"
BLUE = "#0877bd"
NEUTRAL = "#ffffff"


def diverging_cmap():
    """Orange through white to blue; builds a matplotlib colormap, so call late."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "skdnn_playground", [ORANGE, NEUTRAL, BLUE]
    )
