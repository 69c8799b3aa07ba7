"""Safe NumPy expressions in x0, x1, x2 for densities and manufactured solutions.

The text is parsed with `ast` and every node is checked against a whitelist before
anything is compiled, so attribute access, subscripts, calls to anything but the listed
functions, and dunder names are refused without being evaluated.
"""
from __future__ import annotations

import ast
import math

import numpy as np

from .errors import CaseError

FUNCTIONS = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log,
    "sqrt": np.sqrt, "abs": np.abs, "tanh": np.tanh, "cosh": np.cosh, "sinh": np.sinh,
    "arctan": np.arctan, "minimum": np.minimum, "maximum": np.maximum, "where": np.where,
}
# Positional arguments per function: more would reach NumPy's `out`/`where` parameters
# (e.g. exp(x0, x1) writing into the evaluation points).
ARITY = {name: 2 if name in ("minimum", "maximum") else 3 if name == "where" else 1
         for name in FUNCTIONS}
CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Load,
    ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.USub, ast.UAdd,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq,
)


class Expression:
    """A validated expression f(x0, .., x_{dim-1}) evaluated with NumPy broadcasting."""

    def __init__(self, text: str, dim: int, *, table: str | None = None, key: str | None = None):
        self.text = text
        self.dim = dim
        variables = {f"x{k}" for k in range(dim)}
        if not isinstance(text, str) or not text.strip():
            raise CaseError("expression must be a non-empty string", table=table, key=key)
        if len(text) > 2000:
            raise CaseError("expression is longer than 2000 characters", table=table, key=key)
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise CaseError(f"cannot parse expression {text!r}: {exc.msg}", table=table, key=key)
        except (RecursionError, MemoryError):
            raise CaseError("expression is nested too deeply", table=table, key=key) from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise CaseError(
                    f"expression {text!r} uses {type(node).__name__}, which is not allowed "
                    "(allowed: arithmetic, comparisons, numbers, x0..x2 and the functions "
                    f"{', '.join(sorted(FUNCTIONS))})", table=table, key=key)
            if isinstance(node, ast.Name):
                if node.id not in variables and node.id not in FUNCTIONS and node.id not in CONSTANTS:
                    raise CaseError(
                        f"name {node.id!r} is not allowed in expression {text!r} (allowed: "
                        f"{', '.join(sorted(variables))}, pi, e and the whitelisted functions)",
                        table=table, key=key)
            if isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                    raise CaseError(f"calling anything but {', '.join(sorted(FUNCTIONS))} is not "
                                    f"allowed in {text!r}", table=table, key=key)
                if node.keywords:
                    raise CaseError(f"keyword arguments are not allowed in {text!r}",
                                    table=table, key=key)
                if len(node.args) != ARITY[node.func.id]:
                    raise CaseError(f"{node.func.id} takes {ARITY[node.func.id]} argument(s) in {text!r}",
                                    table=table, key=key)
            if isinstance(node, ast.Constant):
                if not isinstance(node.value, (int, float)):
                    raise CaseError(f"only numeric constants are allowed in {text!r}",
                                    table=table, key=key)
                # Floats, not Python ints: 9**9**9**9 in integers would run (almost) forever.
                try:
                    node.value = float(node.value)
                except OverflowError:
                    raise CaseError(f"number too large in {text!r}", table=table, key=key) from None
        try:
            self._code = compile(tree, "<expression>", "eval")
        except (RecursionError, MemoryError):
            raise CaseError("expression is nested too deeply", table=table, key=key) from None
        self._table, self._key = table, key
        # Evaluate once at a harmless point to catch wrong arities early.
        try:
            self(np.zeros((1, dim)))
        except Exception as exc:  # noqa: BLE001 - any evaluation failure is a user error
            raise CaseError(f"cannot evaluate expression {text!r}: {exc}", table=table, key=key)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=float)
        scope = {"__builtins__": {}}
        scope.update(FUNCTIONS)
        scope.update(CONSTANTS)
        for k in range(self.dim):
            scope[f"x{k}"] = points[..., k]
        with np.errstate(all="ignore"):
            value = eval(self._code, scope)  # noqa: S307 - AST whitelisted above
        value = np.asarray(value, dtype=float)
        return np.broadcast_to(value, points.shape[:-1]).copy()
