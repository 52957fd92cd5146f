"""Every public name of `dagwire.__all__` is documented where `help()` shows it.

Walks each exported class, its public methods and properties (those defined by dagwire,
inherited ones included), and each exported function. A new public name without a docstring
fails here. Docstrings never point at the SPEC, which users do not have.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterator
from typing import Any, cast

import pytest

import dagwire
from dagwire import Dag

# The options a user can pass (what the typed overloads accept).
NODE_OPTIONS = (
    "name",
    "after",
    "timeout",
    "retry",
    "fallback",
    "breaker",
    "limiter",
    "executor",
    "pre",
    "post",
    "tags",
    "cleanup_timeout",
    "cache",
)
RESOURCE_OPTIONS = (*(o for o in NODE_OPTIONS if o != "cache"), "release")

# Special methods whose behaviour a user relies on and so must find documented.
DOCUMENTED_DUNDERS = ("__call__", "__getitem__")


def own_doc(obj: object) -> str:
    doc = obj.__doc__ if not isinstance(obj, property) else (obj.__doc__ or "")
    return (doc or "").strip()


def is_generated_doc(cls: type, doc: str) -> bool:
    # dataclasses write "Name(field: type, ...)" when a class has no docstring; enums and
    # exceptions inherit their base's.
    if doc.startswith(f"{cls.__name__}("):
        return True
    return any(doc == (base.__doc__ or "").strip() for base in cls.__mro__[1:])


def public_members(cls: type) -> Iterator[tuple[str, object]]:
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("dagwire"):
            continue
        attr: object
        for name, attr in vars(klass).items():
            if name in seen or (name.startswith("_") and name not in DOCUMENTED_DUNDERS):
                continue
            if isinstance(klass, enum.EnumMeta) and isinstance(attr, klass):
                continue  # an enum member, documented by the class
            if isinstance(attr, classmethod | staticmethod):
                attr = cast(Any, attr).__func__
            if inspect.isfunction(attr) or isinstance(attr, property):
                seen.add(name)
                yield f"{cls.__name__}.{name}", attr


def documented() -> Iterator[tuple[str, object]]:
    yield "dagwire", dagwire
    for name in dagwire.__all__:
        obj = getattr(dagwire, name)
        yield name, obj
        if isinstance(obj, type):
            yield from public_members(obj)


ITEMS = list(documented())


def dag_method(name: str) -> Any:
    """`Dag.<name>` as help() finds it (untyped: Dag's methods are generic over P)."""
    return inspect.getattr_static(Dag, name)


def test_the_walk_sees_the_api() -> None:
    names = {name for name, _ in ITEMS}
    for expected in ("Dag.add_node", "Dag.invoke", "Node.tags", "ExecutionResult.__getitem__"):
        assert expected in names
    assert len(ITEMS) > 50


@pytest.mark.parametrize(("name", "obj"), ITEMS, ids=[name for name, _ in ITEMS])
def test_has_a_docstring(name: str, obj: object) -> None:
    doc = own_doc(obj)
    assert doc, f"{name} has no docstring"
    if isinstance(obj, type):
        assert not is_generated_doc(obj, doc), f"{name} has no docstring of its own"
    assert "SPEC" not in doc, f"{name}'s docstring points at the SPEC, which users do not have"


@pytest.mark.parametrize(
    ("method", "options"),
    [("add_node", NODE_OPTIONS), ("add_resource", RESOURCE_OPTIONS)],
    ids=["add_node", "add_resource"],
)
def test_help_of_the_adders_lists_every_option(method: str, options: tuple[str, ...]) -> None:
    doc = own_doc(dag_method(method))
    for option in options:
        assert f"\n    {option}: " in doc, f"option {option} is not documented"
    for word in ("seconds", "Raises:", "DagDefinitionError", "Returns:", "default"):
        assert word in doc


def test_help_of_invoke_lists_every_option() -> None:
    invoke = dag_method("invoke")
    doc = own_doc(invoke)
    parameters = inspect.signature(invoke).parameters
    for option in parameters:
        if option != "self":
            assert f"{option}: " in doc, f"invoke option {option} is not documented"
    for word in ("seconds", "Raises:", "DagError", "TimeoutError", "Returns:"):
        assert word in doc
