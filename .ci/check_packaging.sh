#!/usr/bin/env bash
# Build nerlib's wheel and fail on any packaging warning (deprecated pyproject fields and the like), so that a
# build that a future setuptools will refuse is caught today, not on the day it breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Build from a copy of the tracked and new (not ignored) files, so that setuptools' build/ never lands in the tree.
mkdir "$out/src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -x -C "$out/src"
"$PY" -m pip wheel --no-deps "$out/src" -w "$out" -v >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; exit 1; }
if grep -nE "SetuptoolsDeprecationWarning|SetuptoolsWarning|DeprecationWarning: .*(pyproject|license)" "$out/build.log" >&2; then
  echo "packaging: the build above printed a packaging warning; fix pyproject.toml" >&2
  exit 1
fi
ls "$out"/nerlib-*.whl >/dev/null
echo "packaging: wheel built with no packaging warnings"
