"""Per-node policies: retry, circuit breaker and limiter.

`Retry` is a frozen definition. `CircuitBreaker` and `Limiter` are deliberately *mutable shared
objects*: their whole point is to be shared by the nodes, runs and graphs that hold them.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from .errors import CircuitOpenError, DagDefinitionError, RetryableError

__all__ = ["BreakerState", "CircuitBreaker", "Limiter", "Retry"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

# The jitter source when a Retry is not given its own `rng`; tests may seed it.
default_rng = random.Random()


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry a node body: `attempts` calls in total, exponential backoff, optional jitter.

    Give it as `add_node(fn, retry=Retry(...))`; `retry=3` is short for `Retry(attempts=3)`.
    Delays are in seconds: `initial_delay` (default 0.1) before the first retry, growing by
    `backoff` (2.0) per retry up to `max_delay` (30.0). The default `on` is
    ``(TimeoutError, ConnectionError, RetryableError)``: `ValueError` and the errors of HTTP
    libraries (``httpx.TransportError``, ``aiohttp.ClientError``) are *not* retried unless
    listed, e.g. ``Retry(on=(httpx.TransportError,))``. `rng` seeds the jitter (tests).

    The delay before retry k (k = 1 for the second call) is
    ``min(initial_delay * backoff ** (k - 1), max_delay)``, multiplied by a uniform factor in
    [0.5, 1.0] when `jitter` is on. Only exceptions of the types in `on` are retried, never
    `CancelledError`, `KeyboardInterrupt` or `SystemExit`; an `ExceptionGroup` is retried only
    if every leaf is retryable.
    """

    attempts: int = 3
    initial_delay: float = 0.1
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: bool = True
    on: tuple[type[Exception], ...] = (TimeoutError, ConnectionError, RetryableError)
    rng: random.Random | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _is_int(self.attempts) or self.attempts < 1:
            problems.append(f"attempts={self.attempts!r} (must be an int >= 1: calls in total)")
        for label, value in (("initial_delay", self.initial_delay), ("max_delay", self.max_delay)):
            if not _is_real(value) or not (0 <= value < math.inf):
                problems.append(f"{label}={value!r} (a delay must be a finite number >= 0)")
        if not _is_real(self.backoff) or not (1 <= self.backoff < math.inf):
            problems.append(f"backoff={self.backoff!r} (must be a finite number >= 1)")
        if not isinstance(self.on, tuple) or not self.on:
            problems.append(f"on={self.on!r} (must be a non-empty tuple of exception types)")
        elif not all(isinstance(t, type) and issubclass(t, Exception) for t in self.on):
            problems.append(
                f"on={self.on!r} (every entry must be an Exception subclass; "
                "BaseExceptions such as CancelledError are never retried)"
            )
        if problems:  # documented: a policy that cannot work is a DagDefinitionError
            raise DagDefinitionError(
                "this Retry policy cannot work: " + "; ".join(problems) + ". Fix those arguments."
            )

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 = before the second call).

        ``min(initial_delay * backoff ** (retry_number - 1), max_delay)``, times a uniform
        factor in [0.5, 1.0] drawn from `rng` (or a module-level `random.Random`) with `jitter`.
        """
        try:
            grown = self.initial_delay * self.backoff ** (retry_number - 1)
        except OverflowError:  # backoff ** k beyond float range: far past any cap
            grown = self.max_delay if self.initial_delay else 0.0
        base = min(grown, self.max_delay)
        if self.jitter:
            base *= (self.rng or default_rng).uniform(0.5, 1.0)
        return base

    def should_retry(self, exc: BaseException) -> bool:
        """Whether a call that raised `exc` is retried: `exc` is an instance of a type in `on`
        (for an `ExceptionGroup`: every leaf is). Attempts left are not considered here."""
        if isinstance(exc, BaseExceptionGroup):
            group = cast(BaseExceptionGroup[BaseException], exc)
            return all(self.should_retry(leaf) for leaf in group.exceptions)
        return isinstance(exc, self.on)


class BreakerState(enum.Enum):
    """A `CircuitBreaker`'s state: CLOSED (calls go through), OPEN (calls fail fast with
    `CircuitOpenError`), HALF_OPEN (one trial call is let through)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Fail fast after `fail_max` consecutive failures; try one call again after `reset_timeout`.

    Give it as `add_node(fn, breaker=CircuitBreaker(...))`. One object is shared by every node,
    run and graph that holds it. CLOSED: calls go through; `fail_max` (default 5) failures in a
    row open it. OPEN: calls fail at once with `CircuitOpenError` (or take their node's
    `fallback=`) until `reset_timeout` seconds (default 30.0) have passed; then HALF_OPEN: one
    trial call goes through, and its success closes the breaker, its failure opens it again.
    Only a call admitted while the breaker was closed (and has not opened since), or the
    half-open trial, counts: a slow call admitted before the breaker opened cannot close it.
    `clock` (seconds, default `time.monotonic`) is for tests. Raises `DagDefinitionError` if
    `fail_max < 1` or `reset_timeout < 0`.
    """

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not _is_int(fail_max) or fail_max < 1:
            raise DagDefinitionError(
                f"CircuitBreaker(fail_max={fail_max!r}): must be an int >= 1"
            )
        if not _is_real(reset_timeout) or not (0 <= reset_timeout < math.inf):
            raise DagDefinitionError(
                f"CircuitBreaker(reset_timeout={reset_timeout!r}): must be a finite number of "
                "seconds >= 0"
            )
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._epoch = 0  # closed periods so far: a ticket from an earlier one no longer counts
        self._trial_running = False
        self._listeners: list[Callable[[BreakerState, BreakerState], None]] = []

    @property
    def state(self) -> BreakerState:
        """The current state (an OPEN breaker whose `reset_timeout` passed reports OPEN until
        the next call asks)."""
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failed calls counted so far (reset by a success)."""
        return self._failures

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker {self._state.name} failures={self._failures}/{self.fail_max} "
            f"reset_timeout={self.reset_timeout}s>"
        )

    def add_listener(self, listener: Callable[[BreakerState, BreakerState], None]) -> None:
        """Call `listener(old, new)` (two `BreakerState`s) on every state change."""
        self._listeners.append(listener)

    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            if new is BreakerState.CLOSED:
                self._epoch += 1
            for listener in self._listeners:
                listener(old, new)

    def before_call(self) -> int:
        """Admit a call, or raise `CircuitOpenError`. Returns the ticket that the call's outcome
        is reported with (`on_success`, `on_failure`, `on_abandoned`)."""
        if self._state is BreakerState.CLOSED:
            return self._epoch
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.reset_timeout:
                raise CircuitOpenError(
                    f"circuit open after {self._failures} failures; "
                    f"retrying after {self.reset_timeout}s"
                )
            self._set(BreakerState.HALF_OPEN)
        if self._trial_running:
            raise CircuitOpenError("circuit half-open: a trial call is already running")
        self._trial_running = True
        return _TRIAL

    def _counts(self, ticket: int) -> bool:
        """Whether the outcome of the call holding `ticket` may change the breaker."""
        if ticket == _TRIAL:
            self._trial_running = False
            return self._state is BreakerState.HALF_OPEN
        return self._state is BreakerState.CLOSED and ticket == self._epoch

    def on_success(self, ticket: int) -> None:
        """The admitted call succeeded."""
        if self._counts(ticket):
            self._failures = 0
            self._set(BreakerState.CLOSED)

    def on_failure(self, ticket: int) -> None:
        """The admitted call failed."""
        if not self._counts(ticket):
            return
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.fail_max:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def on_abandoned(self, ticket: int) -> None:
        """The admitted call was cancelled: it proves nothing either way."""
        if ticket == _TRIAL:
            self._trial_running = False


