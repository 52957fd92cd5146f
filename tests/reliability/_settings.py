"""Hypothesis profiles of the reliability suite, chosen with `DAGWIRE_RELIABILITY`.

- "ci" (default): derandomized, so every run of the suite checks the same examples: a CI failure
  always reproduces locally and never shows up in a change that did not cause it. (Examples
  still differ in timing from run to run, tiny sleeps, timeouts, cancellation delays, which the
  oracle tolerates by construction.) 2,140 examples per Python (1,500 + 600 + 40, split between
  the loop kinds), a few minutes on a 2-core machine.
- "long" (`DAGWIRE_RELIABILITY=long`): 20x the examples, random seeds, and hypothesis' example
  database (a failure is replayed first next time), to explore new ground: run it before a
  release or after touching the scheduler, the lifecycle or a policy.

`DAGWIRE_RELIABILITY_ONLY=<regex>` (a tool for investigating, not for CI) makes an example fail
only when one of its violations matches the regex, so that hypothesis shrinks an example of
that kind of violation rather than of the first one it met.

The profiles apply only to this suite's tests (through `examples()`), not to other hypothesis
tests of the session.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from ._loops import LOOP_KINDS

# The hygiene fixture of tests/conftest.py is function-scoped, so it wraps a whole hypothesis
# test; that is fine because every example runs in its own fresh event loop (see _harness).
_SUPPRESSED = [
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
]

settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None, suppress_health_check=_SUPPRESSED
)
settings.register_profile(
    "long", deadline=None, derandomize=False, print_blob=True, suppress_health_check=_SUPPRESSED
)

PROFILE = os.environ.get("DAGWIRE_RELIABILITY", "ci")
if PROFILE not in ("ci", "long"):
    raise RuntimeError(f"DAGWIRE_RELIABILITY={PROFILE!r}: use 'ci' (the default) or 'long'")
SCALE = 20 if PROFILE == "long" else 1


def examples(ci_examples: int) -> settings:
    """The profile's settings for a property parametrized over the loop kinds: `ci_examples`
    examples in all (times SCALE for "long"), split between the kinds, so that every Python
    checks as many examples whether it has eager task factories (3.12+) or not."""
    per_kind = -(-ci_examples * SCALE // len(LOOP_KINDS))
    return settings(settings.get_profile(PROFILE), max_examples=per_kind)
