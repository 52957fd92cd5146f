"""Write `src/dagwire/_overloads.py`: the typed `add_node`/`add_resource`/`add_map` of `Dag`.

    python tools/gen_overloads.py          # (re)write the file
    python tools/gen_overloads.py --check  # exit 1 if the file is not what this script writes

Each method is a list of overloads, tried in order by the type checkers, then one implementation
that hands everything to the graph (`Dag._add`, `Dag._add_map`). The layout is what both mypy
and pyright infer well, with as few overloads as that allows (each costs checker time, and mypy
prints them all when a known option has the wrong type). For `add_node`, per number n of inputs
(each input `Node[Ti] | Ti`, a node or a constant, unless said otherwise):

- A, B: `Callable[[T1..Tn], Awaitable[R]]`, then with the injected invoke parameter P
  appended. First, so that an `async def` gives `Node[R]`, not `Node[Coroutine[...]]` (a sync
  callable returning an awaitable is awaited at run time, so `Node[R]` is right for it too).
- An, Bn: A and B over nodes only, for mypy: it types a lambda returning an awaitable as
  `Node[Any]` (it cannot tell which of An and C is meant) instead of the wrong
  `Node[Coroutine[...]]`.
- G: a generator function (`-> AsyncIterator[R] | Generator[R, ...]`), `@deprecated`: it is a
  resource. Pyright reports a deprecated overload in strict mode, mypy with its `deprecated`
  error code on. A sync function annotated `-> Iterator[T]` cannot be told from one returning
  an iterator, so only generator functions annotated `Generator` (or async ones) are caught.
  Its result is `Node[R]` like the others', so that a callable typed `Any` (every overload
  matches it) gives one result and is not reported.
- C, D: `Callable[[T1..Tn], R]`, without / with P, over nodes only: mypy infers a lambda only
  against one callable type whose argument types it solved, and it cannot solve Ti from
  `Node[Ti] | Ti` when the callable is a lambda.
- E1, E2: `Callable[[T1..Tn], R]`, without / with P, over nodes or constants.

Order: A, An, G, C, E1, then B, Bn, D, E2: an async form must come before the sync form of the
same arity (else an `async def` is taken for a sync function returning a coroutine), and a
sync function without the injected parameter, the most common call, matches on the fourth or
fifth try. No union of callable types anywhere: mypy checks every overload when an argument is
a lambda (its type holds Any), and a union context turns the lambda into `Any`, the result into
`Node[Any]`. A and E1 for n = 0 end in `*inputs: Never`: a call whose inputs are star-unpacked
from an iterable of unknown length is then not taken for a call without inputs. Only those
two: each form ending so is tried, in vain, by every call with inputs, which costs time.

After the fixed arities: a variadic function (`def total(*xs: int)`) fed any number of inputs,
star-unpacked or not (`Callable[[*tuple[T, ...]], R]`), async then sync; then an untyped
overload for 11 to UNTYPED_MAX inputs (`Node[Any]`), ending in `*more: Never` too, so that
star-unpacked inputs of the wrong type are an error rather than an untyped node.

Options are keyword-only parameters. `fallback: R | Callable[[NoValue], R]`: the node's value
is the function's or the fallback, so R covers both (pyright: their union, mypy: their join),
and a node with `fallback=None` is `Node[R | None]`. The callable part accepts nothing (no
value is a `NoValue`); it is there because mypy otherwise solves R from the fallback alone and
refuses `fallback=0` for a function returning float. A checker cannot refuse `fallback="x"`
for a function returning int in the call itself: both give R lower bounds, which pyright
unions by design; the widened type reaches every use of the node instead.

Unknown options: the sync forms C, D, E1, E2 also take `**unknown_option: UnknownOption[Never]`,
which no value is assignable to, so `retires=3` fails there and both checkers name the keyword.
The protocol is generic only so that mypy, looking for the overload a failed call meant (types
erased), finds the first of them whose inputs fit and reports that overload's errors instead of
listing every overload: one line, or two when the function takes the injected parameter (the
form without it comes first). A known option of the wrong type (`timeout="5"`) still makes mypy
list the overloads: no erased form of the right type exists for it.

`add_resource`: context managers first (entered even when iterable, as at run time), then
(async) generators; a nodes-only form for lambdas. `add_map`: async, async and sync over nodes
only (for lambdas, as above), sync; then async and sync taking the injected parameter last.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

NODE_ARITY = 10
RESOURCE_ARITY = 6
MAP_ARITY = 3  # inputs after the items
UNTYPED_MAX = 20  # inputs the untyped overload takes
TARGET = Path(__file__).resolve().parents[1] / "src" / "dagwire" / "_overloads.py"

# The keyword options: (name, annotation, methods). The same names as the run-time parser.
OPTIONS = (
    ("name", "str | None", "nrm"),
    ("after", "Node[object] | Iterable[Node[object]]", "nrm"),
    ("timeout", "float | None", "nrm"),
    ("retry", "Retry | int | None", "nrm"),
    ("fallback", "FALLBACK", "nrm"),
    ("breaker", "CircuitBreaker | None", "nrm"),
    ("limiter", "Limiter | None", "nrm"),
    ("executor", "ExecutorLike | None", "nrm"),
    ("pre", "Callable[..., object] | None", "nrm"),
    ("post", "Callable[..., object] | None", "nrm"),
    ("tags", "Iterable[str]", "nrm"),
    ("cleanup_timeout", "float | None", "nrm"),
    ("cache", "Cache | None", "n"),
    ("release", 'Literal["end", "early"]', "r"),
)
UNKNOWN = "**unknown_option: UnknownOption[Never]"
GENERATED = "Generated[R]"
GENERATOR_MESSAGE = "a generator function is a resource: use add_resource()"

HEADER = '''\
# generated by tools/gen_overloads.py, do not edit
"""Typed `add_node`, `add_resource` and `add_map` of `Dag` (the layout: tools/gen_overloads.py)."""

# Pyright's pairwise overlap check of these overloads triples its time on this file; their
# resolution is checked by tests/typing instead.
# pyright: reportOverlappingOverload=false

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import (
    Any,
    Generic,
    Literal,
    Never,
    Protocol,
    TypeAlias,
    TypeVar,
    final,
    overload,
)

from typing_extensions import deprecated

from .cache import Cache
from .definition import NodeKind
from .executors import ExecutorLike
from .node import Node
from .policies import CircuitBreaker, Limiter, Retry

__all__ = ["NoValue", "TypedAdders", "UnknownOption"]

P = TypeVar("P")
R = TypeVar("R")
T = TypeVar("T")
Y = TypeVar("Y")
{typevars}
_S_co = TypeVar("_S_co", covariant=True, bound=str)

# What a resource factory returns: something entered, or a generator's first value.
Entered: TypeAlias = AbstractAsyncContextManager[R] | AbstractContextManager[R]
Yielded: TypeAlias = AsyncIterator[R] | Iterator[R]
# What a generator function returns (given to add_node by mistake).
Generated: TypeAlias = AsyncIterator[R] | Generator[R, Never, object]


@final
class NoValue:
    """A class without instances. In `fallback: R | Callable[[NoValue], R]` the callable part
    accepts nothing real; it makes mypy solve R from the function and the fallback together
    (joining them) instead of from the fallback alone, which refused `fallback=0` for a
    function returning float."""


class UnknownOption(Protocol[_S_co]):
    """The type of a keyword that is not an option: `UnknownOption[Never]` has no values."""

    def __repr__(self) -> _S_co: ...


class TypedAdders(Generic[P]):
    """The typed surface of `Dag`'s `add_node`, `add_resource` and `add_map`."""

    def _add(
        self,
        kind: NodeKind,
        fn: Callable[..., object],
        inputs: Sequence[object],
        options: Mapping[str, Any],
    ) -> Node[Any]:
        raise NotImplementedError

    def _add_map(
        self,
        fn: Callable[..., object],
        items: object,
        others: Sequence[object],
        limit: int | None,
        options: Mapping[str, Any],
    ) -> Node[Any]:
        raise NotImplementedError("add_map: the graph does not implement it yet")

