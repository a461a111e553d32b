"""Runs: how a trained artefact is named, where a pipeline step writes, and the one durable append-only log.

Three things every long step of the course shares, kept in one place:

* :func:`run_key`: a short, stable hash of the settings that determine an artefact, so a cached model or result
  is reused exactly when those settings (and nothing else) are the same.
* :func:`run_dir`: the folder layout of pipeline steps, ``<cache>/runs/<profile>/<step>`` (or the user's
  ``--out-dir``).
* :class:`AppendLog`: an append-only JSONL file written one record at a time with flush and fsync, so a killed
  process loses at most the record it was writing. The teacher's answer cache, the prediction caches and the MSD
  ablation log are all such logs: an interrupted run resumes by reading what is there and doing only the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from nerlib.config import cache_dir
from nerlib.data.io import end_with_newline, json_records


def run_key(*, length: int = 12, **parts: Any) -> str:
    """A short stable hash (``length`` hex digits) of ``parts``: JSON with sorted keys, ``str`` for the rest.

    The same parts always give the same key (across processes and machines), so cache folders named by it are
    found again; any change in a part gives another key."""
    if not 1 <= length <= 64:
        raise ValueError(f"length must be 1..64, got {length}")
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def run_dir(profile: str, step: str, out_dir: str | Path | None = None, create: bool = True) -> Path:
    """Where pipeline step ``step`` of profile ``profile`` writes: ``out_dir`` when given, else
    ``<cache>/runs/<profile>/<step>``. Created unless ``create`` is false (to locate another step's output)."""
    path = Path(out_dir) if out_dir is not None else cache_dir() / "runs" / profile / step
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


class AppendLog:
    """An append-only JSONL log of dict records, durable one record at a time.

    ``check(record, where)`` validates each record read back (``where`` is ``"file:line"``) and raises
    ``ValueError`` naming it when the record is not of the expected shape. Reading skips blank lines and a cut-off
    last line (what an interrupted write leaves; it is reported with a warning and removed before the next append,
    so the record is simply made again). Invalid JSON anywhere else is an error naming the file and line.
    """

    def __init__(self, path: str | Path, check: Callable[[Any, str], None] | None = None) -> None:
        self.path = Path(path)
        self.check = check
        self._lock = threading.Lock()
        self._prepared = False

    def __iter__(self) -> Iterator[dict]:
        return (record for _, record in self.records())

    def records(self) -> Iterator[tuple[str, dict]]:
        """``(where, record)`` for every complete record, in the order they were appended."""
        if not self.path.is_file():
            return
        for number, record in json_records(self.path, blank_lines="skip", truncated_tail="skip"):
            where = f"{self.path}:{number}"
            if self.check is not None:
                self.check(record, where)
            elif not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record

    def append(self, *records: dict) -> None:
        """Write ``records`` (one line each), then flush and fsync, before anyone relies on them."""
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        with self._lock:
            if not self._prepared:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                end_with_newline(self.path)  # a cut-off last line must not swallow the next record
                self._prepared = True
            with self.path.open("a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
