"""Execute each chapter notebook in a profile and record its wall time and peak memory.

    NERLIB_DATA_DIR=... HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/chapter_times.py --profile small [NOTEBOOK ...]

Writes ``benchmarks/results/chapter_times.json`` (merged with earlier runs of other profiles/chapters), which
``book/running.md`` shows. Each notebook runs in a fresh child process that executes it with ``nbclient``; the peak
resident memory is the kernel's (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of that child after the kernel exits).
Chapters run one after another, never in parallel, so the times are not inflated by each other. Each record says
which models the chapter trained (``trained``: new folders in the nerlib cache); an empty list means a warm run
whose models were already cached (by an earlier chapter or a benchmark with the same settings). The executed
notebooks, with their outputs, are kept in ``_build/executed/<profile>/`` for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import common

ROOT = common.ROOT
RESULTS = common.RESULTS / "chapter_times.json"


def run_one(notebook: Path, timeout: int) -> dict:
    """Execute one notebook in this process's kernel child; return wall time, peak kernel RSS and status."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # drop ANSI colours
        error = text.splitlines()[-1][:300] if text else "cell error"
    except Exception as err:  # timeout, dead kernel: record and go on with the next chapter
        error = f"{type(err).__name__}: {err}"[:300]
    wall = time.perf_counter() - start
    # Keep the executed notebook (outputs included) for reading the results: _build/executed/<profile>/ (ignored by git)
    keep = ROOT / "_build" / "executed" / os.environ.get("NERLIB_PROFILE", "default")
    keep.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, keep / notebook.name)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    stderr_cells = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    )
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak_kib / 1024, 1), "ok": error is None,
            "error": error, "stderr_outputs": stderr_cells}


def cached_runs() -> set[str]:
    """The finished trained models (and cached prediction files) in the nerlib cache: a chapter that adds some
    trained them itself (a cold run); one that adds none found its models already there (a warm run). Run nothing
    else that trains models meanwhile, or its models are counted too."""
    from nerlib.config import cache_dir

    root = cache_dir()
    found = set()
    for sub in ("msd", "uniner", "uniner/predictions"):
        folder = root / sub
        if folder.is_dir():
            found |= {f"{sub}/{p.name}" for p in folder.iterdir()
                      if sub.endswith("predictions") or (p / "run.json").is_file() or (p / "train_result.json").is_file()}
    return found


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks (default: notebooks/ch*.ipynb)")
    parser.add_argument("--profile", default=os.environ.get("NERLIB_PROFILE", "small"))
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell timeout in seconds")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: run one notebook, print JSON
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args(argv)

    if args.single:
        print(json.dumps(run_one(Path(args.single), args.timeout)))
        return 0

    notebooks = [Path(n) for n in args.notebooks] or sorted((ROOT / "notebooks").glob("ch*.ipynb"))
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    results_path = Path(args.results)
    data = json.loads(results_path.read_text()) if results_path.is_file() else {}
    data.setdefault("profiles", {})
    env = {**os.environ, "NERLIB_PROFILE": args.profile, "NERLIB_BOOK_BUILD": "1", "TQDM_DISABLE": "1",
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name} ({args.profile}) ...", file=sys.stderr, flush=True)
        before = cached_runs()
        proc = subprocess.run(
            [sys.executable, __file__, "--single", str(nb.resolve()), "--timeout", str(args.timeout)],
            capture_output=True, text=True, env=env,
        )
        try:
            record = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            record = {"ok": False, "error": f"runner failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
        record["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        new = sorted(cached_runs() - before)
        record["trained"] = [n for n in new if not n.startswith("uniner/predictions/")]
        record["new_prediction_files"] = sum(n.startswith("uniner/predictions/") for n in new)
        data["profiles"].setdefault(args.profile, {})[nb.stem] = record
        print(f"    {json.dumps(record)}", file=sys.stderr, flush=True)
        data["machine"] = machine()
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")  # after each chapter: resumable
    failed = [n for n, r in data["profiles"][args.profile].items() if not r.get("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
