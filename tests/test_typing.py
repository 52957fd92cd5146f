"""The typing contract (SPEC section 7), enforced by the type checkers themselves.

- `src/dagwire/_overloads.py` is exactly what `tools/gen_overloads.py` writes;
- mypy --strict and pyright (strict, from pyproject) accept `tests/typing/check_ok.py`, including
  every `assert_type`, and report every misuse in `tests/typing/check_misuse.py`: each misuse line
  carries a `# type: ignore[...]` that both checkers fail on when it suppresses nothing.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "typing").glob("check_*.py"))
INSTALL = "install the dev extra: pip install -e '.[dev]'"


def run(*command: str) -> str:
    """Run `command` in the repository root; its output if it succeeds, else fail with it."""
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(command)} exited with {proc.returncode}:\n{output}"
    return output


def test_the_cases_exist() -> None:
    assert CASES == ["tests/typing/check_misuse.py", "tests/typing/check_ok.py"]


def test_generated_overloads_are_current() -> None:
    run(sys.executable, "tools/gen_overloads.py", "--check")


def test_every_deliberate_misuse_is_marked_with_a_code_and_a_reason() -> None:
    text = (ROOT / "tests" / "typing" / "check_misuse.py").read_text()
    assert "# pyright: reportUnnecessaryTypeIgnoreComment=error" in text
    ignores = [line for line in text.splitlines() if "  # type: ignore" in line]
    assert len(ignores) >= 30
    for line in ignores:
        assert re.search(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \S", line), line


def test_mypy_strict_accepts_the_correct_code_and_reports_each_misuse() -> None:
    assert importlib.util.find_spec("mypy") is not None, f"mypy is not installed: {INSTALL}"
    output = run(sys.executable, "-m", "mypy", "--strict", *CASES)
    assert f"no issues found in {len(CASES)} source files" in output, output


def test_pyright_accepts_the_correct_code_and_reports_each_misuse() -> None:
    exe = Path(sys.executable).with_name("pyright")
    if exe.exists():
        command = [str(exe)]
    else:
        assert importlib.util.find_spec("pyright") is not None, f"pyright is missing: {INSTALL}"
        command = [sys.executable, "-m", "pyright"]
    output = run(*command, *CASES)
    assert "0 errors, 0 warnings" in output, output
