"""skdnn's code stays in pieces one can read: no class or function outgrows
its limit (issue 15: about 400 lines of code a class, about 60 a function)."""

import ast
from pathlib import Path

import skdnn

PACKAGE = Path(skdnn.__file__).parent
MAX_CLASS_LINES = 420
MAX_FUNCTION_LINES = 65


def _code_lines(lines, node):
    """Lines of ``node`` that hold code: not blank, comment or docstring."""
    docstrings = set()
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if (
            isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(
        1
        for number in range(node.lineno, node.end_lineno + 1)
        if number not in docstrings
        and lines[number - 1].strip()
        and not lines[number - 1].strip().startswith("#")
    )


def _sizes():
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                kind, limit = "class", MAX_CLASS_LINES
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                kind, limit = "function", MAX_FUNCTION_LINES
            else:
                continue
            name = f"{path.relative_to(PACKAGE.parent)}: {kind} {node.name}"
            yield name, _code_lines(lines, node), limit


def test_the_size_count_skips_docstrings_comments_and_blank_lines():
    source = 'def f():\n    """Doc.\n\n    More.\n    """\n    # why\n\n    return 1\n'
    (node,) = ast.parse(source).body
    assert _code_lines(source.splitlines(), node) == 2


def test_no_class_or_function_outgrows_its_limit():
    sizes = list(_sizes())
    assert len(sizes) > 100  # the whole package was read
    too_long = [f"{name} ({n} > {limit})" for name, n, limit in sizes if n > limit]
    assert not too_long, "split these:\n" + "\n".join(too_long)
