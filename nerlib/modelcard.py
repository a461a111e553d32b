"""Model cards (``README.md``) in the Hugging Face hub's format for the models ``nerlib`` exports.

A hub card is Markdown with a YAML header (``base_model``, ``license``, ``datasets``, ``tags``, ...). The header is
written by hand here (a flat mapping of strings and lists of strings, quoted): no YAML library is needed, and
``huggingface_hub.ModelCard`` reads it back (tested where that package is installed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

# Licences of the training data the course uses (SPDX-like ids as the hub writes them).
DATA_LICENCES = {
    "Universal-NER/Pile-NER-type": "cc-by-nc-4.0",
    "pile_ner_type": "cc-by-nc-4.0",
    "conll2003_en": "research only (Reuters RCV1 text)",
    "conll2002_es": "research only (CoNLL-2002 shared task terms)",
    "conll2002_nl": "research only (CoNLL-2002 shared task terms)",
    "wikiann_en": "unknown (Wikipedia text, CC BY-SA)",
    "wikiann_nl": "unknown (Wikipedia text, CC BY-SA)",
}


def _yaml_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "".join(f"\n- {json.dumps(str(v))}" for v in value)
    return " " + json.dumps(str(value))


def card_header(meta: dict[str, Any]) -> str:
    """The YAML front matter (``---`` ... ``---``) of ``meta`` (strings and lists of strings; ``None`` skipped)."""
    lines = ["---"] + [f"{k}:{_yaml_value(v)}" for k, v in meta.items() if v not in (None, [], ())] + ["---"]
    return "\n".join(lines) + "\n"


def _table(scores: dict | None) -> str:
    if not scores:
        return "Not measured for this export (run `nerlib ... evaluate` on it and add the numbers).\n"
    rows = ["| evaluation | score |", "|---|---|"]
    for k, v in scores.items():
        rows.append(f"| {k} | {v if not isinstance(v, float) else round(v, 2)} |")
    return "\n".join(rows) + "\n"


def model_card(
    title: str,
    base_model: str,
    licence: str,
    datasets: Sequence[str],
    tags: Sequence[str],
    summary: str,
    training: str,
    usage: str,
    scores: dict | None = None,
    pipeline_tag: str | None = None,
    extra: str = "",
) -> str:
    """A complete card: header, summary, training data and budget, measured scores, how to load, limitations."""
    meta = {"base_model": base_model, "license": licence, "datasets": list(datasets),
            "tags": ["nerlib", "named-entity-recognition", *tags], "library_name": "transformers",
            "pipeline_tag": pipeline_tag}
    return (card_header(meta) + f"\n# {title}\n\n{summary}\n\n## Training\n\n{training}\n\n## Measured scores\n\n"
            + _table(scores) + f"\n## How to use\n\n{usage}\n" + (f"\n{extra}\n" if extra else "")
            + "\n## Made with\n\n`nerlib`, the library of the course *Distilling named-entity recognition models*; "
            "numbers above are the ones measured by `nerlib` for this export, none are copied from papers.\n")


def write_card(folder: str | Path, text: str) -> Path:
    """Write ``README.md`` in ``folder``."""
    path = Path(folder) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def push_to_hub(folder: str | Path, repo_id: str, private: bool = True, token: str | None = None) -> str:
    """Upload an exported folder to the hub as ``repo_id`` (a thin call to ``huggingface_hub``: creates the
    repository if needed, then uploads every file). The token comes from ``token``, ``$HF_TOKEN`` or the
    ``huggingface-cli login`` cache, never from arguments printed anywhere. Returns the repository URL.
    Not testable offline."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload from nerlib")
    return str(url)


def scores_from_file(path: str | Path) -> dict[str, float]:
    """The headline numbers of a JSON result written with ``--output`` by ``nerlib msd evaluate``, ``nerlib uniner
    evaluate --dataset/--eval-file`` or ``nerlib uniner evaluate`` (CrossNER table), for a card's score table."""
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON result ({err.msg})") from None
    name = str(result.get("dataset") or Path(str(result.get("eval_file", path.stem))).stem)
    if isinstance(result.get("strict"), dict):  # msd evaluate
        return {f"{name} strict F1": result["strict"]["f1"], f"{name} partial F1": result["partial"]["f1"]}
    if "f1" in result and "partial_f1" in result:  # uniner evaluate --dataset / --eval-file
        return {f"{name} strict F1": result["f1"], f"{name} partial F1": result["partial_f1"]}
    if isinstance(result.get("table"), list):  # uniner evaluate on the CrossNER domains
        return {f"CrossNER {row['domain']} strict F1": row["f1"] for row in result["table"]}
    raise ValueError(f"{path}: no scores found (expected the JSON of an evaluate command)")


__all__ = ["DATA_LICENCES", "card_header", "model_card", "push_to_hub", "scores_from_file", "write_card"]
