"""Checkpoints that survive a real interruption: a run stopped after k steps (an exception in the middle of
training, or the process killed outright) and started again ends with the same weights, bit for bit on the CPU,
as a run that was never interrupted. Checkpoints are written every ``checkpoint_every`` steps even when there is
no dev evaluation (``eval_every = 0``)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nerlib.config import MSDSettings
from nerlib.data import tags
from nerlib.msd import train as T
from nerlib.msd import variants as V
from nerlib.msd.model import MultiExitTokenClassifier
from nerlib.msd.tiny import tiny_encoder, tiny_tokenizer

torch.set_num_threads(1)

LABELS = tags.tag_names(["LOC", "MISC", "ORG", "PER"])
WORDS = ["John", "Maria", "lives", "in", "Paris", "Madrid", "works", "at", "Google", "."]
SENTS = [["John", "lives", "in", "Paris", "."], ["Maria", "works", "at", "Google", "."],
         ["Maria", "lives", "in", "Madrid", "."], ["John", "works", "at", "Google"],
         ["Maria", "lives", "in", "Paris", "and", "works", "at", "Google", "."], ["John", "."]]
TAGS = [["B-PER", "O", "O", "B-LOC", "O"], ["B-PER", "O", "O", "B-ORG", "O"],
        ["B-PER", "O", "O", "B-LOC", "O"], ["B-PER", "O", "O", "B-ORG"],
        ["B-PER", "O", "O", "B-LOC", "O", "O", "O", "B-ORG", "O"], ["B-PER", "O"]]
DATA = {"tokens": SENTS, "ner_tags": TAGS}


class Interrupted(Exception):
    pass


def _settings(**kw):
    base = dict(max_length=16, eval_max_length=32, batch_size=2, mmd_batch_size=2, teacher_steps=9,
                student_steps=9, teacher_lr=5e-3, student_lr=1e-3, eval_every=0, eval_batch_size=8,
                checkpoint_every=2, length_pool=2, warmup_ratio=0.2, freeze_layers=3)
    base.update(kw)
    return MSDSettings(**base)


def _model(seed, multi_exit=True):
    """A tiny model with dropout on (so the random state matters for resuming)."""
    tok = tiny_tokenizer(WORDS)
    encoder = tiny_encoder(len(tok), seed=seed)
    return MultiExitTokenClassifier.from_encoder(encoder, LABELS, 4, multi_exit, dropout=0.1), tok


def _stop_after(k):
    def on_step(done):
        if done == k:
            raise Interrupted(f"stopped after step {k}")

    return on_step


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key, value in sa.items():
        assert torch.equal(value, sb[key]), key


@pytest.mark.parametrize("eval_every", [0, 3])
def test_teacher_interrupted_and_resumed_equals_uninterrupted(tmp_path, eval_every):
    settings = _settings(eval_every=eval_every)
    dev = DATA if eval_every else None
    full, tok = _model(seed=4)
    full_log = T.train_teacher(full, tok, DATA, settings, dev, seed=5, progress=False)

    ckpt = tmp_path / "ckpt.pt"
    part, _ = _model(seed=4)
    with pytest.raises(Interrupted):
        T.train_teacher(part, tok, DATA, settings, dev, seed=5, checkpoint=ckpt, progress=False, on_step=_stop_after(5))
    # the last checkpoint before the interruption: step 4 (every 2 steps; with eval_every=3 also at step 3)
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    resumed, _ = _model(seed=4)  # a fresh start, as a new process would build it
    steps_run = []
    log = T.train_teacher(resumed, tok, DATA, settings, dev, seed=5, checkpoint=ckpt, progress=False,
                          on_step=steps_run.append)
    assert steps_run == [5, 6, 7, 8, 9]  # it continued from step 4, it did not start over
    _assert_same_weights(full, resumed)
    assert log.losses == full_log.losses and log.dev == full_log.dev and log.best_step == full_log.best_step


def test_student_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    settings = _settings()
    teacher, tok = _model(seed=1)
    T.train_teacher(teacher, tok, DATA, settings, seed=0, progress=False)
    target, source = SENTS[::-1], SENTS

    full, _ = _model(seed=2)
    T.train_student(full, teacher, tok, target, source, settings, V.Variant(), seed=3, progress=False)
    ckpt = tmp_path / "student.pt"
    part, _ = _model(seed=2)
    with pytest.raises(Interrupted):
        T.train_student(part, teacher, tok, target, source, settings, V.Variant(), seed=3, checkpoint=ckpt,
                        progress=False, on_step=_stop_after(7))
    assert torch.load(ckpt, weights_only=False)["step"] == 6
    resumed, _ = _model(seed=2)
    T.train_student(resumed, teacher, tok, target, source, settings, V.Variant(), seed=3, checkpoint=ckpt,
                    progress=False)
    _assert_same_weights(full, resumed)


def test_checkpoints_written_without_dev_evaluation(tmp_path):
    model, tok = _model(seed=4)
    seen = []
    ckpt = tmp_path / "ckpt.pt"

    def on_step(done):
        seen.append(torch.load(ckpt, weights_only=False)["step"] if ckpt.is_file() else None)

    T.train_teacher(model, tok, DATA, _settings(eval_every=0, checkpoint_every=3), seed=5, checkpoint=ckpt,
                    progress=False, on_step=on_step)
    assert seen == [None, None, 3, 3, 3, 6, 6, 6, 6]  # every 3 steps; none after the last step (the run is done)


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    import test_msd_resume as R
    from nerlib.msd import train as T

    def on_step(done):
        if done == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handler: the process just dies

    model, tok = R._model(seed=4)
    T.train_teacher(model, tok, R.DATA, R._settings(), seed=5, checkpoint=__import__("pathlib").Path({ckpt!r}),
                    progress=False, on_step=on_step)
""")


def test_killed_process_resumes_to_the_same_weights(tmp_path):
    """A training process killed with SIGKILL after 5 steps, then resumed here, equals an uninterrupted run."""
    ckpt = tmp_path / "ckpt.pt"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), ckpt=str(ckpt))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=root,
                          env=env)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    assert not ckpt.with_suffix(".tmp").exists()

    settings = _settings()
    full, tok = _model(seed=4)
    T.train_teacher(full, tok, DATA, settings, seed=5, progress=False)
    resumed, _ = _model(seed=4)
    T.train_teacher(resumed, tok, DATA, settings, seed=5, checkpoint=ckpt, progress=False)
    _assert_same_weights(full, resumed)
