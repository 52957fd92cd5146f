#!/usr/bin/env bash
# Run the benchmarks on every Python and write benchmarks/RESULTS.md.
#
#   benchmarks/run_all.sh                    # 3.11, 3.12, 3.13: --check, then the full run
#   PYTHONS="3.12" benchmarks/run_all.sh     # a subset
#   benchmarks/run_all.sh --clock cpu        # extra arguments go to run.py
#
# Each Python gets its own venv, .bench-venv-<version> at the repository root, created on first
# use with `pip install -e '.[bench]'` (dagwire from this checkout, sdax, async-dag on 3.12+).
# The interpreter is taken from PATH (python3.X) or, failing that, from pyenv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
results="$here/RESULTS.md"
pythons="${PYTHONS:-3.11 3.12 3.13}"

find_python() {
    local v="$1" exe
    if exe="$(command -v "python$v" 2>/dev/null)" && "$exe" -c '' 2>/dev/null; then
        echo "$exe"
        return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local full
        full="$(pyenv latest "$v" 2>/dev/null || true)"
        exe="$(pyenv root)/versions/$full/bin/python$v"
        if [[ -n "$full" && -x "$exe" ]]; then
            echo "$exe"
            return
        fi
    fi
    return 1
}

venv_python() {
    local v="$1" venv="$root/.bench-venv-$1" base
    if [[ ! -x "$venv/bin/python" ]]; then
        base="$(find_python "$v")" || {
            echo "run_all: no Python $v found (PATH or pyenv); skipping it" >&2
            return 1
        }
        echo "run_all: creating $venv from $base" >&2
        "$base" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[bench]" >&2
    fi
    echo "$venv/bin/python"
}

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
{
    echo "# dagwire benchmark results"
    echo
    echo "Written by \`benchmarks/run_all.sh$([[ $# -gt 0 ]] && printf ' %s' "$@")\` on" \
        "$(date -u '+%Y-%m-%d %H:%M UTC'). Method, and what each row means: benchmarks/README.md."
    echo
} >"$tmp"

status=0
for v in $pythons; do
    py="$(venv_python "$v")" || { status=1; continue; }
    echo "=== Python $v: self-check" >&2
    if ! "$py" "$here/run.py" --check; then
        echo "run_all: the self-check failed on Python $v (the tables are still written)" >&2
        status=1
    fi
    echo "=== Python $v: benchmarks" >&2
    "$py" "$here/run.py" --markdown "$tmp" "$@" || status=1
done
mv "$tmp" "$results"
trap - EXIT
echo "run_all: wrote $results" >&2
exit $status
