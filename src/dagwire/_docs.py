"""The docstrings of `Dag.add_node`, `Dag.add_resource` and `Dag.add_map`.

Their implementations live in the generated `_overloads.py`; the texts live here so that the
generator (`tools/gen_overloads.py`) and `graph.py` share one copy.
"""

from __future__ import annotations

import textwrap

__all__ = ["ADD_MAP", "ADD_NODE", "ADD_RESOURCE"]


def _reflow(options: str) -> str:
    """Re-wrap each option's description (the lines indented by 8) to 92 columns."""
    out: list[str] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            out.append(
                textwrap.fill(" ".join(text), 92, initial_indent=" " * 8, subsequent_indent=" " * 8)
            )
            text.clear()

    for line in options.splitlines():
        if line.startswith(" " * 8):
            text.append(line.strip())
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out) + "\n"


_COMMON_OPTIONS = """\
    name: str | None = None
        The node's name, unique in the graph. Default: the function's `__qualname__`, then
        with a suffix (``_1``, ``_2``, ...) for later nodes of the same function. A name
        already taken is refused.
    after: Node | Iterable[Node] = ()
        Nodes of this graph to wait for without receiving their values.
    timeout: float | None = None
        Seconds each attempt of the {body} may take; then it is cancelled and fails with
        `TimeoutError` (retried if `retry=` allows it). {timeout_kinds} An async {body} that
        blocks without awaiting cannot be interrupted and overruns it. Must be > 0.
    retry: Retry | int | None = None
        Call the {body} again when it fails with one of `Retry.on` (default `TimeoutError`,
        `ConnectionError`, `RetryableError`; not `ValueError`, not an HTTP library's errors
        unless listed), waiting `Retry.delay(k)` seconds before retry k. `retry=3` means
        `Retry(attempts=3)`: three calls in total. 0 or less is refused.
    fallback: R (default: none)
        The value to use when the {body} finally fails: the node SUCCEEDS with it, its
        dependents run, `invoke` does not raise for it, and the failure stays in
        `result.errors` (`recovered=True`). The same object serves every run that needs it,
        like a default argument: use an immutable value, or copy it before changing it.
    breaker: CircuitBreaker | None = None
        A shared circuit breaker: every attempt is a call it counts; while it is open the
        node fails at once with `CircuitOpenError` (or takes its `fallback=`).
    limiter: Limiter | None = None
        A shared limit: each attempt of the {body} holds one slot of it, across every run
        and graph that holds the same object.
    executor: "thread" | concurrent.futures.Executor | None = None
        {executor}
    pre: Callable[[P], object] | Callable[[], object] | None = None
        A hook, sync or async, run once before the {body} (after its inputs are ready; not
        retried, not bounded by `timeout=`). It receives the invoke parameter if it has one
        required positional parameter, and nothing otherwise (`lambda k=k: ...` keeps its
        default). If it raises, the node fails in phase "pre" and its {body} does not run.
        A generator function is refused, here and as `post` (calling one runs none of its
        code).
    post: Callable[[P], object] | Callable[[], object] | None = None
        A cleanup hook, sync or async, receiving what `pre` receives. It runs once in the
        run's cleanup phase, after the cleanups of the nodes that depend on this one, for
        every node whose `pre` started (without `pre`: whose {body} started), whether it
        succeeded or not.{post_order}
    tags: Iterable[str] = ()
        Labels carried into events and pictures, readable as `node.tags`; a single `str`
        is one label.
"""

_ARGS = """\
    {fn}: see above. Positional only.
    *inputs: each a `Node` of this graph, whose value is passed once it is ready, or any
        other value, passed as a constant (the same object in every run). If `{fn}` has
        exactly one required positional parameter more than the inputs given, the invoke
        parameter is passed as its last argument; `dag.params` is the explicit form.
"""

ADD_NODE = (
    """Add a node that calls `fn(*inputs)` once its inputs are ready, and return its handle.

`fn` may be an `async def` function (awaited), a plain `def` (run inline on the event loop,
where it blocks every other node while it runs: give it `executor=` if it blocks), a
`functools.partial`, a bound method, a lambda, a class or any other callable; a sync callable
that returns an awaitable has it awaited. A frozen `Dag` is a callable too: the node runs it
with its input as the parameter, and its value is that run's `ExecutionResult`. Not a
generator function (that is a resource: use `add_resource`), and not a coroutine object (pass
the function and its inputs).

Arguments:
"""
    + _ARGS.format(fn="fn")
    + """
Options (keyword-only, all optional):
"""
    + _reflow(
        _COMMON_OPTIONS.format(
            body="body",
            timeout_kinds="Needs an async `fn` or `executor=`: an inline sync function cannot be "
            "interrupted, so `timeout=` on one is refused. With `executor=` the run stops waiting "
            "when the timeout fires; the thread itself runs on.",
            executor='Run a sync `fn` in the event loop\'s default thread pool ("thread") or in '
            "this executor (a process pool needs `fn`, its inputs and its result to be "
            "picklable). Refused for async callables, which run on the loop already.",
            post_order="",
        )
    )
    + """    cleanup_timeout: float | None = None
        Seconds the `post=` hook may take in the cleanup phase; then it fails with
        `TimeoutError` (recorded as a failure in phase "post"). Needs an async `post=` hook:
        refused without one, and with a sync one (which cannot be interrupted).
    cache: Cache | None = None
        Memoise the node's value by its input values (see `Cache`: time to live in seconds,
        size, key, single-flight): a fresh entry is the node's value without a call, and
        concurrent runs needing the same inputs share one call. A hit is SUCCEEDED with no
        attempt. Refused with `pre=`/`post=` (hooks belong to one run, a cached value to every
        run) and on resources and `add_map`.

Returns:
    `Node[R]`, R being the (awaited) return type of `fn`.

Raises:
    DagDefinitionError: at once, naming the function, the option and what to do instead, for
        a frozen graph; a value that is not callable (a coroutine or generator object
        included); a generator function; inputs `fn` cannot be called with (arity, required
        keyword-only parameters); a node of another graph as an input or in `after=`; a taken
        name; an unknown option; an option value of the wrong type or range; and an option
        that cannot work on this kind of callable (`timeout=` on an inline sync function,
        `executor=` on an async one, `cleanup_timeout=` without an async `post=`, `cache=`
        with hooks, `release=`, which is for resources).
"""
)

