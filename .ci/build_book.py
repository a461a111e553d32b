#!/usr/bin/env python3
"""Build the book for one profile: what ``make book`` and ``make book-smoke`` run.

    python .ci/build_book.py [--force] [--no-mathjax]

- **Incremental by default.** Notebooks run through jupyter-cache (``execute_notebooks: cache``), with one cache per
  profile (``_build/.jupyter_cache/<profile>``), so a second build re-executes only the chapters whose code cells
  changed, and a smoke build never shows a small build's outputs. ``--force`` executes everything (CI does). Every
  page is re-read on each build (``--all``), so a chapter that failed last time fails again instead of being skipped
  as up to date.
- **Formulas offline.** A pinned MathJax (``MATHJAX_VERSION``) is fetched once from the npm registry into
  ``_build/mathjax`` (never committed) and served from the built site, so a room without internet sees rendered
  equations. Without npm the build stops with a clear message; ``--no-mathjax`` uses the CDN instead.
- **Progress.** Prints each chapter as it starts and, at the end, a table of chapters with their time and whether
  they executed or came from the cache.

The profile is ``$NERLIB_PROFILE`` (default ``small``); the Makefile sets the other settings.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
MATHJAX_VERSION = "3.2.2"
MATHJAX_DIR = BUILD / "mathjax" / MATHJAX_VERSION  # holds mathjax/es5/... (copied into the site's _static)
MATHJAX_ENTRY = "mathjax/es5/tex-mml-chtml.js"  # relative to _static

EXECUTING = re.compile(r"^(?P<page>\S+): Executing notebook")
EXECUTED = re.compile(r"^(?P<page>\S+): Executed notebook in (?P<seconds>[0-9.]+) seconds")
CACHED = re.compile(r"^(?P<page>\S+): Using cached notebook")


def fetch_mathjax() -> Path:
    """The folder to add to ``html_static_path`` (fetched with ``npm pack`` on first use)."""
    if (MATHJAX_DIR / MATHJAX_ENTRY).is_file():
        return MATHJAX_DIR
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("build_book: npm is needed once to fetch MathJax for offline formulas "
                 "(install Node.js, or pass --no-mathjax to load it from the CDN)")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"], cwd=tmp,
                              capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("mathjax-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            sys.exit(f"build_book: could not fetch mathjax@{MATHJAX_VERSION} from the npm registry "
                     f"({proc.stderr.strip()[-300:]}); pass --no-mathjax to load it from the CDN")
        staging = Path(tmp) / "out" / "mathjax"
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/") or m.name == "package/LICENSE"]
            tar.extractall(Path(tmp) / "x", members=members, filter="data")
        shutil.move(str(Path(tmp) / "x" / "package"), staging)
        if MATHJAX_DIR.exists():
            shutil.rmtree(MATHJAX_DIR)
        MATHJAX_DIR.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging.parent), MATHJAX_DIR)
    return MATHJAX_DIR


def profile_config(profile: str, force: bool, mathjax: Path | None) -> Path:
    """``_config.yml`` with this build's execution mode, cache and MathJax, written to ``_build/config/``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    execute = config.setdefault("execute", {})
    execute["execute_notebooks"] = "force" if force else "cache"
    execute["cache"] = str(BUILD / ".jupyter_cache" / profile)
    if mathjax is not None:
        sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
        sphinx["html_static_path"] = [str(mathjax)]
        sphinx["mathjax_path"] = MATHJAX_ENTRY
    target = BUILD / "config" / f"{profile}.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


def build(config: Path) -> tuple[int, dict[str, tuple[str, float]]]:
    """Run jupyter-book, echoing its output with a line per chapter; returns the exit code and the chapter times."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--all", "-W", "-n", "--keep-going", "--config", str(config)]
    times: dict[str, tuple[str, float]] = {}
    started: dict[str, float] = {}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if m := EXECUTING.match(plain):
            page = _short(m["page"])
            started[page] = time.monotonic()
            print(f"build_book: executing {page} ...", flush=True)
        elif m := EXECUTED.match(plain):
            times[_short(m["page"])] = ("executed", float(m["seconds"]))
        elif m := CACHED.match(plain):
            times[_short(m["page"])] = ("cached", 0.0)
    code = proc.wait()
    for page, t0 in started.items():  # a chapter that failed prints no "Executed" line
        times.setdefault(page, ("failed", time.monotonic() - t0))
    return code, times


def _short(page: str) -> str:
    try:
        return str(Path(page).resolve().relative_to(ROOT))
    except ValueError:
        return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="execute every notebook (no jupyter-cache)")
    parser.add_argument("--no-mathjax", action="store_true", help="load MathJax from the CDN (needs internet to view)")
    args = parser.parse_args(argv)
    profile = os.environ.get("NERLIB_PROFILE", "small") or "small"
    mathjax = None if args.no_mathjax else fetch_mathjax()
    config = profile_config(profile, args.force, mathjax)
    print(f"build_book: profile {profile}, {'forced' if args.force else 'cached'} execution, "
          f"MathJax {'offline ' + MATHJAX_VERSION if mathjax else 'from the CDN'}", flush=True)
    code, times = build(config)
    if times:
        print("\nbuild_book: chapter times (profile " + profile + ")")
        for page, (how, seconds) in sorted(times.items()):
            print(f"  {page:55s} {how:9s} {seconds:8.1f} s")
        print(f"  {'total':55s} {'':9s} {sum(s for _, s in times.values()):8.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
