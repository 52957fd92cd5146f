"""The typing contract (SPEC section 7), enforced by the type checkers themselves.

- `src/dagwire/_overloads.py` is exactly what `tools/gen_overloads.py` writes;
- mypy --strict and pyright (strict, from pyproject) accept `tests/typing/check_ok.py`, including
  every `assert_type`, and report every misuse in `tests/typing/check_misuse.py`: each misuse line
  carries a `# type: ignore[...]` that both checkers fail on when it suppresses nothing;
- a misspelt option is one short error naming it, not a list of every overload.
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


def run(*command: str, ok: bool = True) -> str:
    """Run `command` in the repository root; its output. Fail with it if it does not exit
    with 0 (`ok`) or with an error status (not `ok`)."""
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, f"{' '.join(command)} exited {proc.returncode}:\n{output}"
    return output


def mypy() -> list[str]:
    assert importlib.util.find_spec("mypy") is not None, f"mypy is not installed: {INSTALL}"
    return [sys.executable, "-m", "mypy", "--strict"]


def pyright() -> list[str]:
    exe = Path(sys.executable).with_name("pyright")
    if exe.exists():
        return [str(exe)]
    assert importlib.util.find_spec("pyright") is not None, f"pyright is missing: {INSTALL}"
    return [sys.executable, "-m", "pyright"]


def test_the_cases_exist() -> None:
    assert CASES == ["tests/typing/check_misuse.py", "tests/typing/check_ok.py"]


def test_generated_overloads_are_current() -> None:
    run(sys.executable, "tools/gen_overloads.py", "--check")


def test_every_deliberate_misuse_is_marked_with_a_code_and_a_reason() -> None:
    text = (ROOT / "tests" / "typing" / "check_misuse.py").read_text()
    assert "# pyright: reportUnnecessaryTypeIgnoreComment=error" in text
    ignores = [line for line in text.splitlines() if "  # type: ignore" in line]
    assert len(ignores) >= 60
    for line in ignores:
        assert re.search(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \S", line), line


def test_mypy_strict_accepts_the_correct_code_and_reports_each_misuse() -> None:
    output = run(*mypy(), *CASES)
    assert f"no issues found in {len(CASES)} source files" in output, output


def test_pyright_accepts_the_correct_code_and_reports_each_misuse() -> None:
    output = run(*pyright(), *CASES)
    assert "0 errors, 0 warnings" in output, output


MISSPELT = """\
from collections.abc import Iterator

from dagwire import build_dag


def needs_int(x: int) -> str:
    return str(x)


def connect(dsn: str) -> Iterator[bytes]:
    yield dsn.encode()


with build_dag() as dag:
    dag.add_node(needs_int, dag.add_immediate_node(1), retires=3)
    dag.add_resource(connect, "db", retires=3)
    dag.add_map(needs_int, [1, 2], retires=3)
"""
CALLS = ("add_node", "add_resource", "add_map")


def test_mypy_names_a_misspelt_option_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "misspelt.py").write_text(MISSPELT)
    output = run(*mypy(), str(tmp_path / "misspelt.py"), ok=False)
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert [call for call in CALLS for e in errors if f'"retires" to "{call}"' in e] == list(CALLS)
    assert len(output.splitlines()) == len(CALLS) + 1, output  # no note listing the overloads


def test_pyright_names_a_misspelt_option(tmp_path: Path) -> None:
    (tmp_path / "misspelt.py").write_text(MISSPELT)
    output = run(*pyright(), str(tmp_path / "misspelt.py"), ok=False)
    lines = output.splitlines()
    for call in CALLS:
        assert any('parameter "retires"' in s and f'function "{call}"' in s for s in lines), output
    assert len(lines) < 10 * len(CALLS), output
