#!/usr/bin/env bash
# Creates or refreshes .venv-blender: Blender as a Python module (bpy from PyPI) for the add-on's tests.
#
# Why a virtualenv of its own: bpy 5.0 is built for CPython 3.11 and pins numpy < 2, while the engine's
# .venv needs numpy >= 2 (OpenImageIO 3.2, opencv-python 5). The add-on drives the engine out of process
# (osvos-render), so this venv holds bpy and nothing else.
#
# Idempotent: a stamp file records the bpy spec that was installed; a second run with the same spec does
# nothing. Never fails the build when bpy cannot be had (no Python 3.11, no wheel for this platform): it
# says why and exits 0, and the Blender tests then skip with that reason.
#
# Environment: BLENDER_VENV (default .venv-blender), BLENDER_PYTHON (default: the first python3.11 found),
# BPY_SPEC (default "bpy>=5.0,<5.1"). The Makefile runs it once per supported release (5.0, 4.5, 4.2), each
# into its own venv. A spec that does not install is reported (the tests of that release then skip): no
# other release is put in its place, since a test run would then pass for a release it never ran on.
set -uo pipefail

cd "$(dirname "$0")/.."
VENV="${BLENDER_VENV:-.venv-blender}"
SPEC="${BPY_SPEC:-bpy>=5.0,<5.1}"
STAMP="$VENV/.osvos-bpy-installed"
REASON_FILE="$VENV/.osvos-bpy-unavailable"

find_python() {
    if [ -n "${BLENDER_PYTHON:-}" ]; then echo "$BLENDER_PYTHON"; return; fi
    for cand in python3.11 /usr/bin/python3.11 /usr/local/bin/python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 \
            && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$cand"; return
        fi
    done
}

bpy_imports() {
    # Headless import check: bpy must import and report its version without a display.
    "$VENV/bin/python" -c 'import bpy, sys; print("bpy", bpy.app.version_string); sys.exit(0)' 2>/dev/null
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SPEC" ] && bpy_imports >/dev/null; then
    exit 0
fi

PY="$(find_python)"
if [ -z "$PY" ]; then
    mkdir -p "$VENV"
    echo "no CPython 3.11 found (bpy wheels are cp311 only); set BLENDER_PYTHON" | tee "$REASON_FILE" >&2
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || { echo "blender_setup: could not create $VENV" >&2; exit 0; }
fi
rm -f "$REASON_FILE" "$STAMP"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
if ! "${PIP[@]}" "$SPEC"; then
    echo "no $SPEC wheel installs for $("$VENV/bin/python" -V 2>&1) on $(uname -m)" | tee "$REASON_FILE" >&2
    exit 0
fi
if ! version="$(bpy_imports)"; then
    echo "bpy installed but does not import headless" | tee "$REASON_FILE" >&2
    exit 0
fi
echo "$SPEC" > "$STAMP"
echo "blender_setup: $version in $VENV"
