"""What we can learn about a user's callable at build time: its name, its kind, its arity."""

from __future__ import annotations

import enum
import functools
import inspect
import reprlib
import typing
from collections.abc import Callable
from types import CoroutineType, FunctionType, MethodType

from .errors import DagDefinitionError
from .node import Node

__all__ = [
    "Kind",
    "callable_name",
    "describe",
    "injects_param",
    "is_async_callable",
    "kind_from_annotation",
    "node_kind",
    "plain_facts",
    "refuse_called",
    "resource_kind",
    "short_name",
    "takes_argument",
]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class Kind(enum.Enum):
    """What a callable is, as far as build time can tell: which options can work depends on it."""

    ASYNC_FN = "an async function"
    SYNC_FN = "a sync function"
    ASYNC_GEN = "an async generator function"
    SYNC_GEN = "a generator function"
    ASYNC_CM = "a factory of async context managers"
    SYNC_CM = "a factory of context managers"
    UNKNOWN = "a callable whose result (sync or async context manager) is known only when called"


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


def short_name(fn: Callable[..., object]) -> str:
    """The name to write in a code suggestion: `__name__` (`fetch`, not `Client.fetch`)."""
    name = getattr(_unwrap(fn), "__name__", None)
    return name if isinstance(name, str) else callable_name(fn)


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


def _code_target(fn: object) -> object:
    """What to test for `async def` / generator flags: the function, or an instance's __call__."""
    inner = _unwrap(fn)
    if inspect.isfunction(inner) or inspect.ismethod(inner) or isinstance(inner, type):
        return inner
    call = type(inner).__dict__.get("__call__") if callable(inner) else None
    return inner if call is None else call


def is_async_generator_function(fn: Callable[..., object]) -> bool:
    return inspect.isasyncgenfunction(_code_target(fn))


def is_generator_function(fn: Callable[..., object]) -> bool:
    return inspect.isgeneratorfunction(_code_target(fn))


def returns_awaitable(fn: Callable[..., object]) -> bool:
    """`async def`, or a wrapper (`functools.wraps`) of one: its calls give awaitables."""
    if is_async_callable(fn):
        return True
    inner = _unwrap(fn)
    if getattr(inner, "__wrapped__", None) is None:
        return False
    try:
        wrapped = inspect.unwrap(inner)  # type: ignore[arg-type]  # any object with __wrapped__
    except ValueError:  # a __wrapped__ cycle
        return False
    return inspect.iscoroutinefunction(wrapped)


def node_kind(fn: Callable[..., object]) -> Kind:
    """ASYNC_FN or SYNC_FN; a generator function (async or sync) is refused: it is a resource."""
    target = _code_target(fn)
    for is_gen, what in (
        (inspect.isasyncgenfunction, "an async generator function"),
        (inspect.isgeneratorfunction, "a generator function"),
    ):
        if is_gen(target):
            name = callable_name(fn)
            raise DagDefinitionError(
                f"add_node({name}): {name} is {what}. A generator that yields a value and then "
                f"cleans up is a resource: use dag.add_resource({short_name(fn)}, ...). For "
                "the values it yields as a list, add a function that returns the list instead."
            )
    return Kind.ASYNC_FN if returns_awaitable(fn) else Kind.SYNC_FN


def resource_kind(factory: Callable[..., object]) -> Kind:
    """Classify a resource factory; refuse one that can never be a resource.

    `@asynccontextmanager` / `@contextmanager` functions are recognised through `__wrapped__`
    (an async or sync generator function underneath), classes by their `__aenter__` /
    `__enter__`. A plain `def` returning a context manager stays UNKNOWN until it is called.
    """
    target = _code_target(factory)
    if inspect.isasyncgenfunction(target):
        return Kind.ASYNC_GEN
    if inspect.isgeneratorfunction(target):
        return Kind.SYNC_GEN
    if isinstance(target, type):
        if hasattr(target, "__aenter__") and hasattr(target, "__aexit__"):
            return Kind.ASYNC_CM
        if hasattr(target, "__enter__") and hasattr(target, "__exit__"):
            return Kind.SYNC_CM
        name = callable_name(factory)
        raise DagDefinitionError(
            f"add_resource({name}): the class {name} is not a context manager (it has no "
            "__aenter__/__aexit__ or __enter__/__exit__), so its instances cannot be entered "
            f"and released. Give it those methods, or use dag.add_node({short_name(factory)}, "
            "...) for a plain value."
        )
    if inspect.iscoroutinefunction(target):
        return _refuse_coroutine_function(factory)
    wrapped = getattr(target, "__wrapped__", None)
    if wrapped is not None:
        try:
            inner = inspect.unwrap(target)  # type: ignore[arg-type]  # has __wrapped__
        except ValueError:
            return Kind.UNKNOWN
        if inspect.isasyncgenfunction(inner):
            return Kind.ASYNC_CM  # @asynccontextmanager
        if inspect.isgeneratorfunction(inner):
            return Kind.SYNC_CM  # @contextmanager
    return Kind.UNKNOWN


