"""Memoising a node's value: `Cache`, with single-flight.

Like `CircuitBreaker` and `Limiter`, a `Cache` is a deliberately *mutable shared object*: every
node, run and graph holding the same object shares its entries and its in-flight calls.

How the run loop uses it for a node given ``cache=``:

1. ``cache.lookup(inputs, node)``: a fresh entry is returned at once, with no coroutine (a hit).
2. Otherwise ``await cache.get_or_call(inputs, call, node=node)``: the first caller of a key
   starts ``call()`` in a task of its own (a *flight*); every caller that needs the same key on
   the same event loop while it runs waits for that flight instead of calling again
   (single-flight). The flight's value is stored; its failure is delivered to every waiter and
   never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from asyncio import AbstractEventLoop, CancelledError
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Final

from .errors import DagDefinitionError

__all__ = ["MISSING", "Cache"]

logger = logging.getLogger("dagwire")


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING
"""What `Cache.lookup` returns when it holds no fresh value for the inputs."""

_Entry = tuple[object, float]  # (value, monotonic time at which it expires)
_FlightKey = tuple[AbstractEventLoop, Hashable]


class Cache:
    """Memoise a node's value by its input values, with single-flight; give it as
    ``add_node(fn, *inputs, cache=Cache(...))``.

    - `ttl`: seconds an entry stays fresh after it was stored (when its call returned), on the
      monotonic clock; default 60.0. ``math.inf``: entries leave only by eviction. ``0``: no
      entry is kept, but concurrent callers of one key still share one call.
    - `maxsize`: entries kept, default 1024; beyond it the least recently used entry is evicted
      (a hit counts as a use). ``0`` keeps none, like ``ttl=0``.
    - `key`: ``key(*inputs) -> Hashable``, called with the node's input values in call order;
      default: the tuple of the input values, which must then be hashable (an unhashable input
      is a `TypeError` naming the node, at run time).
    - `clock`: keyword-only, the clock of `ttl` in seconds (default `time.monotonic`); tests
      give a fake one.

    One object is shared by every node, run and graph holding it: nodes sharing a `Cache` share
    its entries, keyed by input values only, so give each function its own `Cache`. Values are
    shared too: every hit returns the same object, so treat cached values as immutable.

    Single-flight: callers needing a key while its call runs share that call instead of starting
    their own. A caller cancelled while waiting leaves the call running for the others; when
    every caller has gone, the call is cancelled and nothing is stored. A failure is never
    stored; every waiting caller receives it, each as its own exception object. In-flight calls
    belong to the event loop they run on: the entries can be shared by event loops one after the
    other (``asyncio.run`` twice) or at once in other threads, but only callers on the same loop
    share a call.

    Raises `DagDefinitionError` when `ttl`, `maxsize`, `key` or `clock` cannot work.
    """

    __slots__ = ("_clock", "_entries", "_flights", "_keeps", "_key", "_loop", "_maxsize", "_ttl")

    def __init__(
        self,
        ttl: float = 60.0,
        maxsize: int = 1024,
        key: Callable[..., Hashable] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check(ttl, maxsize, key, clock)
        self._ttl = float(ttl)
        self._maxsize = maxsize
        self._key = key
        self._clock = clock
        self._keeps = ttl > 0 and maxsize > 0
        # LRU order: least recently used first. Values with the time they expire.
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._flights: dict[_FlightKey, _Flight] = {}
        self._loop: AbstractEventLoop | None = None  # the loop of the latest miss

    @property
    def ttl(self) -> float:
        """Seconds an entry stays fresh after it was stored."""
        return self._ttl

    @property
    def maxsize(self) -> int:
        """Entries kept at most; the least recently used goes first."""
        return self._maxsize

    @property
    def key(self) -> Callable[..., Hashable] | None:
        """The key function given, or None (the key is the tuple of input values)."""
        return self._key

    def __len__(self) -> int:
        """Entries held, including expired ones not yet dropped (an expired entry is dropped
        when it is next looked up, or evicted as the least recently used)."""
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry. Calls in flight go on; their values are stored when they return."""
        self._entries.clear()

    def __repr__(self) -> str:
        key = None if self._key is None else getattr(self._key, "__qualname__", self._key)
        return f"Cache(ttl={self._ttl!r}, maxsize={self._maxsize!r}, key={key!s})"

    # -- what the run loop calls ----------------------------------------------------------

    def lookup(self, inputs: tuple[object, ...], node: str) -> object:
        """The fresh value stored for `inputs` (the node's input values, in call order), or
        `MISSING`. Synchronous: a hit costs no coroutine. A hit makes the entry the most
        recently used; an expired entry is dropped.

        `node` names the node in errors: `TypeError` when the key is unhashable. Whatever the
        `key=` function raises propagates unchanged.
        """
        # The hit path, inline; everything else (errors, expiry) goes through _get.
        key = inputs if self._key is None else self._key(*inputs)
        entries = self._entries
        try:
            entry = entries.get(key)
        except TypeError:
            return self._get(key, inputs, node)  # raises the clear error
        if entry is None:
            return MISSING
        if self._clock() < entry[1]:
            try:  # noqa: SIM105  # suppress() would cost a context manager per hit
                entries.move_to_end(key)
            except KeyError:
                pass  # another thread's loop dropped it meanwhile; it was fresh when read
            return entry[0]
        return self._get(key, inputs, node)  # drops the expired entry

    async def get_or_call(
        self, inputs: tuple[object, ...], call: Callable[[], Awaitable[object]], *, node: str
    ) -> tuple[object, bool]:
        """The value for `inputs`: stored, shared with a call in flight, or computed by `call()`.

        Returns ``(value, hit)``. `hit` is True when this caller made no call: the value was
        stored (as `lookup` would return it), or this caller joined a call another caller on
        the same event loop had started. It is False only for the caller whose `call` ran.

        `call` runs in a task of its own (created directly, never by the loop's task factory,
        started on the next loop iteration, with a copy of the starting caller's context
        variables), so cancelling a waiter, even the one that started it, never cancels it
        while another caller waits. When every waiting caller has been cancelled, the call is
        cancelled and the last caller returns (raising `CancelledError`) only after the call's
        task has ended; its value, if it returns one anyway, is not stored.

        A value is stored `ttl` seconds from when `call` returned. A failure is raised in every
        waiting caller and never stored: the first waiter still waiting gets the very exception
        `call` raised, each other one a copy of it (same type, `args`, attributes, `__cause__`,
        `__context__`, traceback and the notes it had then), made as `copy.copy` makes it and
        falling back to building it without its ``__init__``; an exception that can be copied
        neither way is the same object for every waiter. A `CancelledError` that `call` raises
        by itself reaches the waiters the same way. A failure with nobody left to receive it is
        logged on the ``dagwire`` logger (ERROR); a `KeyboardInterrupt` or `SystemExit` with
        nobody to receive it propagates from the call's task.

        `node` names the node in errors (`TypeError` when the key is unhashable) and in the
        call task's name.
        """
        key = inputs if self._key is None else self._key(*inputs)
        value = self._get(key, inputs, node)
        if value is not MISSING:
            return value, True
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._switch_loop(loop)
        fkey = (loop, key)
        flight = self._flights.get(fkey)
        hit = flight is not None
        if flight is None:
            flight = self._flights[fkey] = _Flight(self._flights, self._store, fkey, call, node)
        waiter: asyncio.Future[object] = loop.create_future()
        flight.waiters.append(waiter)
        flight.live += 1
        try:
            return await waiter, hit
        except CancelledError:
            if waiter.cancelled():  # this caller was cancelled while the call ran
                await flight.leave()
            raise

    # -- entries ------------------------------------------------------------------------

    def _get(self, key: Hashable, inputs: tuple[object, ...], node: str) -> object:
        entries = self._entries
        try:
            entry = entries.get(key)
        except TypeError as exc:
            clear = self._key_error(key, inputs, node)
            if clear is None:  # not an unhashable key: a TypeError of some __eq__, say
                raise
            raise clear from exc
        if entry is None:
            return MISSING
        if self._clock() < entry[1]:
            try:  # noqa: SIM105  # as in lookup()
                entries.move_to_end(key)
            except KeyError:
                pass
            return entry[0]
        if entries.get(key) is entry:  # not a fresher one stored by another thread meanwhile
            entries.pop(key, None)
        return MISSING

    def _store(self, key: Hashable, value: object) -> None:
        if not self._keeps:
            return
        entries = self._entries
        entries[key] = (value, self._clock() + self._ttl)
        with contextlib.suppress(KeyError):
            entries.move_to_end(key)  # it may have been there (expired, or another thread's)
        while len(entries) > self._maxsize:
            try:
                entries.popitem(last=False)
            except KeyError:  # emptied by another thread meanwhile
                break

    def _key_error(self, key: Hashable, inputs: tuple[object, ...], node: str) -> TypeError | None:
        """A clear error for an unhashable key; None when hashing was not the cause."""
        if self._key is not None:
            if _hashable(key):
                return None
            return TypeError(
                f"node {node!r}: the key= function of its Cache returned an unhashable "
                f"{type(key).__name__}; it must return a hashable value (a tuple, a string, ...)"
            )
        bad = next((k for k, value in enumerate(inputs) if not _hashable(value)), None)
        if bad is None:
            return None
        return TypeError(
            f"node {node!r}: its Cache keys entries by the node's input values, but input "
            f"{bad} is an unhashable {type(inputs[bad]).__name__}; give the Cache a key= "
            "function that returns a hashable key, e.g. Cache(key=lambda items: tuple(items))"
        )

    # -- flights --------------------------------------------------------------------------

    def _switch_loop(self, loop: AbstractEventLoop) -> None:
        # A loop closed with a call still pending (not what asyncio.run does: it cancels and
        # awaits every task) would hold that flight forever: drop such flights.
        self._loop = loop
        for fkey in [k for k in list(self._flights) if k[0].is_closed()]:
            self._flights.pop(fkey, None)


