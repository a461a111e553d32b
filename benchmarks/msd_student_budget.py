"""Does the plain distilled student ("w/o all") learn, or collapse to all-O? A budget probe on the small profile.

    NERLIB_DATA_DIR=... HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/msd_student_budget.py \
        --teacher-steps 250 --student-steps 250 --student-lrs 5e-5 1e-4 [--target conll2002_es]

Trains (or loads from the cache) a single-head teacher with the given budget, then one plain distilled student per
learning rate, and scores teacher and students on the first ``eval_sentences`` target test sentences. A student
that works gets close to its teacher; a collapsed one predicts only ``O`` (F1 0). Writes
``benchmarks/results/msd_student_budget.{json,md}`` (merged across runs, keyed by budget; each row says when and
at which commit it was measured).
"""

from __future__ import annotations

import argparse
import json

import torch

from common import RESULTS, provenance, write
from nerlib.config import get_profile
from nerlib.data import load
from nerlib.models import load_tokenizer
from nerlib.msd import predict as P
from nerlib.msd import runs as R
from nerlib.msd.ablation import with_settings


def predicted_entity_share(model, tokenizer, sentences, max_length) -> float:
    """Share of words tagged as part of an entity (0 means the model collapsed to all-O)."""
    tags = P.predict_tags(model, tokenizer, sentences, max_length)
    words = sum(len(t) for t in tags)
    return sum(t != "O" for seq in tags for t in seq) / max(words, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-steps", type=int, default=250)
    parser.add_argument("--student-steps", type=int, default=250)
    parser.add_argument("--student-lrs", nargs="+", type=float, default=[5e-5])
    parser.add_argument("--train-sentences", type=int, default=4000)
    parser.add_argument("--unlabeled-sentences", type=int, default=2000)
    parser.add_argument("--eval-sentences", type=int, default=500)
    parser.add_argument("--target", default="conll2002_es")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = get_profile()
    profile = with_settings(base, teacher_steps=args.teacher_steps, student_steps=args.student_steps,
                            train_sentences=args.train_sentences, unlabeled_sentences=args.unlabeled_sentences,
                            eval_sentences=args.eval_sentences, eval_every=0)
    s = profile.msd
    tok = load_tokenizer(s.encoder)
    test = load(args.target, "test", s.eval_sentences)
    gold_share = sum(t != "O" for seq in test["ner_tags"] for t in seq) / sum(len(t) for t in test["ner_tags"])
    teacher, trun = R.cached_teacher(s, multi_exit=False, seed=profile.seed, progress=True)
    rows = [{"model": "teacher (direct transfer)", "lr": s.teacher_lr, "steps": s.teacher_steps,
             "f1": P.evaluate(teacher, tok, test, s.eval_max_length, s.eval_batch_size)["f1"],
             "entity_share": predicted_entity_share(teacher, tok, test["tokens"], s.eval_max_length),
             "train_s": trun["log"]["seconds"]}]
    print(rows[-1])
    for lr in args.student_lrs:
        sp = with_settings(profile, student_lr=lr)
        student, srun = R.cached_student(sp.msd, args.target, "w/o all", seed=profile.seed, progress=True)
        rows.append({"model": "student w/o all", "lr": lr, "steps": s.student_steps,
                     "f1": P.evaluate(student, tok, test, s.eval_max_length, s.eval_batch_size)["f1"],
                     "entity_share": predicted_entity_share(student, tok, test["tokens"], s.eval_max_length),
                     "train_s": srun["log"]["seconds"], "final_loss": srun["log"]["losses"][-1]})
        print(rows[-1])
    key = f"{args.target} teacher {s.teacher_steps} steps/{s.train_sentences} sent, student {s.student_steps} steps/{s.unlabeled_sentences} sent"
    path = RESULTS / "msd_student_budget.json"
    runs = json.loads(path.read_text())["runs"] if path.is_file() else {}
    prov = provenance(profile.name)
    for row in rows:
        row["measured"] = f"{prov['date']}, commit {prov['git_commit']}"
    old_rows = runs.get(key, {}).get("rows", [])
    fresh = {(r["model"], r["lr"]) for r in rows}
    rows = [r for r in old_rows if (r["model"], r["lr"]) not in fresh] + rows  # keep rows measured earlier
    rows.sort(key=lambda r: (r["model"] != "teacher (direct transfer)", r["lr"]))
    runs[key] = {"provenance": prov, "encoder": s.encoder, "batch_size": s.batch_size,
                 "eval_sentences": s.eval_sentences, "gold_entity_share": gold_share, "rows": rows}
    lines = ["# Plain distilled student: does it learn? (seqeval F1 on the target test set)", ""]
    for k, run in runs.items():
        lines += [f"## {k}", "", f"Encoder `{run['encoder']}`, batch {run['batch_size']}, first "
                  f"{run['eval_sentences']} test sentences; gold entity-word share {run['gold_entity_share']:.3f}.", "",
                  "| model | lr | steps | F1 | predicted entity-word share | train s | measured |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['lr']:g} | {r['steps']} | {r['f1']:.1f} | {r['entity_share']:.3f} | "
                  f"{r['train_s']:.0f} | {r.get('measured', '')} |" for r in run["rows"]]
        lines.append("")
    record = {"provenance": provenance(profile.name), "runs": runs}
    for p in write("msd_student_budget", record, "\n".join(lines)):
        print("wrote", p)


if __name__ == "__main__":
    main()
