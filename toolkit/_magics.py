"""IPython magics that ``%load_ext toolkit`` registers.

``%%skip_for_export`` (TFX's name) runs its cell as usual in the notebook;
``toolkit export`` drops the cell from the production pipeline (see
:mod:`toolkit.exporter.analysis`). Use it for exploration: views, ad-hoc checks,
reading files the pipeline does not need.
"""
from __future__ import annotations

import ast
from typing import Any

#: the cell magic's name, as the exporter recognises it
SKIP_FOR_EXPORT = "skip_for_export"


def register(ipython: Any) -> None:
    """Register the toolkit's magics with the IPython shell ``ipython``."""

    def skip_for_export(line: str, cell: str) -> Any:
        """Run this cell in the notebook; `toolkit export` leaves it out of the pipeline."""
        return run_cell_body(ipython, cell)

    ipython.register_magic_function(skip_for_export, magic_kind="cell",
                                    magic_name=SKIP_FOR_EXPORT)


def run_cell_body(ipython: Any, cell: str) -> Any:
    """Run ``cell`` in the user's namespace as a cell runs, and return the value of its
    last line when that is an expression (the notebook shows it as the cell's result).
    Errors propagate, so the cell fails as it would without the magic."""
    source = ipython.transform_cell(cell)
    tree = ast.parse(source, filename="<skip_for_export>")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    namespace = ipython.user_ns
    if tree.body:
        exec(compile(tree, "<skip_for_export>", "exec"), namespace)
    if last is not None:
        return eval(compile(last, "<skip_for_export>", "eval"), namespace)
    return None