class _Flight:
    """One call of one key in progress on one event loop, and the callers waiting for it."""

    __slots__ = ("abandoned", "fkey", "flights", "live", "node", "store", "task", "waiters")

    def __init__(
        self,
        flights: dict[_FlightKey, _Flight],
        store: Callable[[Hashable, object], None],
        fkey: _FlightKey,
        call: Callable[[], Awaitable[object]],
        node: str,
    ) -> None:
        self.flights = flights  # the Cache's in-flight calls, where this one is registered
        self.store = store  # stores a value in the Cache
        self.fkey = fkey
        self.node = node
        self.waiters: list[asyncio.Future[object]] = []
        self.live = 0  # waiters not (yet) known to be cancelled
        self.abandoned = False
        # Made directly, not by the loop's task factory, and never started eagerly: a waiter's
        # cancellation cannot reach it, and it cannot end before this flight is registered.
        self.task = asyncio.Task(self.fly(call), loop=fkey[0], name=f"dagwire cache: {node}")

    def forget(self) -> None:
        """Unregister: a caller arriving from now on starts a call of its own."""
        if self.flights.get(self.fkey) is self:
            del self.flights[self.fkey]

    async def leave(self) -> None:
        """A waiter was cancelled; the last one to go cancels the call and waits for its end."""
        self.live -= 1
        if self.live or self.task.done():
            return
        # Every waiter has gone: nobody needs the value. Cancel the call, store nothing, and let
        # no task outlive this last waiter. A caller arriving from now on starts a new call.
        self.abandoned = True
        self.forget()
        self.task.cancel()
        while not self.task.done():
            # Cancelled again meanwhile: this caller raises CancelledError anyway, afterwards.
            with contextlib.suppress(CancelledError):
                await asyncio.wait((self.task,))

    async def fly(self, call: Callable[[], Awaitable[object]]) -> None:
        try:
            value = await call()
        except GeneratorExit:  # this coroutine is being closed (its loop is gone): no delivery
            raise
        except BaseException as exc:
            if self.failed(exc):
                raise
            return
        self.forget()
        if not self.abandoned:
            self.store(self.fkey[1], value)
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(value)
        self.waiters.clear()

    def failed(self, exc: BaseException) -> bool:
        """Deliver `exc` to every waiter; True if nobody was left and it must propagate."""
        self.forget()
        waiting = [w for w in self.waiters if not w.done()]
        self.waiters.clear()
        if not waiting:
            if isinstance(exc, CancelledError):  # the cancellation every waiter's leaving sent
                return False
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: never swallowed
                return True
            logger.error(
                "node %r: its cached call failed after every caller had gone: %r",
                self.node,
                exc,
                exc_info=exc,
                extra={
                    "dagwire_dag": None,
                    "dagwire_run_id": None,
                    "dagwire_node": self.node,
                    "dagwire_attempt": None,
                },
            )
            return False
        # Each waiter gets its own object, so that each run adds its note to its own object.
        # Copies are made before any waiter runs: they hold the notes of the call only.
        copies = [copy_exception(exc) for _ in waiting[1:]]
        waiting[0].set_exception(exc)
        for waiter, dup in zip(waiting[1:], copies, strict=True):
            waiter.set_exception(dup)
        return False


