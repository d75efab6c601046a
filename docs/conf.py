"""Sphinx configuration for the skdnn documentation."""

import skdnn

project = "skdnn"
copyright = "2026, the skdnn developers"
author = "the skdnn developers"
version = release = skdnn.__version__

extensions = [
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
]
autosummary_generate = True
templates_path = ["_templates"]
# numpydoc's Methods table lists only what skdnn defines: the docstrings
# inherited from scikit-learn cross-reference labels of scikit-learn's own docs.
numpydoc_show_inherited_class_members = False
# The Methods table summarises; it links to no per-method pages (a stub site).
numpydoc_class_members_toctree = False

exclude_patterns = ["_build"]

html_theme = "pydata_sphinx_theme"
