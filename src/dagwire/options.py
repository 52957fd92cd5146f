"""The keyword options of `add_node` / `add_resource` / `add_map` / `join`, checked at build time.

Two steps: `parse_options` checks each value on its own (types, ranges, unknown names);
`refuse_misfits` checks the options against the kind of callable they are given with, so that
an option that could not do what it promises on that kind is refused instead of ignored.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from ._callables import (
    Kind,
    callable_name,
    is_async_generator_function,
    is_generator_function,
    kind_from_annotation,
    refuse_called,
    returns_awaitable,
    takes_argument,
)
from .cache import Cache
from .definition import NO_FALLBACK, NodeOptions
from .errors import DagDefinitionError
from .executors import is_executor
from .node import Node
from .policies import CircuitBreaker, Limiter, Retry

__all__ = [
    "JOIN_OPTIONS",
    "MAP_OPTIONS",
    "NODE_OPTIONS",
    "RESOURCE_OPTIONS",
    "Parsed",
    "parse_options",
    "parse_tags",
    "refuse_join_options",
    "refuse_misfits",
]

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
MAP_OPTIONS = tuple(o for o in NODE_OPTIONS if o != "cache")
RESOURCE_OPTIONS = (*MAP_OPTIONS, "release")
JOIN_OPTIONS = ("name", "tags")

# (name, after, tags, options or None when every option is at its default)
Parsed = tuple[str | None, Node[Any] | Iterable[Node[Any]], tuple[str, ...], NodeOptions | None]


# Options of another method, refused with where they belong (per method, then for any).
_ELSEWHERE = {
    "release": "release= applies to resources only; use dag.add_resource() for a value that "
    "must be released",
    "cache": "cache= applies to add_node only: a resource is set up and cleaned up by each "
    "run; cache the node that computes from it instead",
}
_ELSEWHERE_FOR = {
    "add_map": {
        "cache": "cache= is not supported on add_map; map over a function whose own node is "
        "cached, or cache the items' source",
    },
}


def refuse_unknown(what: str, given: Iterable[str], valid: tuple[str, ...]) -> None:
    """Refuse an option name `valid` does not hold, suggesting the closest one."""
    elsewhere = {**_ELSEWHERE, **_ELSEWHERE_FOR.get(what.partition("(")[0], {})}
    for key in given:
        if key in elsewhere and key not in valid:
            raise DagDefinitionError(f"{what}: {elsewhere[key]}")
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]}=?" if close else ""
            raise DagDefinitionError(
                f"{what}: unknown option {key}=.{hint} The options are: "
                + ", ".join(f"{v}=" for v in valid)
            )


def _seconds(what: str, label: str, value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value <= 0
    ):
        raise DagDefinitionError(
            f"{what}: {label}={value!r} must be a positive number of seconds (or None for no limit)"
        )
    return float(value)


def _retry(what: str, retry: object) -> Retry | None:
    if retry is None or isinstance(retry, Retry):
        return retry
    if isinstance(retry, bool) or not isinstance(retry, int):
        raise DagDefinitionError(
            f"{what}: retry= takes a Retry(...) or an int (calls in total), got {retry!r}"
        )
    if retry < 1:
        raise DagDefinitionError(
            f"{what}: retry={retry!r} cannot work: retry= counts calls in total, at least 1. "
            "Use retry=1 (or leave retry= out) for a single call, retry=3 for up to three."
        )
    return Retry(attempts=retry)


def parse_tags(what: str, tags: object) -> tuple[str, ...]:
    if isinstance(tags, str):
        return (tags,)  # one label, not its characters
    try:
        labels = tuple(cast(Iterable[object], tags))
    except TypeError:
        raise DagDefinitionError(
            f"{what}: tags= takes labels as strings, e.g. tags=('db', 'slow'); got {tags!r}"
        ) from None
    for label in labels:
        if not isinstance(label, str):
            raise DagDefinitionError(
                f"{what}: tags= takes labels as strings, e.g. tags=('db', 'slow'); "
                f"got {label!r} in {tags!r}"
            )
    return cast(tuple[str, ...], labels)


def _hook(what: str, label: str, hook: object) -> tuple[Callable[..., object] | None, bool]:
    if hook is None:
        return None, False
    if not callable(hook):
        refuse_called(f"{what}: {label}=", hook, f"{label}={{callee}}")
        raise DagDefinitionError(f"{what}: {label}= must be callable, got {hook!r}")
    hook_fn: Callable[..., object] = hook
    if is_generator_function(hook_fn) or is_async_generator_function(hook_fn):
        # Calling one only makes a generator: the hook's code would never run.
        raise DagDefinitionError(
            f"{what}: {label}={callable_name(hook_fn)} is a generator function, so calling it "
            f"would run none of its code. Give a plain or async function as {label}=; to hold "
            "something open around the node, make it a resource with add_resource()."
        )
    return hook_fn, takes_argument(hook_fn, what=f"{what} {label}=")


def parse_options(what: str, options: Mapping[str, Any], valid: tuple[str, ...]) -> Parsed:
    """Check every option value on its own; `valid` is the set of names this method takes."""
    refuse_unknown(what, options, valid)
    get = options.get
    timeout = _seconds(what, "timeout", get("timeout"))
    cleanup_timeout = _seconds(what, "cleanup_timeout", get("cleanup_timeout"))
    breaker, limiter, executor = get("breaker"), get("limiter"), get("executor")
    if breaker is not None and not isinstance(breaker, CircuitBreaker):
        raise DagDefinitionError(f"{what}: breaker= takes a CircuitBreaker, got {breaker!r}")
    if limiter is not None and not isinstance(limiter, Limiter):
        raise DagDefinitionError(f"{what}: limiter= takes a Limiter, got {limiter!r}")
    if executor is not None and not is_executor(executor):
        raise DagDefinitionError(
            f"{what}: executor= takes 'thread', a concurrent.futures.Executor or a Dask "
            f"distributed.Client created with asynchronous=True, got {executor!r}"
        )
    release = get("release", "end")
    if release not in ("end", "early"):
        raise DagDefinitionError(f"{what}: release= must be 'end' or 'early', got {release!r}")
    pre, pre_takes = _hook(what, "pre", get("pre"))
    post, post_takes = _hook(what, "post", get("post"))
    cache = get("cache")
    if cache is not None:
        if not isinstance(cache, Cache):
            raise DagDefinitionError(f"{what}: cache= takes a dagwire.Cache, got {cache!r}")
        if pre is not None or post is not None:
            raise DagDefinitionError(
                f"{what}: cache= cannot be combined with pre=/post=: a cached value is shared by "
                "every run while hooks belong to one run; put the hooks on a node of their own"
            )
    node_options = NodeOptions(
        timeout=timeout,
        retry=_retry(what, get("retry")),
        fallback=get("fallback", NO_FALLBACK),
        breaker=breaker,
        limiter=limiter,
        executor=executor,
        pre=pre,
        post=post,
        pre_takes_param=pre_takes,
        post_takes_param=post_takes,
        release=release,
        cleanup_timeout=cleanup_timeout,
        cache=cache,
    )
    return (
        get("name"),
        get("after", ()),
        parse_tags(what, get("tags", ())),
        None if node_options.is_default else node_options,
    )


_ASYNC = (Kind.ASYNC_FN, Kind.ASYNC_GEN, Kind.ASYNC_CM)
_SYNC = (Kind.SYNC_FN, Kind.SYNC_GEN, Kind.SYNC_CM)


def refuse_misfits(what: str, fn: Callable[..., object], kind: Kind, opts: NodeOptions) -> None:
    """Refuse an option that cannot do what it promises on this kind of callable."""
    name = callable_name(fn)
    if kind is Kind.UNKNOWN and (opts.timeout or opts.cleanup_timeout or opts.executor):
        kind = kind_from_annotation(fn)  # these options depend on it: ask the annotation
        if kind is Kind.UNKNOWN:
            _refuse_on_unknown_factory(what, name, opts)
    if opts.executor is not None and kind in _ASYNC:
        raise DagDefinitionError(
            f"{what}: executor= runs sync code in a thread or process, but {name} is "
            f"{kind.value} and already runs on the event loop without blocking it. Drop "
            "executor=; for a blocking call inside it, use `await asyncio.to_thread(f, ...)`."
        )
    if opts.timeout is not None and kind in _SYNC and opts.executor is None:
        body = "its setup runs" if kind is not Kind.SYNC_FN else "it runs"
        raise DagDefinitionError(
            f"{what}: timeout= cannot be enforced: {name} is {kind.value}, and {body} inline on "
            "the event loop, which it blocks and where nothing can interrupt it. Add "
            'executor="thread" (timeout= then bounds the wait for the thread), or, if it '
            "returns an awaitable, declare it `async def`."
        )
    if opts.cleanup_timeout is not None:
        _refuse_cleanup_timeout(what, name, kind, opts)


def _refuse_on_unknown_factory(what: str, name: str, opts: NodeOptions) -> None:
    # Whether these options can work depends on the factory's result being a sync or an
    # async context manager, which a plain function reveals only when called.
    for label, value in (
        ("timeout", opts.timeout),
        ("cleanup_timeout", opts.cleanup_timeout),
        ("executor", opts.executor),
    ):
        if value is not None:
            raise DagDefinitionError(
                f"{what}: {label}= depends on whether {name} returns an async context manager "
                "or a sync one, which dagwire cannot tell before calling it. Annotate its "
                "return type (`-> Connection`, a context-manager class), pass the class "
                "itself, or write the factory as an async generator or @asynccontextmanager "
                "function (for timeout=/cleanup_timeout=) or a generator or @contextmanager "
                "function (with executor=)."
            )


def _refuse_cleanup_timeout(what: str, name: str, kind: Kind, opts: NodeOptions) -> None:
    is_node = kind in (Kind.ASYNC_FN, Kind.SYNC_FN)
    if is_node and opts.post is None:
        raise DagDefinitionError(
            f"{what}: cleanup_timeout= bounds a node's cleanup (its post= hook, or a "
            "resource's exit), and this node has neither. Give a post= hook, use "
            "dag.add_resource() for something to release, or use timeout= for the body."
        )
    if opts.post is not None and not returns_awaitable(opts.post):
        raise DagDefinitionError(
            f"{what}: cleanup_timeout= cannot be enforced on post={callable_name(opts.post)}, "
            "a sync hook that runs inline on the event loop, where nothing can interrupt it. "
            "Declare the hook `async def` (and await in it), or drop cleanup_timeout=."
        )
    if kind in (Kind.SYNC_GEN, Kind.SYNC_CM) and opts.executor is None:
        raise DagDefinitionError(
            f"{what}: cleanup_timeout= cannot be enforced: {name} is {kind.value}, and its "
            "cleanup runs inline on the event loop, where nothing can interrupt it. Add "
            'executor="thread" (setup and cleanup then run in a thread, and cleanup_timeout= '
            "bounds the wait for it)."
        )


_JOIN_REFUSALS = {
    "after": "a join already waits for every node it is given: pass them all, dag.join(a, b, c)",
    "pre": "a join runs no code, so there is nothing to hook: run the hook as a node after "
    "it, dag.add_node(hook, after=[barrier])",
    "release": "a join holds nothing to release: release= belongs on dag.add_resource()",
    "cleanup_timeout": "a join holds nothing to clean up: put cleanup_timeout= on the nodes "
    "the join waits for (their resources or post= hooks)",
}


def refuse_join_options(what: str, options: Mapping[str, object]) -> None:
    """`join` takes name= and tags=; every node option is refused with what to do instead."""
    for key in options:
        if key not in NODE_OPTIONS and key not in RESOURCE_OPTIONS:
            refuse_unknown(what, (key,), JOIN_OPTIONS)
        why = _JOIN_REFUSALS.get("pre" if key == "post" else key) or (
            f"a join runs no code and cannot fail, so {key}= has nothing to act on: put it on "
            "the nodes the join waits for"
        )
        raise DagDefinitionError(f"{what}: {key}= does not apply to a join: {why}.")