def copy_exception(exc: BaseException) -> BaseException:
    """A new exception object like `exc`, or `exc` itself when no copy can be made.

    The copy has the same type, `args` and attributes (shallow: attribute values and the
    leaves of an exception group are shared), `__cause__`, `__context__`,
    `__suppress_context__`, traceback, and a list of its own holding the notes `exc` has now.
    It is made as `copy.copy` makes it, from the type's own ``__reduce_ex__`` (the pickle
    protocol; not the `copyreg` table, where libraries such as tblib, which Dask installs,
    replace how every exception pickles); when that fails, the object is built with the type's
    ``__new__`` and given `exc`'s attributes without calling ``__init__`` (for types whose
    ``__init__`` takes other arguments than it stores in `args`). A type whose ``__copy__``
    returns the object itself, or that neither way can build, gets `exc` back.
    """
    cls = type(exc)
    dup: BaseException | None
    try:
        dup = _reconstructed(exc)
    except Exception:
        dup = None
    if dup is exc:
        return exc
    if dup is None or type(dup) is not cls:
        try:
            dup = cls.__new__(cls, *exc.args)
            dup.__dict__.update(exc.__dict__)
        except Exception:
            return exc
        if type(dup) is not cls:
            return exc
    with contextlib.suppress(Exception):
        dup.args = exc.args  # an __init__ that rewrites its arguments would have changed them
    dup.__cause__ = exc.__cause__
    dup.__context__ = exc.__context__
    dup.__suppress_context__ = exc.__suppress_context__
    dup.__traceback__ = exc.__traceback__
    notes = exc.__dict__.get("__notes__")
    if isinstance(notes, list):
        dup.__notes__ = list(notes)  # pyright: ignore[reportUnknownArgumentType]  # any items
    else:
        dup.__dict__.pop("__notes__", None)
    return dup


