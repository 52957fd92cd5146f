"""Counts of the examples this session ran, by test and outcome (printed at the end)."""

from __future__ import annotations

from collections import Counter

EXAMPLES: Counter[str] = Counter()  # examples per property
OUTCOMES: Counter[str] = Counter()  # runs per (property, on_error, outcome)
