"""A tiny MSD run folder (random encoder built from a config, saved like `nerlib msd train-*` saves one)."""

from __future__ import annotations

from pathlib import Path

WORDS = ["La", "ministra", "viajó", "a", "Valparaíso", "con", "Aguas", "del", "Pacífico", ".", "El", "Ayuntamiento",
         "de", "Sevilla", "y", "la", "Universidad", "Granada"]
LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def make_run(folder: Path, seed: int = 0) -> Path:
    """Write an encoder folder and a run folder under ``folder``; returns the run folder."""
    import torch

    from nerlib.msd.model import MultiExitTokenClassifier
    from nerlib.msd.runs import save_run
    from nerlib.msd.tiny import tiny_encoder, tiny_tokenizer
    from nerlib.msd.train import TrainLog

    tok = tiny_tokenizer(WORDS)
    enc_dir = folder / "encoder"
    tiny_encoder(len(tok), layers=5, seed=seed).save_pretrained(enc_dir)
    tok.save_pretrained(enc_dir)
    torch.manual_seed(seed)
    model = MultiExitTokenClassifier.from_encoder(str(enc_dir), LABELS, first_exit_layer=4)
    with torch.no_grad():  # random but decisive heads, so that many different tags come out
        for head in model.heads:
            head.weight.normal_(0, 2.0)
            head.bias.normal_(0, 1.0)
    run = folder / "run"
    save_run(model.eval(), run, str(enc_dir), TrainLog(),
             {"role": "student", "target": "conll2002_es", "settings": {"source": "conll2003_en",
                                                                        "student_steps": 2}})
    return run