def _reconstructed(exc: BaseException) -> BaseException | None:
    """`copy.copy(exc)` as the exception's type defines it (``__copy__``, else
    ``__reduce_ex__``), bypassing the `copyreg` dispatch table."""
    own_copy = getattr(type(exc), "__copy__", None)
    if own_copy is not None:
        copied: BaseException = own_copy(exc)
        return copied
    reduced = exc.__reduce_ex__(2)
    if not isinstance(reduced, tuple) or len(reduced) < 2:
        return None
    make, args, *rest = reduced
    dup = make(*args)
    state = rest[0] if rest else None
    if state:
        setstate = getattr(dup, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        elif isinstance(state, dict):
            dup.__dict__.update(state)
    return dup if isinstance(dup, BaseException) else None


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _check(
    ttl: object, maxsize: object, key: object, clock: object
) -> None:  # arguments from users: checked whatever their annotations say
    problems: list[str] = []
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or math.isnan(ttl) or ttl < 0:
        problems.append(
            f"ttl={ttl!r} (seconds an entry stays fresh: a number >= 0; math.inf for entries "
            "that only eviction removes; 0 keeps none, concurrent callers still share one call)"
        )
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
        problems.append(f"maxsize={maxsize!r} (entries kept: an int >= 0; 0 keeps none)")
    if key is not None and not callable(key):
        problems.append(f"key={key!r} (a function of the input values returning a hashable key)")
    if not callable(clock):
        problems.append(f"clock={clock!r} (a function returning seconds, like time.monotonic)")
    if problems:
        raise DagDefinitionError(
            "this Cache cannot work: " + "; ".join(problems) + ". Fix those arguments."
        )