ADD_RESOURCE = (
    """Add a resource: a value set up before its users run and released after them.

`factory(*inputs)` is one of:
- an async generator function that yields once: the code before `yield` is the setup, the
  yielded value flows downstream, the code after it is the cleanup;
- a generator function that yields once (the same, sync);
- an `@asynccontextmanager` / `@contextmanager` function, a context-manager class, or any
  callable returning an (async) context manager: the value of `__aenter__`/`__enter__` flows
  downstream, `__aexit__`/`__exit__` is the cleanup.
Every resource whose setup finished is cleaned up exactly once, after every node that uses it
(`release=` says when), also when the run fails or is cancelled: the run's failure is then
thrown in at the `yield` (or passed to `__aexit__`/`__exit__`), so a transaction can roll
back, and the run still raises it (a resource cannot swallow it). A plain `async def` that
returns a value is not a resource (use `add_node`).

Arguments:
"""
    + _ARGS.format(fn="factory")
    + """
Options (keyword-only, all optional):
"""
    + _reflow(
        _COMMON_OPTIONS.format(
            body="setup",
            timeout_kinds="Needs an async factory, or a sync one with `executor=`: on an "
            "inline generator function or sync context manager it is refused, and on a plain "
            "function, which might return either kind.",
            executor="Run a sync factory's setup *and* cleanup in the event loop's default "
            'thread pool ("thread") or in this executor. Refused for async factories, and for '
            "a plain function, which might return either kind (write a generator function or "
            "a @contextmanager function).",
            post_order=" It runs after the resource's own cleanup.",
        )
    )
    + """    release: "end" | "early" = "end"
        "end": the resource is released in the run's cleanup phase, after every node body of
        the run has finished. "early": as soon as every node that uses it directly has
        finished (and released what it holds).
    cleanup_timeout: float | None = None
        Seconds each cleanup of the node (the resource's exit, then its `post=` hook) may
        take; then it fails with `TimeoutError` (recorded as a failure in phase "cleanup" or
        "post") and the cleanup phase goes on. Needs something it can interrupt: an async
        factory, or a sync one with `executor=`; refused with a sync `post=` hook.

Returns:
    `Node[R]`, R being the yielded or entered value's type.

Raises:
    DagDefinitionError: at once, naming the factory, the option and what to do instead, for
        a frozen graph; a value that is not callable (a coroutine or generator object
        included); a plain `async def` function or a class that is not a context manager;
        inputs `factory` cannot be called with; a node of another graph; a taken name; an
        unknown option; an option value of the wrong type or range; and an option that
        cannot work on this kind of factory (see `timeout=`, `executor=`,
        `cleanup_timeout=`).
    At run time, a factory that returns something else, or a generator that does not yield
    exactly once, fails the node (`TypeError` / `RuntimeError`).
"""
)

ADD_MAP = """A node whose value is ``[fn(item, *others) for item in items]``, the calls made
        concurrently (at most `limit` at once; default: all), results in input order.

        - `items`: a node (or a plain iterable) whose value is iterated once per run; no items
          give ``[]``. `others`: further inputs (nodes or constants) passed to every call; a
          function taking one more required parameter gets the invoke parameter last, as in
          `add_node`.
        - `fn`: a sync or async function, or a built `Dag`, whose `ExecutionResult` per item
          (each item its parameter, cleanups included) is then the item's value.
        - `timeout=` (seconds), `retry=`, `executor=`, `breaker=` and `limiter=` apply to each
          item's call; `name`, `after`, `tags`, `pre`/`post` and `fallback` to the node as a
          whole. `cache=` and `release=` are refused.

        The first item that finally fails fails the node (a note names the item's index) and
        cancels the items still running. Events report each item as node ``"name[index]"``.
        Raises `DagDefinitionError` like `add_node`, and for a `limit` that is not an int >= 1.
        """
