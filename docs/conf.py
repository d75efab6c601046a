"""Sphinx configuration for the skdnn documentation.

Built by ``tox -e docs`` (``sphinx-build -W``: every warning fails the build).
The build reads nothing from the network: no intersphinx inventories are
fetched, and links to other projects' documentation are plain hyperlinks.
"""

import sys
from pathlib import Path

import skdnn

# docs/sphinxext holds the gallery's ordering of its examples.
sys.path.insert(0, str(Path(__file__).parent / "sphinxext"))

project = "skdnn"
copyright = "2026, the skdnn developers"
author = "the skdnn developers"
version = release = skdnn.__version__

extensions = [
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "sphinxext"]

# ---------------------------------------------------------------- API pages
autosummary_generate = True
# Methods skdnn defines are documented on the class's page; those inherited
# from scikit-learn (get_params, score, the metadata-routing set_*_request
# methods) are not: their docstrings cross-reference labels of scikit-learn's
# own docs, which this build cannot resolve without the network.
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "exclude-members": "set_fit_request, set_partial_fit_request, set_score_request",
}
autodoc_typehints = "none"
# "fit()" rather than "DNNClassifier.fit()" in the page's table of contents.
toc_object_entries_show_parents = "hide"
numpydoc_show_inherited_class_members = False
# The Methods table links to the methods documented on the same page.
numpydoc_class_members_toctree = False

# ------------------------------------------------------------------ gallery
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # Every example runs at every build, not only those that changed: the
    # gallery shows what the current skdnn does.
    "run_stale_examples": True,
    "within_subsection_order": "gallery_order.ExampleOrder",
    # "Examples using skdnn.X" on each API page.
    "doc_module": ("skdnn",),
    "backreferences_dir": "generated/backreferences",
    "min_reported_time": 0,
    "remove_config_comments": True,
    # A cell ending in a plotting call shows its figure; the repr of the
    # returned matplotlib artist or Display object would only add noise.
    # DataFrames and estimators still show theirs.
    "ignore_repr_types": r"matplotlib|Display'",
    "show_memory": False,
}

# ------------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"skdnn {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "logo": {"text": "skdnn"},
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": {"**": ["page-toc"], "index": []},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {
    # Single pages need no section navigation. The examples' code needs the
    # width more than the list of examples, which their "Next" and
    # "Previous" links and the gallery's index give.
    "index": [],
    "install": [],
    "getting_started": [],
    "changelog": [],
    "auto_examples/*": [],
}
html_show_sourcelink = False
