"""Loading from the Hugging Face hub, tested without the hub: a local "hub" laid out as the real one is.

The hub keeps two things per dataset that matter here: ``main`` (for CoNLL-2002/2003, WikiAnn and CrossNER a loading
script, which the pinned ``datasets`` refuses with "Dataset scripts are no longer supported") and the automatic
parquet conversion on ``refs/convert/parquet``: one folder per config (``es/train/0000.parquet``), ``ClassLabel``
names in the parquet schema, and only a ``default`` config. The fixtures below build both from a few rows of the
course's local copies (``$NERLIB_DATA_DIR`` or ``../shared/data``; skipped without them), every config of a
repository side by side (so that a loader mixing es and nl would be caught), with the hub's integer tag inventories
(CrossNER: one inventory shared by all domains). ``datasets.load_dataset`` is patched only to map a hub id and
revision to the local folder; the real loader reads it. What comes back must equal the local copies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from nerlib.data import registry  # noqa: E402
from nerlib.uniner import pile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROWS = 4  # sentences per split in the fixture
SPLITS = ("train", "validation", "test")


def _local_data() -> Path:
    value = os.environ.get("NERLIB_DATA_DIR", "").strip()
    path = Path(value) if value else ROOT.parent / "shared" / "data"
    if not (path / "conll2003_en" / "test.jsonl").is_file():
        pytest.skip(f"no local course data at {path}: hub-layout tests skipped")
    return path


def _inventory(types) -> list[str]:
    """A hub-style tag inventory: O, then B-/I- per type (CoNLL order PER, ORG, LOC, MISC)."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


_CONLL_TAGS = _inventory(("PER", "ORG", "LOC", "MISC"))
_WIKIANN_TAGS = _inventory(("PER", "ORG", "LOC"))
_CROSSNER_TAGS = _inventory(sorted({t for d in ("ai", "literature", "music", "politics", "science")
                                    for t in registry.get(f"crossner_{d}").labels}))
# hub id -> (script name on main, {config folder: local dataset name}, tag inventory)
REPOS = {
    "eriktks/conll2003": ("conll2003", {"conll2003": "conll2003_en"}, _CONLL_TAGS),
    "eriktks/conll2002": ("conll2002", {"es": "conll2002_es", "nl": "conll2002_nl"}, _CONLL_TAGS),
    "unimelb-nlp/wikiann": ("wikiann", {"en": "wikiann_en", "nl": "wikiann_nl"}, _WIKIANN_TAGS),
    "DFKI-SLT/cross_ner": ("cross_ner", {d: f"crossner_{d}" for d in ("ai", "literature", "music", "politics",
                                                                       "science")}, _CROSSNER_TAGS),
}
NER_DATASETS = [name for _, configs, _ in REPOS.values() for name in configs.values()]


def _stray_inside(tags: list[str]) -> list[str]:
    """The hub's CoNLL-2002 Spanish quirk: a sentence-initial entity written ``I-X`` (IOB1 style)."""
    return ["I" + tags[0][1:]] + tags[1:] if tags and tags[0].startswith("B-") else tags


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """``<root>/<repo>/main/<script>/<script>.py`` and ``<root>/<repo>/parquet/<config>/<split>/0000.parquet``."""
    data = _local_data()
    root = tmp_path_factory.mktemp("hub")
    saved = os.environ.get("NERLIB_DATA_DIR")
    os.environ["NERLIB_DATA_DIR"] = str(data)
    strays = 0
    try:
        for repo, (script, configs, tags) in REPOS.items():
            main = root / repo / "main" / script
            main.mkdir(parents=True)
            (main / f"{script}.py").write_text("# a loading script, as on the hub's main branch\n")
            features = datasets.Features({
                "id": datasets.Value("string"),
                "tokens": datasets.List(datasets.Value("string")),
                "ner_tags": datasets.List(datasets.ClassLabel(names=tags)),
            })
            for config, name in configs.items():
                for split in SPLITS:
                    rows = list(registry.load(name, split, limit=ROWS))
                    hub_tags = [r["ner_tags"] for r in rows]
                    if name == "conll2002_es":
                        hub_tags = [_stray_inside(t) for t in hub_tags]
                        strays += sum(a != b for a, b in zip(hub_tags, (r["ner_tags"] for r in rows)))
                    table = {"id": [str(i) for i in range(len(rows))], "tokens": [r["tokens"] for r in rows],
                             "ner_tags": [[tags.index(t) for t in ts] for ts in hub_tags]}
                    out = root / repo / "parquet" / config / split
                    out.mkdir(parents=True)
                    datasets.Dataset.from_dict(table, features=features).to_parquet(str(out / "0000.parquet"))
    finally:
        if saved is None:
            os.environ.pop("NERLIB_DATA_DIR", None)
        else:
            os.environ["NERLIB_DATA_DIR"] = saved
    assert strays > 0, "the Spanish fixture should carry the hub's stray I- tags"
    return root


