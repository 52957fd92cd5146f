"""The README's Python examples run, and type-check with mypy --strict, as users copy them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)


def test_readme_has_examples_and_one_command_per_section() -> None:
    assert BLOCKS, "the README lost its Python examples"
    for section in ("## Try it", "## Test it"):
        body = README.split(section, 1)[1].split("\n## ", 1)[0]
        assert len(re.findall(r"^```sh\n", body, flags=re.MULTILINE)) == 1, section


def test_readme_has_the_testing_and_fastapi_recipes() -> None:
    assert any(pytest_file_of(block) for block in BLOCKS), "no pytest recipe"
    assert any("from fastapi import" in block for block in BLOCKS), "no FastAPI recipe"


def pytest_file_of(block: str) -> str | None:
    """`test_x.py` for a block that starts with `# test_x.py`: a pytest file, run by pytest."""
    first = block.partition("\n")[0]
    found = re.fullmatch(r"# (test_\w+\.py)", first)
    return found.group(1) if found else None


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    name = pytest_file_of(BLOCKS[index]) or f"readme_{index}.py"
    script = tmp_path / name
    script.write_text(BLOCKS[index], encoding="utf-8")
    env = {**os.environ, "PYTHONASYNCIODEBUG": "1"}
    command = [sys.executable, "-W", "error", str(script)]
    if pytest_file_of(
        BLOCKS[index]
    ):  # exit status 0 means tests ran and passed (5: none collected)
        command = [sys.executable, "-W", "error", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        # A project's own pytest configuration would set this; pytest-asyncio warns without it.
        command += ["-o", "asyncio_default_fixture_loop_scope=function"]
        command += ["--rootdir", str(tmp_path), str(script)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_examples_type_check(tmp_path: Path) -> None:
    files: list[str] = []
    for index, block in enumerate(BLOCKS):
        script = tmp_path / (pytest_file_of(block) or f"readme_{index}.py")
        script.write_text(block, encoding="utf-8")
        files.append(str(script))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *files],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: check as a user of the installed package would
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
