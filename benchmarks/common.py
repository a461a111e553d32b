"""What the benchmark scripts share: where results go, the provenance of a number and writing a result.

Every script writes ``benchmarks/results/<name>.json`` (the record, with its ``provenance``) and
``benchmarks/results/<name>.md`` (a Markdown table with a provenance footer); the book shows the Markdown files.
Imports no torch: a script's ``--help`` stays fast.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nerlib.uniner.evaluate import DOMAINS  # noqa: F401 (the benchmarks import it from here)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def provenance(profile: str, **extra: Any) -> dict:
    """Command, git commit, profile, date and machine of a measurement (``extra``: more fields to record)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else script.name
    from nerlib.config import machine_summary  # imports torch: here, so that a script's --help need not wait

    return {
        "command": shlex.join(["python", shown, *sys.argv[1:]]),
        "git_commit": commit,
        "profile": profile,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{machine_summary()}, Python {platform.python_version()}, "
                   f"load average {os.getloadavg()[0]:.1f} at the end "
                   f"(a shared machine: absolute seconds are noisy, ratios within one run are not)",
        **extra,
    }


def write(name: str, record: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (the Markdown gets a provenance footer)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    p = record["provenance"]
    footer = (f"\n\nMeasured with `{p['command']}` at commit `{p['git_commit']}`, profile `{p['profile']}`, "
              f"{p['date']}, {p['machine']}.\n")
    md_path.write_text(markdown.rstrip() + footer)
    return json_path, md_path


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A small Markdown table of ``rows`` (dicts) in ``columns`` (numbers with two decimals)."""
    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def differences_table(differences: list[dict], first_column: str, label: Any) -> str:
    """Paired differences of average strict F1 as a Markdown table: ``label(d)`` names each comparison."""
    lines = [f"| {first_column} | difference | 95% interval |", "|---|---|---|"]
    lines += [f"| {label(d)} | {d['difference']:+.1f} | [{d['low']:+.1f}, {d['high']:+.1f}] |" for d in differences]
    return "\n".join(lines)


def differences_section(differences: list[dict], what: str, first_column: str = "comparison", label: Any = None) -> str:
    """A comparison's paired differences as a Markdown section: "Paired differences of average strict F1
    ``what``:" and their :func:`differences_table` (``label`` default ``a - b``); empty when there are none."""
    if not differences:
        return ""
    return (f"\n\nPaired differences of average strict F1 {what}:\n\n"
            + differences_table(differences, first_column, label or (lambda d: f"{d['a']} - {d['b']}")))


def domain_figure(tables: dict, name: str, alt: str, title: str | None = None, **plot_options: Any) -> str:
    """Save :func:`nerlib.uniner.evaluate.plot_domains` of ``tables`` as ``results/<name>.png``; return the
    Markdown line that shows it."""
    from nerlib.uniner.evaluate import plot_domains

    ax = plot_domains(tables, **plot_options)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    ax.figure.savefig(RESULTS / f"{name}.png", dpi=120)
    return f"\n\n![{alt}]({name}.png)"


def crossner_arguments(parser: Any, split: str | None = "test") -> None:
    """Add the options every UniversalNER benchmark shares: ``--domains``, ``--passages``, ``--threads`` and, unless
    ``split`` is None, ``--split`` with that default. :func:`crossner_setup` reads them."""
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS))
    parser.add_argument("--passages", type=int, default=None,
                        help="first N passages per domain (0: all; default: the profile's, as the chapters)")
    if split is not None:
        parser.add_argument("--split", choices=["test", "validation"], default=split,
                            help="CrossNER split to score (validation: where settings are chosen)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one per process on a shared CPU)")


def crossner_setup(args: Any) -> tuple[Any, int | None]:
    """Set the threads, quieten the libraries, and return the profile (``NERLIB_PROFILE``) and the number of passages
    per domain to score, from the options of :func:`crossner_arguments`."""
    import torch

    from nerlib.config import get_profile
    from nerlib.course import quiet_libraries

    torch.set_num_threads(args.threads)
    quiet_libraries()
    profile = get_profile()
    return profile, passages_limit(args.passages, profile)


def passages_limit(passages: int | None, profile: Any) -> int | None:
    """First N passages per CrossNER domain for a UniversalNER benchmark: ``--passages`` when given (0: all), else
    the profile's ``eval_passages_per_domain``, the number the chapters evaluate."""
    return profile.uniner.eval_passages_per_domain if passages is None else (passages or None)


def train_summary(record: dict) -> dict:
    """A training record for a results file: without its per-step log and its output folder, and with the model's
    cache folder by name only (``<student name>-<run key>`` under ``$NERLIB_CACHE_DIR/uniner``, not a machine path)."""
    summary = {k: v for k, v in record.items() if k not in ("log_history", "output_dir")}
    if "model_dir" in summary:
        summary["model_dir"] = Path(summary["model_dir"]).name
    return summary


#: The score columns of a UniversalNER results table (one row of ``nerlib.uniner.evaluate.evaluate_domains``).
SCORE_HEADER = ("strict F1 | 95% interval | partial F1 | answers [] | gold [] | missed | invented | parse failures | "
                "queries")
