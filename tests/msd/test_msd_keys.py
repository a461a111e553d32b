"""Pinned values that cached artefacts depend on: run keys (the cache folders of converged teachers and students
on disk are named by them), ablation cell keys, features and batch orders (so cached runs stay comparable).
Computed with the code before the split of nerlib.msd.train; any change here orphans hours of CPU training."""

import itertools

import pytest

from nerlib.config import get_profile
from nerlib.msd import features as F
from nerlib.msd import runs as R
from nerlib.msd.ablation import _cell_key, with_settings
from nerlib.msd.tiny import tiny_tokenizer
from nerlib.msd.variants import VARIANTS

CONVERGED = dict(teacher_steps=750, train_sentences=12000, eval_sentences=1000, eval_every=0,
                 student_steps=750, unlabeled_sentences=2000)


def _profile():
    return with_settings(get_profile("small"), **CONVERGED)


def test_teacher_keys_of_the_cached_converged_teachers():
    s = _profile().msd
    assert R.teacher_key(s, True, 42, "conll2003_en") == "c2b495198a7c"
    assert R.teacher_key(s, False, 42, "conll2003_en") == "4d1f151de430"


def test_student_keys():
    s = _profile().msd
    assert R.student_key(s, "conll2002_es", VARIANTS["MSD"], 42) == "18ee9e4cc7fb"
    assert R.student_key(s, "conll2002_es", VARIANTS["w/o all"], 42) == "8546ed352015"


def test_variant_keys_leave_the_papers_variants_unchanged():
    from nerlib.msd.variants import CONTROLS, ROWS, Variant

    assert VARIANTS["MSD"].key() == {"distillers": True, "mmd_m": True, "mmd_l": True}  # as before the control
    control = VARIANTS["w/o all, multi-exit teacher"]
    assert control.key()["multi_exit_teacher"] is True and control.teacher_is_multi_exit
    assert not VARIANTS["w/o all"].teacher_is_multi_exit and VARIANTS["w/o distillers"].teacher_is_multi_exit is False
    assert CONTROLS == ("w/o all, multi-exit teacher",) and not set(CONTROLS) & set(ROWS)
    with pytest.raises(ValueError, match="need a multi-exit teacher"):
        Variant(True, True, True, multi_exit_teacher=False)


def test_ablation_cell_keys():
    p = _profile()
    assert _cell_key(p, "conll2002_es", "MSD", 42) == "18210476892d"
    assert _cell_key(p, "conll2002_es", "direct transfer", 42) == "249778a68b32"


def test_features_and_padding_unchanged():
    tok = tiny_tokenizer(["John", "Paris", "in", "lives", "."])
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    sents = [["John", "lives", "in", "Parisx", "."], ["Zq", "John"]]
    tags = [["B-PER", "O", "O", "B-LOC", "O"], ["B-LOC", "I-LOC"]]
    feats = F.encode(sents, tok, 8, tags, {t: i for i, t in enumerate(labels)})
    assert feats == [{"input_ids": [2, 5, 8, 7, 6, 126, 9, 3], "labels": [-100, 3, 0, 0, 1, -100, 0, -100]},
                     {"input_ids": [2, 61, 119, 5, 3], "labels": [-100, 1, -100, 2, -100]}]
    assert [f["labels"] for f in F.encode(sents, tok, 8)] == [[-100, 0, 0, 0, 0, -100, 0, -100],
                                                               [-100, 0, -100, 0, -100]]
    batch = {k: v.tolist() for k, v in F.collate(feats, tok.pad_token_id).items()}
    assert batch == {"input_ids": [[2, 5, 8, 7, 6, 126, 9, 3], [2, 61, 119, 5, 3, 0, 0, 0]],
                     "attention_mask": [[1] * 8, [1, 1, 1, 1, 1, 0, 0, 0]],
                     "labels": [[-100, 3, 0, 0, 1, -100, 0, -100], [-100, 1, -100, 2, -100, -100, -100, -100]]}


def test_batch_orders_unchanged():
    grouped = F.length_grouped_batches([5, 3, 8, 2, 9, 4, 7, 1, 6, 10], 3, 7, pool=2)
    assert list(itertools.islice(grouped, 6)) == [[0, 8, 4], [7, 3, 1], [6, 2, 9], [2, 4, 9], [3, 1, 6], [7, 5, 8]]
    assert list(itertools.islice(F.endless_batches(7, 3, 5), 5)) == [[6, 3, 1], [0, 5, 2], [3, 2, 4], [6, 1, 0],
                                                                      [5, 4, 2]]
