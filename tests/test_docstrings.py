"""Every public object of skdnn has a valid numpydoc docstring."""

import inspect

import pytest
from numpydoc.validate import validate

import skdnn
import skdnn.datasets
import skdnn.inspection
import skdnn.io
import skdnn.model_selection
import skdnn.playground

PUBLIC_MODULES = [
    skdnn,
    skdnn.datasets,
    skdnn.inspection,
    skdnn.io,
    skdnn.model_selection,
    skdnn.playground,
]

# numpydoc's checks that scikit-learn also leaves out: a See Also section and
# an extended summary on every method, and an Examples section on methods
# (the class's Examples show them in use).
IGNORED = {"SA01", "ES01", "GL08", "RT02"}
IGNORED_FOR_METHODS = IGNORED | {"EX01"}


def _public_objects():
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            path = f"{module.__name__}.{name}"
            yield path, IGNORED
            if inspect.isclass(obj):
                for attr in vars(obj):
                    # getattr, not vars: available_if wraps partial_fit in a
                    # descriptor that yields the method.
                    if not attr.startswith("_") and callable(getattr(obj, attr)):
                        yield f"{path}.{attr}", IGNORED_FOR_METHODS


@pytest.mark.parametrize("name, ignored", list(_public_objects()))
def test_docstring_is_valid_numpydoc(name, ignored):
    errors = [
        f"{code}: {message}"
        for code, message in validate(name)["errors"]
        if code not in ignored
    ]
    assert not errors, "\n".join(errors)
