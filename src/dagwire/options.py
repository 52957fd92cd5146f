"""The keyword options of `add_node` / `add_resource`: parsed and checked at build time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from ._callables import takes_argument
from .cache import Cache
from .definition import NO_FALLBACK, NodeOptions
from .errors import DagDefinitionError
from .executors import ExecutorLike, is_executor
from .node import Node
from .policies import CircuitBreaker, Limiter, Retry

__all__ = ["parse_options"]


def parse_options(
    what: str,
    *,
    name: str | None = None,
    after: Node[Any] | Iterable[Node[Any]] = (),
    timeout: float | None = None,
    retry: Retry | int | None = None,
    fallback: object = NO_FALLBACK,
    breaker: CircuitBreaker | None = None,
    limiter: Limiter | None = None,
    executor: ExecutorLike | None = None,
    pre: Callable[..., object] | None = None,
    post: Callable[..., object] | None = None,
    tags: Iterable[str] = (),
    release: Literal["end", "early"] = "end",
    cleanup_timeout: float | None = None,
    cache: Cache | None = None,
) -> tuple[str | None, Node[Any] | Iterable[Node[Any]], tuple[str, ...], NodeOptions | None]:
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise DagDefinitionError(
            f"{what}: timeout={timeout!r} must be a positive number of seconds"
        )
    if cleanup_timeout is not None and not (
        isinstance(cleanup_timeout, int | float) and cleanup_timeout > 0
    ):
        raise DagDefinitionError(
            f"{what}: cleanup_timeout={cleanup_timeout!r} must be a positive number of seconds"
        )
    if isinstance(retry, bool) or (retry is not None and not isinstance(retry, int | Retry)):
        raise DagDefinitionError(f"{what}: retry= takes a Retry or an int, got {retry!r}")
    policy = Retry(attempts=retry) if isinstance(retry, int) else retry
    for label, hook in (("pre", pre), ("post", post)):
        if hook is not None and not callable(hook):
            raise DagDefinitionError(f"{what}: {label}= must be callable, got {hook!r}")
    if breaker is not None and not isinstance(breaker, CircuitBreaker):
        raise DagDefinitionError(f"{what}: breaker= takes a CircuitBreaker, got {breaker!r}")
    if limiter is not None and not isinstance(limiter, Limiter):
        raise DagDefinitionError(f"{what}: limiter= takes a Limiter, got {limiter!r}")
    if executor is not None and not is_executor(executor):
        raise DagDefinitionError(
            f"{what}: executor= takes 'thread', a concurrent.futures.Executor or a Dask "
            f"distributed.Client created with asynchronous=True, got {executor!r}"
        )
    if cache is not None:
        if not isinstance(cache, Cache):
            raise DagDefinitionError(f"{what}: cache= takes a dagwire.Cache, got {cache!r}")
        if pre is not None or post is not None:
            raise DagDefinitionError(
                f"{what}: cache= cannot be combined with pre=/post=: a cached value is shared by "
                "every run while hooks belong to one run; put the hooks on a node of their own"
            )
    if release not in ("end", "early"):
        raise DagDefinitionError(f"{what}: release= must be 'end' or 'early', got {release!r}")
    if isinstance(tags, str):
        tags = (tags,)
    options = NodeOptions(
        timeout=timeout,
        retry=policy,
        fallback=fallback,
        breaker=breaker,
        limiter=limiter,
        executor=executor,
        pre=pre,
        post=post,
        pre_takes_param=pre is not None and takes_argument(pre, what=f"{what} pre"),
        post_takes_param=post is not None and takes_argument(post, what=f"{what} post"),
        release=release,
        cleanup_timeout=cleanup_timeout,
        cache=cache,
    )
    return name, after, tuple(tags), None if options.is_default else options
