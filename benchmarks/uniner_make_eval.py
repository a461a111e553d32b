"""How closely `nerlib uniner make-eval` reproduces the official UniversalNER CrossNER evaluation files.

    NERLIB_DATA_DIR=... .venv/bin/python benchmarks/uniner_make_eval.py

For each of the five domains, the records built from the BIO test split are compared with the official file
(``$NERLIB_DATA_DIR/uniner_eval/CrossNER_*.jsonl``) as multisets of (passage, type, sorted gold list), once with
the official files' quirk (sentence-final entities dropped, the default for these datasets) and once keeping every
entity, and line by line after the record id. Writes ``benchmarks/results/uniner_make_eval.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

from common import provenance, write


def _key(record: dict) -> tuple:
    c = record["conversations"]
    return c[0]["value"], c[2]["value"], tuple(sorted(json.loads(c[3]["value"])))


def compare(name: str, official_path: Path) -> dict:
    """Counts of records only in the official file / only in ours, with and without the quirk."""
    from nerlib.uniner.eval_data import eval_records_from_dataset

    lines = official_path.read_text(encoding="utf-8").splitlines()
    official = Counter(_key(json.loads(line)) for line in lines)
    row: dict = {"dataset": name, "official_records": sum(official.values())}
    for label, quirk in (("official_quirk", True), ("exact", False)):
        ours_records = eval_records_from_dataset(name, "test", official_quirk=quirk)
        ours = Counter(map(_key, ours_records))
        row[f"{label}_records"] = sum(ours.values())
        row[f"{label}_official_only"] = sum((official - ours).values())
        row[f"{label}_ours_only"] = sum((ours - official).values())
        if quirk:
            tails = {json.dumps(r, ensure_ascii=False).split('"conversations"', 1)[1] for r in ours_records}
            row["official_lines_reproduced"] = sum(line.split('"conversations"', 1)[1] in tails for line in lines)
            row["extra_passages"] = sorted({p[:60] for p, _, _ in ours - official})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    from nerlib.uniner.eval_data import OFFICIAL_IDS

    root = Path(os.environ.get("NERLIB_DATA_DIR", "")) / "uniner_eval"
    if not root.is_dir():
        raise SystemExit("set NERLIB_DATA_DIR to the data folder holding uniner_eval/")
    rows = [compare(name, root / f"{fname}.jsonl") for name, fname in OFFICIAL_IDS.items()]
    md = ["# `uniner make-eval` against the official CrossNER evaluation files", "",
          "Records (passage, type, gold list as a multiset) built from the CrossNER test splits in the data folder, "
          "compared with the official files: with the official converter's quirk (entities ending on a sentence's "
          "last token dropped; the default for these five datasets) and with every entity kept.", "",
          "| dataset | official records | ours | official-only / ours-only (quirk) | official-only / ours-only "
          "(every entity) | official lines reproduced |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['dataset']} | {r['official_records']} | {r['official_quirk_records']} | "
                  f"{r['official_quirk_official_only']} / {r['official_quirk_ours_only']} | "
                  f"{r['exact_official_only']} / {r['exact_ours_only']} | "
                  f"{r['official_lines_reproduced']} / {r['official_records']} |")
    write("uniner_make_eval", {"provenance": provenance("data"), "rows": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