_TRIAL = -1  # the ticket of the half-open trial call


class Limiter:
    """At most `limit` node bodies at once, across every run and graph that shares this object.

    Give it as `add_node(fn, limiter=Limiter(n))`: a node waits for a free slot before each
    attempt and frees it when the attempt has really stopped (on a resource: its setup). Slots
    are handed out first come, first served. Raises `DagDefinitionError` unless `limit` is an
    int >= 1. `invoke(max_concurrency=)` is the per-run counterpart.

    Not an `asyncio.Semaphore`: that binds itself to the first event loop that uses it, and a
    limiter is typically a module-level object outliving loops (tests, `asyncio.run` twice).
    """

    def __init__(self, limit: int, /) -> None:
        if not _is_int(limit) or limit < 1:
            raise DagDefinitionError(f"Limiter({limit!r}): the limit must be an int >= 1")
        self.limit = limit
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        """Slots held right now (0 to `limit`)."""
        return self.limit - self._free

    @property
    def waiting(self) -> int:
        """Callers queued for a slot right now."""
        return sum(1 for w in self._waiters if not w.done())

    def __repr__(self) -> str:
        return f"<Limiter in_use={self.in_use}/{self.limit} waiting={self.waiting}>"

    async def acquire(self) -> None:
        """Wait for a free slot and take it; pair every call with one `release()`."""
        if self._free and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # we were handed a slot but cannot use it: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back (to the longest waiter, if any)."""
        # Hand the slot straight to the next live waiter, so nobody can jump the queue.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