'''


def define(
    method: str, params: list[str], returns: str, *, body: str = " ...", decorators: str = ""
) -> str:
    """`def method(params) -> returns:body`, its parameters packed into lines of <= 100 chars."""
    text = f"    def {method}({', '.join(params)}) -> {returns}:{body}\n"
    if len(text.partition("\n")[0]) > 100:
        lines = [""]
        for param in params:
            if len(lines[-1]) + len(param) > 90:
                lines.append("")
            lines[-1] += f"{param}, "
        packed = "".join(f"        {line.rstrip()}\n" for line in lines)
        text = f"    def {method}(\n{packed}    ) -> {returns}:{body}\n"
    head = "    @overload\n" if body == " ..." else ""
    return head + decorators + text


def options(method: str) -> list[str]:
    key = method.removeprefix("add_")[0]  # n(ode), r(esource), m(ap)
    value = "list[R]" if key == "m" else "R"
    fallback = f"{value} | Callable[[NoValue], {value}]"
    return [
        f"{name}: {annotation.replace('FALLBACK', fallback)} = ..."
        for name, annotation, where in OPTIONS
        if key in where
    ]


def inputs(types: Iterable[str], *, nodes_only: bool, first: int = 1) -> list[str]:
    return [
        f"a{i}: Node[{t}]" + ("" if nodes_only else f" | {t}") for i, t in enumerate(types, first)
    ]


def callable_of(args: list[str], result: str, *, inject: bool | None) -> str:
    """`Callable[[args], result]`; with the invoke parameter appended, or both when None."""
    plain = f"Callable[[{', '.join(args)}], {result}]"
    injected = f"Callable[[{', '.join([*args, 'P'])}], {result}]"
    return {False: plain, True: injected, None: f"{plain} | {injected}"}[inject]


def add_node() -> str:
    out: list[str] = []
    for n in range(NODE_ARITY + 1):
        types = [f"T{i}" for i in range(1, n + 1)]
        forms = [  # (name, fn, inputs over nodes only, carries unknown options): see the docstring
            ("A", callable_of(types, "Awaitable[R]", inject=False), False, False),
            ("An", callable_of(types, "Awaitable[R]", inject=False), True, False),
            ("G", callable_of(types, GENERATED, inject=False), False, False),
            ("C", callable_of(types, "R", inject=False), True, True),
            ("E1", callable_of(types, "R", inject=False), False, True),
            ("B", callable_of(types, "Awaitable[R]", inject=True), False, False),
            ("Bn", callable_of(types, "Awaitable[R]", inject=True), True, False),
            ("D", callable_of(types, "R", inject=True), True, True),
            ("E2", callable_of(types, "R", inject=True), False, True),
        ]
        for name, fn, nodes_only, unknown in forms:
            if n == 0 and nodes_only:
                continue  # without inputs, "nodes only" is the same as "nodes or constants"
            # Without inputs, the forms a variadic function matches refuse star-unpacked ones.
            tail = ["*inputs: Never" if n == 0 and name in ("A", "E1") else "*"]
            params = ["self", f"fn: {fn}", *inputs(types, nodes_only=nodes_only), "/", *tail]
            params += options("add_node")
            decorators = f'    @deprecated("{GENERATOR_MESSAGE}")\n' if name == "G" else ""
            out.append(
                define("add_node", params + [UNKNOWN] * unknown, "Node[R]", decorators=decorators)
            )
    for result, unknown in (("Awaitable[R]", False), ("R", True)):
        params = ["self", f"fn: Callable[[*tuple[T, ...]], {result}]", "/", "*inputs: Node[T] | T"]
        params += options("add_node") + [UNKNOWN] * unknown
        out.append(define("add_node", params, "Node[R]"))
    out.append(untyped("add_node", "fn", NODE_ARITY, "Node[Any]", more="Never"))
    call = "self._add(NodeKind.CALL, fn, inputs, options)"
    out.append(implementation("add_node", "fn", call))
    return "".join(out)


def untyped(
    method: str,
    arg: str,
    arity: int,
    returns: str,
    *,
    lead: tuple[str, ...] = (),
    kw: tuple[str, ...] = (),
    more: str = "object",
) -> str:
    """Any callable with inputs beyond the typed arity, untyped. With `more="Never"`, it takes
    up to UNTYPED_MAX inputs and no star-unpacked ones (see the docstring)."""
    required = [f"a{i}: object" for i in range(1, arity + 2)]
    optional = [f"a{i}: object = ..." for i in range(arity + 2, UNTYPED_MAX + 1)]
    params = ["self", f"{arg}: Callable[..., object]", *lead, *required]
    params += [*optional, "/"] if more == "Never" else ["/"]
    return define(method, [*params, f"*more: {more}", *kw, *options(method), UNKNOWN], returns)


def implementation(method: str, arg: str, call: str, lead: tuple[str, ...] = ()) -> str:
    """The one definition behind the overloads. Its docstring, what help() shows, is set from
    `dagwire/_docs.py` by graph.py (one copy of the text, kept out of this generated file)."""
    params = ["self", f"{arg}: Callable[..., object]", *lead, "/", "*inputs: object"]
    body = f"\n        return {call}"
    return define(method, [*params, "**options: Any"], "Node[Any]", body=body)


def add_resource() -> str:
    out: list[str] = []
    for n in range(RESOURCE_ARITY + 1):
        types = [f"T{i}" for i in range(1, n + 1)]
        tail = ["*"]
        forms = [  # context managers first: entered even when iterable, as at run time
            (callable_of(types, "Entered[R]", inject=False), True, False),
            (callable_of(types, "Entered[R]", inject=False), False, False),
            (callable_of(types, "Entered[R]", inject=True), False, False),
            (callable_of(types, "Yielded[R]", inject=False), False, True),
            (callable_of(types, "Yielded[R]", inject=True), False, True),
        ]
        for fn, nodes_only, unknown in forms[1:] if n == 0 else forms:
            params = ["self", f"factory: {fn}", *inputs(types, nodes_only=nodes_only), "/"]
            params += tail + options("add_resource") + [UNKNOWN] * unknown
            out.append(define("add_resource", params, "Node[R]"))
    out.append(untyped("add_resource", "factory", RESOURCE_ARITY, "Node[Any]"))
    call = "self._add(NodeKind.RESOURCE, factory, inputs, options)"
    out.append(implementation("add_resource", "factory", call))
    return "".join(out)


def add_map() -> str:
    out: list[str] = []
    for k in range(MAP_ARITY + 1):
        types = [f"T{i}" for i in range(1, k + 1)]
        forms = [  # (result, injected, items and others over nodes only, carries unknown options)
            ("Awaitable[R]", False, False, False),
            ("Awaitable[R]", False, True, False),
            ("R", False, True, False),
            ("R", False, False, True),
            ("Awaitable[R]", True, False, False),
            ("R", True, False, True),
        ]
        for result, inject, nodes_only, unknown in forms:
            items = "items: Node[Iterable[T]]" + ("" if nodes_only else " | Iterable[T]")
            fn = f"fn: {callable_of(['T', *types], result, inject=inject)}"
            params = ["self", fn, items, *inputs(types, nodes_only=nodes_only), "/", "*"]
            params += ["limit: int | None = ...", *options("add_map")] + [UNKNOWN] * unknown
            out.append(define("add_map", params, "Node[list[R]]"))
    lead, kw = ("items: object",), ("limit: int | None = ...",)
    out.append(untyped("add_map", "fn", MAP_ARITY, "Node[list[Any]]", lead=lead, kw=kw))
    params = ["self", "fn: Callable[..., object]", "items: object", "/", "*inputs: object"]
    params += ["limit: int | None = None", "**options: Any"]
    call = "self._add_map(fn, items, inputs, limit, options)"
    body = f"\n        return {call}"  # (docstring: _docs.ADD_MAP, set by graph.py)
    out.append(define("add_map", params, "Node[list[Any]]", body=body))
    return "".join(out)


def generate() -> str:
    typevars = "\n".join(f'T{i} = TypeVar("T{i}")' for i in range(1, NODE_ARITY + 1))
    return "".join(
        (
            HEADER.format(typevars=typevars),
            add_node(),
            "\n",
            add_resource(),
            "\n",
            add_map(),
        )
    )


def main(argv: list[str]) -> int:
    text = generate()
    if argv == ["--check"]:
        if TARGET.exists() and TARGET.read_text() == text:
            return 0
        print(f"{TARGET} is stale: run `python tools/gen_overloads.py`", file=sys.stderr)
        return 1
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