@pytest.fixture
def fake_hub(hub, monkeypatch, tmp_path):
    """Patch ``datasets.load_dataset``: hub id + revision -> the local folder, read by the real loader."""
    real = datasets.load_dataset
    calls: list[dict] = []

    def load_dataset(path, name=None, *, revision=None, **kwargs):
        calls.append({"path": path, "name": name, "revision": revision, **kwargs})
        repo = hub / path
        if not repo.is_dir():
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the (fake) Hub")
        if revision in (None, "main"):
            local = next((repo / "main").iterdir())
        elif revision == registry.PARQUET_REVISION:
            local = repo / "parquet"
        else:
            raise ValueError(f"unknown revision {revision!r}")
        return real(str(local), name, cache_dir=str(tmp_path / "hf-cache"), **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_fixture_reproduces_the_hub_failures(hub, tmp_path):
    """The layout is faithful: main refuses the script; the config as a builder name fails; no config mixes."""
    real = datasets.load_dataset
    cache = str(tmp_path / "hf-cache")
    with pytest.raises(RuntimeError, match="scripts are no longer supported"):
        real(str(hub / "eriktks/conll2002/main/conll2002"), "es", split="test", cache_dir=cache)
    with pytest.raises(ValueError, match="BuilderConfig 'es' not found"):
        real(str(hub / "eriktks/conll2002/parquet"), "es", split="test", cache_dir=cache)
    mixed = real(str(hub / "eriktks/conll2002/parquet"), split="test", cache_dir=cache)
    assert len(mixed) == 2 * ROWS  # es and nl silently together: the bug the data_dir fixes
    assert mixed.features["ner_tags"].feature.names == _CONLL_TAGS  # label names travel in the parquet schema


@pytest.mark.parametrize("name", NER_DATASETS)
def test_hub_split_equals_local_copy(name, fake_hub, monkeypatch):
    data = _local_data()
    monkeypatch.setenv("NERLIB_DATA_DIR", str(data))
    for split in ("validation", "test"):
        local = registry.load(name, split, limit=ROWS)
        monkeypatch.delenv("NERLIB_DATA_DIR")  # no data folder: load() goes to the hub, as on Colab
        got = registry.load(name, split)
        monkeypatch.setenv("NERLIB_DATA_DIR", str(data))
        assert got["tokens"] == local["tokens"]
        assert got["ner_tags"] == local["ner_tags"]
    repo, config = registry.get(name).hub
    main_call, parquet_call = fake_hub[-2:]
    assert main_call["path"] == repo and main_call["revision"] is None
    assert parquet_call == {"path": repo, "name": None, "revision": registry.PARQUET_REVISION, "data_dir": config,
                            "split": "test"}


def test_hub_limit_keeps_the_first_sentences(fake_hub, monkeypatch):
    data = _local_data()
    monkeypatch.setenv("NERLIB_DATA_DIR", str(data))
    local = registry.load("crossner_music", "test", limit=2)
    got = registry.load_hub("crossner_music", "test", limit=2)
    assert got["tokens"] == local["tokens"] and got["ner_tags"] == local["ner_tags"]


def test_other_hub_errors_are_not_swallowed(fake_hub):
    with pytest.raises(FileNotFoundError, match="doesn't exist"):
        registry.hub_dataset("nobody/nothing", "es", "test")
    assert len(fake_hub) == 1  # no second try on the parquet branch for an error that is not the script one


# ------------------------------------------------------------------------------------------- Pile-NER-type


def _conversation(annotation, index: int) -> dict:
    """A Pile-NER-type record as on the hub: passage, acknowledgement, then one question/answer per type."""
    by_type: dict[str, list[str]] = {}
    for mention, entity_type in annotation.entities:
        by_type.setdefault(entity_type, []).append(mention)
    turns = [{"from": "human", "value": f"Text: {annotation.passage}"},
             {"from": "gpt", "value": "I've read this text."}]
    for entity_type, mentions in [*by_type.items(), *((t, []) for t in annotation.empty_types)]:
        turns += [{"from": "human", "value": f"What describes {entity_type} in the text?"},
                  {"from": "gpt", "value": json.dumps(mentions, ensure_ascii=False)}]
    return {"conversations": turns, "id": f"ner_{index}"}


@pytest.mark.parametrize("main_is_script", [False, True], ids=["main-json", "main-script"])
def test_pile_ner_type_from_the_hub_equals_local_copy(main_is_script, tmp_path, monkeypatch):
    data = _local_data()
    local = pile.read_slimer(data / pile.LOCAL_NAME / pile.SLIMER_FILES[False], limit=3)
    records = [_conversation(a, i) for i, a in enumerate(local)]
    repo = tmp_path / "hub" / pile.HUB_NAME
    main = repo / "main" / "Pile-NER-type"
    main.mkdir(parents=True)
    if main_is_script:
        (main / "Pile-NER-type.py").write_text("# script\n")
    else:
        (main / "train.json").write_text(json.dumps(records, ensure_ascii=False))
    parquet = repo / "parquet" / "default" / "train"
    parquet.mkdir(parents=True)
    datasets.Dataset.from_list(records).to_parquet(str(parquet / "0000.parquet"))
    real = datasets.load_dataset
    revisions = []

    def load_dataset(path, name=None, *, revision=None, **kwargs):
        assert path == pile.HUB_NAME
        revisions.append(revision)
        local_dir = main if revision is None else repo / "parquet"
        return real(str(local_dir), name, cache_dir=str(tmp_path / "hf-cache"), **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("NERLIB_DATA_DIR", raising=False)
    got = pile.load_pile_ner_type(limit=3)  # no data folder: the hub's Pile-NER-type
    assert revisions == ([None, registry.PARQUET_REVISION] if main_is_script else [None])
    assert [a.passage for a in got] == [a.passage for a in local]
    assert [sorted(a.entities) for a in got] == [sorted(a.entities) for a in local]
    assert [a.empty_types for a in got] == [a.empty_types for a in local]
    assert any(a.entities for a in got) and any(a.empty_types for a in got)


# ------------------------------------------------------------------------------------------- evaluation files


def test_eval_file_is_the_official_one_when_the_data_folder_has_it(monkeypatch, tmp_path):
    from nerlib.uniner import evaluate as E

    data = _local_data()
    if not (data / "uniner_eval" / "CrossNER_AI.jsonl").is_file():
        pytest.skip("no official evaluation files in the local data")
    monkeypatch.setenv("NERLIB_DATA_DIR", str(data))
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    assert E.eval_file("ai") == data / "uniner_eval" / "CrossNER_AI.jsonl"
    assert not (tmp_path / "cache" / "uniner" / "eval").exists()


def test_eval_file_is_built_from_the_hub_without_a_data_folder(fake_hub, monkeypatch, tmp_path):
    """Colab: no data folder, so the CrossNER test split comes from the hub and becomes the evaluation file."""
    from nerlib.uniner import evaluate as E
    from nerlib.uniner.eval_data import eval_records_from_dataset

    data = _local_data()
    monkeypatch.setenv("NERLIB_DATA_DIR", str(data))
    expected = eval_records_from_dataset("crossner_music", "test", limit=ROWS)  # from the local copy
    monkeypatch.delenv("NERLIB_DATA_DIR")
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    path = E.eval_file("music")
    assert path == tmp_path / "cache" / "uniner" / "eval" / "hub" / "CrossNER_music.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records == expected
    passages = E.read_eval_file(path)
    assert len(passages) == ROWS and all(p.queries for p in passages)
    assert {q.entity_type for p in passages for q in p.queries} == set(registry.get("crossner_music").natural_labels(True))
    calls = len(fake_hub)
    assert E.eval_file("music") == path and len(fake_hub) == calls  # built once, then reused
    assert not list(path.parent.glob("*.partial"))


def test_eval_file_is_built_from_a_data_folder_without_the_official_files(monkeypatch, tmp_path):
    from nerlib.uniner import evaluate as E
    from nerlib.uniner.eval_data import eval_records_from_dataset

    data = _local_data()
    mine = tmp_path / "data" / "crossner_ai"
    mine.mkdir(parents=True)
    lines = (data / "crossner_ai" / "test.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    (mine / "test.jsonl").write_text("".join(lines), encoding="utf-8")
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    path = E.eval_file("ai")
    assert path.parent.parent == tmp_path / "cache" / "uniner" / "eval" and path.parent.name.startswith("data-")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records == eval_records_from_dataset("crossner_ai", "test")
    assert len({r["conversations"][0]["value"] for r in records}) == 3


def test_validation_eval_file_is_built_from_the_validation_split(monkeypatch, tmp_path):
    """Settings are chosen on CrossNER's validation passages: the file is built from the BIO validation split even
    when the official test files are present, and lives beside (never in place of) the test file."""
    from nerlib.uniner import evaluate as E
    from nerlib.uniner.eval_data import eval_records_from_dataset

    data = _local_data()
    mine = tmp_path / "data" / "crossner_ai"
    mine.mkdir(parents=True)
    for split in ("test", "validation"):
        lines = (data / "crossner_ai" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:2]
        (mine / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    valid, test = E.eval_file("ai", "validation"), E.eval_file("ai")
    assert valid.name == "CrossNER_AI-validation.jsonl" and valid.parent == test.parent and valid != test
    records = [json.loads(line) for line in valid.read_text(encoding="utf-8").splitlines()]
    assert records == eval_records_from_dataset("crossner_ai", "validation")
    passages = {r["conversations"][0]["value"] for r in records}
    assert not passages & {json.loads(x)["conversations"][0]["value"] for x in test.read_text().splitlines()}
    with pytest.raises(ValueError, match="unknown evaluation split 'train'"):
        E.eval_file("ai", "train")
