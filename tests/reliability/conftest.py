"""Reports how many examples the reliability properties checked, in pytest's terminal summary.

The hypothesis profiles ("ci", the default, and "long", `DAGWIRE_RELIABILITY=long`) are in
`_settings.py`. `pytest --hypothesis-show-statistics` adds hypothesis' own numbers.
"""

from __future__ import annotations

import pytest

from ._settings import PROFILE
from ._stats import EXAMPLES, OUTCOMES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not EXAMPLES:
        return
    counts = ", ".join(f"{name} {count}" for name, count in sorted(EXAMPLES.items()))
    terminalreporter.section("dagwire reliability")
    terminalreporter.write_line(
        f"{sum(EXAMPLES.values())} examples checked (profile {PROFILE!r}): {counts}"
    )
    for key, count in sorted(OUTCOMES.items()):
        terminalreporter.write_line(f"  {key}: {count}")