SCORE_NOTE = ("The interval is a percentile bootstrap over passages (1,000 resamples; for the average, of the mean "
              "over domains). 'answers []' is the share of questions answered with an empty list, 'gold []' the share "
              "whose gold answer is empty; 'missed' is the share of questions with gold mentions answered with none, "
              "'invented' the share of gold-empty questions answered with some (- where not recorded).")


def domain_scores(row: Any) -> dict:
    """One ``evaluate_domains`` row as plain numbers for a results file."""
    keys = ("f1", "f1_low", "f1_high", "partial_f1", "empty_pred_share", "empty_gold_share")
    errors = {k: float(row[k]) for k in ("missed_share", "invented_share") if k in row.index}
    return {**{k: float(row[k]) for k in keys}, **errors, "parse_failures": int(row["parse_failures"]),
            "queries": int(row["queries"])}


def _share(value: Any) -> str:
    """A percentage cell, ``-`` for a share not recorded (older results) or undefined (NaN)."""
    return "-" if value is None or value != value else f"{value:.0f}%"


def score_cells(r: dict) -> str:
    """The :data:`SCORE_HEADER` cells of a :func:`domain_scores` record."""
    return (f"{r['f1']:.1f} | {r['f1_low']:.1f}-{r['f1_high']:.1f} | {r['partial_f1']:.1f} | "
            f"{r['empty_pred_share']:.0f}% | {r['empty_gold_share']:.0f}% | {_share(r.get('missed_share'))} | "
            f"{_share(r.get('invented_share'))} | {r['parse_failures']} | {r['queries']}")


def domain_rows(table: Any, **labels: Any) -> list[dict]:
    """One record per domain of an ``evaluate_domains`` table: ``labels`` (e.g. ``strategy="none"``), the domain
    and its :func:`domain_scores`."""
    return [{**labels, "domain": domain, **domain_scores(table.loc[domain])} for domain in table.index]


def scores_markdown(rows: list[dict], columns: list[str], headers: list[str] | None = None) -> str:
    """Records of :func:`domain_scores` as a Markdown table: the label ``columns`` (headed ``headers``, default
    their keys), then the :data:`SCORE_HEADER` cells."""
    lines = ["| " + " | ".join(headers or columns) + f" | {SCORE_HEADER} |",
             "|" + "---|" * (len(columns) + len(SCORE_HEADER.split(" | ")))]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + f" | {score_cells(r)} |" for r in rows]
    return "\n".join(lines)


def comparison_pairs(labels: list[str], against: Any = "first") -> list[tuple[str, str]]:
    """Which paired differences a comparison of students reports, as ``(a, b)`` for ``a - b``: every later label
    against the first (``against="first"``: a reference and its alternatives), against each label before it
    (``"each"``: a ladder such as none, uniform, frequency), or the ``(a, b)`` pairs given."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"a comparison names a student twice: {labels}")
    if against == "first" or against == "each":
        return [(a, b) for i, a in enumerate(labels) for b in (labels[:1] if against == "first" else labels[:i])
                if i > 0]
    if isinstance(against, str):
        raise ValueError(f"against must be 'first', 'each' or a list of (a, b) pairs, got {against!r}")
    pairs = [tuple(p) for p in against]
    unknown = sorted({x for p in pairs for x in p} - set(labels))
    if unknown or any(len(p) != 2 for p in pairs):
        raise ValueError(f"comparison pairs {pairs} must be (a, b) pairs of the labels {labels}")
    return pairs


def compare_students(profile: Any, variants: dict[str, dict], limit: int | None, split: str, label: str,
                     against: Any = "first") -> dict:
    """Train (or load from the cache) and score one UniversalNER student per variant, on the same passages.

    ``variants`` maps a label to the keyword arguments of :func:`nerlib.uniner.pipeline.train_and_evaluate`
    (``settings``, and ``name`` and ``examples`` where the data are not the settings' own). Returns ``rows`` (one
    :func:`domain_rows` record per label and domain, the label under the key ``label``), ``train`` (label -> its
    :func:`train_summary`), ``tables`` (label -> the ``evaluate_domains`` table) and ``differences`` (the
    :func:`comparison_pairs` with their paired F1 difference and interval)."""
    from nerlib.uniner.evaluate import f1_difference
    from nerlib.uniner.pipeline import train_and_evaluate

    pairs = comparison_pairs(list(variants), against)
    rows, train, tables = [], {}, {}
    for name, options in variants.items():
        table, record = train_and_evaluate(profile, limit=limit, split=split, **options)
        train[name], tables[name] = train_summary(record), table
        rows += domain_rows(table, **{label: name})
    differences = [{"a": a, "b": b, **f1_difference(tables[a], tables[b])} for a, b in pairs]
    return {"rows": rows, "train": train, "tables": tables, "differences": differences}


def teacher_budget(s: Any) -> str:
    """How an MSD teacher was trained, as ``msd_teacher.json`` labels it (``s``: the profile's MSD settings)."""
    return f"{s.encoder}, {s.teacher_steps} steps on {s.train_sentences} {s.source} sentences, lr {s.teacher_lr:g}"
