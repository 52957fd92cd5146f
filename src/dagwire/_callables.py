"""What we can learn about a user's callable at build time: its name, async-ness, arity."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from .errors import DagDefinitionError

__all__ = ["callable_name", "describe", "injects_param", "is_async_callable", "takes_argument"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _unwrap(fn: object) -> object:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def callable_name(fn: Callable[..., object]) -> str:
    inner = _unwrap(fn)
    name = getattr(inner, "__qualname__", None)
    if not isinstance(name, str):
        name = type(inner).__qualname__
    return name


def describe(fn: Callable[..., object]) -> str:
    try:
        return f"{callable_name(fn)}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return callable_name(fn)


def is_async_callable(fn: Callable[..., object]) -> bool:
    # Covers `async def`, bound methods and partials of them, and objects whose __call__ is
    # `async def` (a built Dag is one).
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        type(_unwrap(fn)).__call__
    )


def _signature(fn: Callable[..., object]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # builtins without a signature: cannot check, call as given


def injects_param(fn: Callable[..., object], n_inputs: int, *, what: str) -> bool:
    """Whether `fn` takes the invoke parameter as an extra last argument.

    The rule (async-dag's): exactly ``n_inputs + 1`` required positional parameters means
    "inject". Otherwise `fn` must accept exactly the given inputs, or it is rejected here.
    """
    sig = _signature(fn)
    if sig is None:
        return False
    params = list(sig.parameters.values())
    required = sum(1 for p in params if p.kind in _POSITIONAL and p.default is p.empty)
    positional = sum(1 for p in params if p.kind in _POSITIONAL)
    var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    kw_required = [
        p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty
    ]
    problem = None
    if kw_required:
        problem = (
            f"it has required keyword-only parameters {kw_required}, which dagwire never passes"
        )
    elif required == n_inputs + 1:
        return True
    elif required > n_inputs:
        problem = f"it needs {required} positional arguments"
    elif n_inputs > positional and not var_positional:
        problem = f"it accepts at most {positional} positional arguments"
    if problem is None:
        return False
    raise DagDefinitionError(
        f"{what} {describe(fn)} cannot be called with the {n_inputs} input(s) given: {problem}. "
        f"Pass exactly one input per parameter, or one fewer to receive the invoke parameter "
        f"as the last argument."
    )


def takes_argument(hook: Callable[..., object], *, what: str) -> bool:
    """Whether a pre/post hook takes the invoke parameter (one argument) or nothing."""
    sig = _signature(hook)
    if sig is None:
        return True
    try:
        sig.bind(None)
        return True
    except TypeError:
        pass
    try:
        sig.bind()
        return False
    except TypeError:
        raise DagDefinitionError(
            f"{what} hook {describe(hook)} must take the invoke parameter or no argument"
        ) from None
