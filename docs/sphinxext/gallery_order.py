"""The order of the gallery's examples: reading order, not the alphabet's."""

from pathlib import Path

# File names in examples/, in reading order. An example missing here comes
# after these, by file name.
ORDER = [
    "plot_xor.py",
    "plot_hidden_layers.py",
    "plot_dropout.py",
    "plot_tuning.py",
    "plot_batched_search.py",
    "plot_model_selection.py",
    "plot_distributed.py",
    "plot_dataframe.py",
    "plot_network.py",
    "plot_defaults.py",
    "plot_regression_playground.py",
    "plot_regression_dropout.py",
]


class ExampleOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        if name in ORDER:
            return (ORDER.index(name), name)
        return (len(ORDER), name)

    def __repr__(self):
        return f"<{type(self).__name__}>"
