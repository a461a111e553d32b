"""MSD export: a plain token classifier that tags word for word as the run it came from."""

from __future__ import annotations

import torch
from msd_tiny_run import LABELS, make_run

from nerlib.msd.export import export_model
from nerlib.msd.tag import Tagger, repair_iob2

SENTENCES = ["La ministra viajó a Valparaíso con Aguas del Pacífico .",
             "El Ayuntamiento de Sevilla y la Universidad de Granada"]
TEXT = " ".join(SENTENCES)


def test_export_same_labels_with_auto_model_and_pipeline(tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    run = make_run(tmp_path)
    result = export_model(run, tmp_path / "export")
    assert result["labels"] == LABELS
    folder = tmp_path / "export"
    original = Tagger.from_pretrained(run, device="cpu")
    exported = Tagger.from_pretrained(folder, device="cpu")
    assert exported.kind == "exported"

    # 1. the logits of the last exit and of the exported classifier are the same numbers
    tok = AutoTokenizer.from_pretrained(folder)
    auto = AutoModelForTokenClassification.from_pretrained(folder).eval()
    assert auto.config.id2label == dict(enumerate(LABELS))
    enc = tok(TEXT.split(), is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        a = auto(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        b = original.model(enc["input_ids"], enc["attention_mask"], exits="last").logits[-1]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

    # 2. nerlib msd tag on the run and on the export: the same tags, word for word
    ours = original.tag(TEXT)
    assert exported.tag(TEXT)["tags"] == ours["tags"]
    assert len(set(ours["tags"])) > 2  # the comparison covers several labels

    # 3. transformers.pipeline, sentence by sentence as `tag` reads text: each word's first subword carries the
    # same label (after the same IOB2 reading: an I-X that starts an entity is B-X)
    ner = pipeline("token-classification", model=str(folder), ignore_labels=[], device=-1)
    labels = []
    for sentence in SENTENCES:
        by_start = {item["start"]: item["entity"] for item in ner(sentence)}
        labels += repair_iob2([by_start[pos] for _, pos in _positions(sentence)])
    assert labels == ours["tags"]


def _positions(text):
    pos = 0
    for w in text.split():
        pos = text.index(w, pos)
        yield w, pos
        pos += len(w)


def test_model_card(tmp_path):
    run = make_run(tmp_path)
    export_model(run, tmp_path / "export")
    card = (tmp_path / "export" / "README.md").read_text()
    header = card.split("---")[1]
    for line in ("base_model:", "license:", "datasets:", "tags:", 'pipeline_tag: "token-classification"'):
        assert line in header
    assert "conll2002_es" in header and "never read" in card and "pipeline(" in card
    try:
        from huggingface_hub import ModelCard
    except ImportError:
        return
    meta = ModelCard(card).data.to_dict()
    assert meta["pipeline_tag"] == "token-classification" and "msd" in meta["tags"]


def test_write_run_folder_stores_only_changed_tensors_and_reloads_exactly(tmp_path):
    from nerlib.msd.export import write_run_folder
    from nerlib.msd.runs import load_run

    model, info = load_run(make_run(tmp_path / "a"))
    with torch.no_grad():  # "train" one encoder layer: it must be stored; untouched layers must not
        model.encoder.encoder.layer[-1].output.dense.weight.add_(0.5)
    folder = write_run_folder(model, {**info, "profile": "smoke"}, tmp_path / "run")
    from safetensors.torch import load_file

    stored = load_file(folder / "model.safetensors")
    assert "encoder.encoder.layer.4.output.dense.weight" in stored and "heads.0.weight" in stored
    assert "encoder.embeddings.word_embeddings.weight" not in stored
    again, again_info = load_run(folder)
    assert again_info["profile"] == "smoke"
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