def kind_from_annotation(factory: Callable[..., object]) -> Kind:
    """What a factory's return annotation says it returns: ASYNC_CM, SYNC_CM or UNKNOWN.

    Costs a `typing.get_type_hints`, so it is asked only when an option depends on the answer
    (`aiosqlite.connect` is annotated `-> Connection`, an async context manager).
    """
    target = _unwrap(factory)
    try:
        returned = typing.get_type_hints(target).get("return")
    except Exception:  # unresolvable names, objects without annotations: cannot tell
        return Kind.UNKNOWN
    cls = typing.get_origin(returned) or returned
    if not isinstance(cls, type):
        return Kind.UNKNOWN
    if hasattr(cls, "__aenter__") and hasattr(cls, "__aexit__"):
        return Kind.ASYNC_CM
    if hasattr(cls, "__enter__") and hasattr(cls, "__exit__"):
        return Kind.SYNC_CM
    return Kind.UNKNOWN


def _refuse_coroutine_function(factory: Callable[..., object]) -> Kind:
    name = callable_name(factory)
    short = short_name(factory)
    raise DagDefinitionError(
        f"add_resource({name}): {name} is an async function that returns a value, so it has "
        "no cleanup and cannot be a resource. A resource factory is an async generator "
        "function that yields once (`async def connect(): conn = await open(); yield conn; "
        "await conn.close()`), a generator function that yields once, or a callable returning "
        f"an (async) context manager. For a plain value use dag.add_node({short}, ...)."
    )


def refuse_called(where: str, obj: object, usage: str) -> None:
    """`obj` was given where a callable belongs: if it is a coroutine or generator object (the
    function was called instead of passed), refuse it saying so, and close a coroutine.

    `usage` shows the right call: ``{callee}`` is the function, ``{call}`` it and its inputs.
    """
    if isinstance(obj, CoroutineType):
        code = obj.cr_code
        callee, shown = code.co_name, []
        frame = obj.cr_frame
        if frame is not None:  # not started yet: its arguments are its first locals
            names = code.co_varnames[: code.co_argcount]
            values = [frame.f_locals.get(n) for n in names]
            if names and names[0] in ("self", "cls"):
                callee = f"<{type(values[0]).__name__} object>.{code.co_name}"
                values = values[1:]
            shown = [_short(v) for v in values]
        obj.close()  # never awaited by anyone: closing it avoids a "never awaited" warning
        kind = "a coroutine object"
    elif inspect.isgenerator(obj) or inspect.isasyncgen(obj):
        callee, shown, kind = obj.__name__, ["..."], "a generator object"
        usage = "dag.add_resource({call})"  # a generator function is always a resource
    else:
        return
    right = usage.format(callee=callee, call=", ".join([callee, *shown]))
    inputs = " and its inputs" if "{call}" in usage else ""
    raise DagDefinitionError(
        f"{where} was given {kind}, the result of calling {callee}(...); dagwire calls the "
        f"function itself when the node runs. Pass `{callee}`{inputs}: `{right}`."
    )


_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40


def _short(value: object) -> str:
    if isinstance(value, Node):
        return value.name
    return _repr.repr(value)


_CO_COROUTINE = inspect.CO_COROUTINE
_CO_GENERATORS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_CO_VARARGS = inspect.CO_VARARGS


def plain_facts(fn: object, n_inputs: int) -> tuple[str, int, bool] | None:
    """``(qualname, code flags, inject)`` of a plain function (or a bound method of one) that
    can be called with `n_inputs` inputs (and the invoke parameter when `inject`), read
    straight from its code object; None when only the complete path can tell.

    That path (`inspect.signature`, which also follows `__wrapped__` and `__signature__`) is
    half of the cost of adding a node, and most nodes are plain functions, so they take this
    one. A function with anything in its `__dict__` (`functools.wraps`, `__signature__`,
    `inspect.markcoroutinefunction`) and every refusal go the complete way, which gives the
    same answers and the error messages.
    """
    if type(fn) is FunctionType:
        func, bound = fn, 0
    elif type(fn) is MethodType and type(fn.__func__) is FunctionType:
        func, bound = fn.__func__, 1
    else:
        return None
    if func.__dict__:
        return None
    code = func.__code__
    flags = code.co_flags
    positional = code.co_argcount
    defaults = func.__defaults__
    required = positional - len(defaults) if defaults else positional
    if code.co_kwonlyargcount:
        names = code.co_varnames[positional : positional + code.co_kwonlyargcount]
        given = func.__kwdefaults__ or {}
        if any(name not in given for name in names):
            return None  # required keyword-only parameters: refused on the complete path
    if bound:  # `self` is filled already
        positional -= 1
        required = max(required - 1, 0)
    if required == n_inputs + 1:
        return func.__qualname__, flags, True
    if required > n_inputs or (n_inputs > positional and not flags & _CO_VARARGS):
        return None  # wrong arity: refused on the complete path
    return func.__qualname__, flags, False


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
    """Whether a pre/post hook receives the invoke parameter.

    The node-injection rule with no inputs: one *required* positional parameter receives it;
    none means the hook is called with no argument (so `lambda k=k: ...` keeps its default).
    More required parameters, or required keyword-only ones, cannot be filled: refused.
    """
    sig = _signature(hook)
    if sig is None:
        return False  # a builtin without a signature: called as a no-argument hook
    params = list(sig.parameters.values())
    required = sum(1 for p in params if p.kind in _POSITIONAL and p.default is p.empty)
    kw_required = any(
        p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty for p in params
    )
    if required <= 1 and not kw_required:
        return required == 1
    raise DagDefinitionError(
        f"{what} hook {describe(hook)} cannot be called: a hook takes one required positional "
        "parameter (it receives the invoke parameter) or none (it is called with no argument)"
    )
