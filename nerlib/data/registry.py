"""The datasets the course uses: domain, language, label set, natural-language label names, and one ``load``.

UniversalNER asks a model about entity types in natural language ("What describes *program language* in the
text?"), so every raw label (``programlang``) has a natural name (``program language``). The names agree with the
official UniversalNER evaluation files (``uniner_eval/CrossNER_*.jsonl``): note ``organisation`` is asked as
``organization`` and ``programlang`` as ``program language``; the benchmark never asks about CrossNER's ``misc``
(see :attr:`DatasetInfo.benchmark_labels`).

``load(name, split)`` reads ``$NERLIB_DATA_DIR/<name>/<split>.jsonl`` when that setting is present, and otherwise
downloads the same split from the Hugging Face hub, mapping integer tags to strings through the dataset's
features. Either way the result is a ``datasets.Dataset`` with string columns ``tokens`` and ``ner_tags`` (IOB2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nerlib.config import data_dir, hub_unavailable
from nerlib.data.io import DataFormatError, check_example, iter_jsonl, text_lines, to_dataset

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {"dev": "validation", "valid": "validation", "testa": "validation", "testb": "test"}


@dataclass(frozen=True)
class DatasetInfo:
    """What the course needs to know about one NER dataset."""

    name: str
    domain: str
    language: str
    labels: tuple[str, ...]  # raw entity types as in the tags, e.g. "PER", "programlang"
    natural: dict[str, str]  # raw type -> natural-language name used in UniversalNER questions
    hub: tuple[str, str | None]  # (hub dataset id, config) for the hub fallback
    local: bool = True  # False: only on the hub (not in the course's local data folder)
    benchmark_excluded: tuple[str, ...] = ()  # raw types the UniversalNER benchmark does not ask about
    description: str = ""

    @property
    def benchmark_labels(self) -> tuple[str, ...]:
        """Raw types asked about in UniversalNER's zero-shot benchmark (all labels minus the excluded ones)."""
        return tuple(t for t in self.labels if t not in self.benchmark_excluded)

    def natural_labels(self, benchmark: bool = False) -> list[str]:
        """Natural-language names of the labels (of the benchmark labels only with ``benchmark=True``)."""
        return [self.natural[t] for t in (self.benchmark_labels if benchmark else self.labels)]

    @property
    def tag_names(self) -> list[str]:
        """IOB2 tag inventory: ``O`` then ``B-``/``I-`` for every label (a stable order for label ids)."""
        return ["O"] + [f"{p}-{t}" for t in self.labels for p in ("B", "I")]


# Natural names shared by many datasets live in the data file ``data/labels/natural_names.tsv`` (raw type, tab,
# natural name). CrossNER "misc" is never asked in the UniversalNER benchmark; it is named "miscellaneous" like
# CoNLL's MISC so that it still reads as a type when used elsewhere.
# ``nerlib/data/labels`` is a link to that folder, so that a built wheel (pip install from git, as on Colab) carries
# a copy of the file (MANIFEST.in); a checkout without the link reads the folder itself.
_NAMES_CANDIDATES = (
    Path(__file__).parent / "labels" / "natural_names.tsv",
    Path(__file__).resolve().parents[2] / "data" / "labels" / "natural_names.tsv",
)
NATURAL_NAMES_FILE = next((p for p in _NAMES_CANDIDATES if p.is_file()), _NAMES_CANDIDATES[-1])


def read_natural_names(path: Path = NATURAL_NAMES_FILE) -> dict[str, str]:
    """Raw type -> natural name from a two-column TSV file (``#`` lines are comments); errors name the line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the label names ship in the repository's data/labels folder "
                                "(nerlib/data/labels links to it; a wheel carries a copy)")
    out: dict[str, str] = {}
    for i, line, _ in text_lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        raw, sep, natural = line.partition("\t")
        if not sep or not raw.strip() or not natural.strip():
            raise ValueError(f"{path}:{i}: expected 'raw type<TAB>natural name', got {line!r}")
        out[raw.strip()] = natural.strip()
    return out


_NATURAL: dict[str, str] = read_natural_names()


def _natural(labels: tuple[str, ...]) -> dict[str, str]:
    return {t: _NATURAL.get(t, t) for t in labels}


_CONLL = ("LOC", "MISC", "ORG", "PER")
_WIKIANN = ("LOC", "ORG", "PER")
_CROSSNER: dict[str, tuple[str, ...]] = {
    "ai": ("algorithm", "conference", "country", "field", "location", "metrics", "misc", "organisation", "person",
           "product", "programlang", "researcher", "task", "university"),
    "literature": ("award", "book", "country", "event", "literarygenre", "location", "magazine", "misc",
                   "organisation", "person", "poem", "writer"),
    "music": ("album", "award", "band", "country", "event", "location", "misc", "musicalartist",
              "musicalinstrument", "musicgenre", "organisation", "person", "song"),
    "politics": ("country", "election", "event", "location", "misc", "organisation", "person", "politicalparty",
                 "politician"),
    "science": ("academicjournal", "astronomicalobject", "award", "chemicalcompound", "chemicalelement", "country",
                "discipline", "enzyme", "event", "location", "misc", "organisation", "person", "protein",
                "scientist", "theory", "university"),
}
_LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "nl": "Dutch", "de": "German", "fr": "French",
                   "ar": "Arabic", "hi": "Hindi", "zh": "Chinese"}


def _build() -> dict[str, DatasetInfo]:
    reg: dict[str, DatasetInfo] = {}

    def add(info: DatasetInfo) -> None:
        reg[info.name] = info

    add(DatasetInfo("conll2003_en", "news", "en", _CONLL, _natural(_CONLL), ("eriktks/conll2003", None),
                    description="CoNLL-2003 English (Reuters news)"))
    for lang in ("es", "nl"):
        add(DatasetInfo(f"conll2002_{lang}", "news", lang, _CONLL, _natural(_CONLL), ("eriktks/conll2002", lang),
                        description=f"CoNLL-2002 {_LANGUAGE_NAMES[lang]} (news)"))
    for lang in ("en", "nl", "es", "de", "fr", "ar", "hi", "zh"):
        add(DatasetInfo(f"wikiann_{lang}", "wikipedia", lang, _WIKIANN, _natural(_WIKIANN),
                        ("unimelb-nlp/wikiann", lang), local=lang in ("en", "nl"),
                        description=f"WikiAnn / PAN-X {_LANGUAGE_NAMES[lang]} (Wikipedia, silver labels)"))
    for domain, labels in _CROSSNER.items():
        add(DatasetInfo(f"crossner_{domain}", domain, "en", labels, _natural(labels), ("DFKI-SLT/cross_ner", domain),
                        benchmark_excluded=("misc",), description=f"CrossNER {domain} (Wikipedia)"))
    return reg


REGISTRY: dict[str, DatasetInfo] = _build()


def names(local_only: bool = False) -> list[str]:
    """Registered dataset names (only those in the course's local data folder with ``local_only=True``)."""
    return [n for n, info in REGISTRY.items() if info.local or not local_only]


def get(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` (a registered name, or a local data folder/file); ``KeyError`` lists
    the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        if Path(name).exists():  # a local data folder or file (see :func:`path_info`)
            return path_info(name)
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)} (or give a data folder)") from None


def _split(split: str) -> str:
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split


def load(name: str, split: str, limit: int | None = None):
    """Load a split as a ``datasets.Dataset`` with columns ``tokens`` and ``ner_tags`` (string IOB2 tags).

    Reads ``$NERLIB_DATA_DIR/<name>/<split>.jsonl`` when ``NERLIB_DATA_DIR`` is set, else the hub copy
    (see :func:`load_hub`). ``limit`` keeps the first ``limit`` sentences (deterministic, file order).
    Every sentence is validated: unknown types or broken IOB2 raise :class:`DataFormatError`.
    """
    split = _split(split)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if name not in REGISTRY and Path(name).exists():  # a local data folder or file
        return load_path(name, split, limit)
    info = get(name)
    root = data_dir()
    if root is None:
        return load_hub(name, split, limit)
    path = root / name / f"{split}.jsonl"
    if not path.is_file():
        hint = "" if info.local else " (this dataset is only on the hub: unset NERLIB_DATA_DIR to download it)"
        raise FileNotFoundError(f"{path} not found for dataset {name!r} split {split!r}{hint}")
    if limit == 0:
        return to_dataset([])
    return to_dataset(list(iter_jsonl(path, labels=info.labels, limit=limit)))


#: The branch where the hub keeps its automatic parquet conversion of every dataset (one folder per config).
PARQUET_REVISION = "refs/convert/parquet"


def hub_dataset(path: str, config: str | None, split: str):
    """``datasets.load_dataset(path, config, split=split)``, and for a repository that is a loading script (refused
    by current ``datasets``) the same config from the hub's parquet conversion.

    That branch (:data:`PARQUET_REVISION`) stores one folder per config (``es/train/0000.parquet``,
    ``nl/...``) and offers only a ``default`` config: the config is therefore passed as ``data_dir`` (as a config
    name it fails with "BuilderConfig 'es' not found"; without it, all configs would mix into one split). The
    parquet schema carries the ``datasets`` features, so ``ClassLabel`` names survive.
    """
    import datasets

    try:
        return datasets.load_dataset(path, config, split=split)
    except Exception as err:  # noqa: BLE001 - only the "scripts are no longer supported" error falls through
        if "script" not in str(err).lower():
            raise
    return datasets.load_dataset(path, data_dir=config, split=split, revision=PARQUET_REVISION)


def load_hub(name: str, split: str, limit: int | None = None):
    """Download ``split`` of ``name`` from the Hugging Face hub and convert it to string IOB2 tags.

    Integer tags are mapped to strings through the ``ner_tags`` ClassLabel of the hub dataset. Hub copies are
    read with ``scheme="iob1"``, which leaves valid IOB2 unchanged and turns a stray ``I-X`` after ``O`` into
    ``B-X`` (the hub's CoNLL-2002 Spanish has one such sentence per split; the local copy was fixed the same
    way, see the data MANIFEST). Datasets stored as loading scripts are read from the hub's parquet conversion
    (:func:`hub_dataset`).
    """
    info = get(name)
    split = _split(split)
    path, config = info.hub
    try:
        ds = hub_dataset(path, config, split if limit is None else f"{split}[:{limit}]")
    except ConnectionError as err:  # offline or no network, and no local copy: say what to do
        raise hub_unavailable(f"dataset {name!r} ({path})", err) from err
    tag_feature = ds.features["ner_tags"]
    inner = getattr(tag_feature, "feature", None)
    if not hasattr(inner, "names"):
        raise DataFormatError(f"hub:{path}/{config}", None, "ner_tags", f"expected a list of ClassLabel, got {tag_feature}")
    id2tag = inner.names
    where = f"hub:{path}/{config or ''}:{split}"
    examples = [
        check_example(list(row["tokens"]), [id2tag[i] for i in row["ner_tags"]], where, k + 1, info.labels, "iob1")
        for k, row in enumerate(ds)
    ]
    return to_dataset(examples)


# Local data folders: ``<folder>/<split>.jsonl`` (or CoNLL ``<split>.txt``/``.conll``; ``dev``/``testa``/``testb``
# accepted), or a single JSONL/CoNLL file used for every split.
_SPLIT_FILES = {"train": ("train",), "validation": ("validation", "dev", "valid", "testa"), "test": ("test", "testb")}
_SUFFIXES = (".jsonl", ".conll", ".txt", ".tsv", ".bio")


def split_file(path: str | Path, split: str) -> Path:
    """The file holding ``split`` of a local dataset (a folder of split files, or one file for all splits)."""
    path = Path(path)
    if path.is_file():
        return path
    names = _SPLIT_FILES.get(_split(split), (split,))
    for name in names:
        for suffix in _SUFFIXES:
            if (path / f"{name}{suffix}").is_file():
                return path / f"{name}{suffix}"
    raise FileNotFoundError(f"{path}: no file for split {split!r} (looked for {'/'.join(names)} with "
                            f"{', '.join(_SUFFIXES)})")


def load_path(path: str | Path, split: str, limit: int | None = None):
    """A split of a local BIO dataset (JSONL or CoNLL columns, validated) as a ``datasets.Dataset``."""
    from nerlib.data.io import read_conll

    file = split_file(path, split)
    if limit == 0:
        return to_dataset([])
    examples = list(iter_jsonl(file, limit=limit)) if file.suffix == ".jsonl" else read_conll(file, limit=limit)
    return to_dataset(examples)


def path_info(path: str | Path) -> DatasetInfo:
    """A :class:`DatasetInfo` for a local dataset: the types found in its split files (sorted), natural names
    from the names file or the raw name with underscores as spaces."""
    from nerlib.data.tags import bio_to_spans

    path = Path(path)
    files = [path] if path.is_file() else []
    for split in SPLITS:
        try:
            files.append(split_file(path, split))
        except FileNotFoundError:
            pass
    if not files:
        raise FileNotFoundError(f"{path}: no train/validation/test file (JSONL or CoNLL) in this folder")
    types: set[str] = set()
    for file in dict.fromkeys(files):
        ds = load_path(file, "test")
        types.update(t for tags in ds["ner_tags"] for _, _, t in bio_to_spans(tags))
    labels = tuple(sorted(types))
    natural = {t: _NATURAL.get(t, t.replace("_", " ")) for t in labels}
    return DatasetInfo(str(path), "unknown", "unknown", labels, natural, ("", None),
                       description=f"local data {path}")


def describe(names_: list[str] | None = None):
    """A ``pandas.DataFrame`` with one row per dataset: name, domain, language, number of types and the types in
    natural language (raw name in brackets where it differs). Default: the datasets in the local data folder."""
    import pandas as pd

    rows = []
    for name in names_ or names(local_only=True):
        info = get(name)
        types = [info.natural[t] if info.natural[t] == t else f"{info.natural[t]} ({t})" for t in info.labels]
        rows.append({"dataset": name, "domain": info.domain, "language": info.language,
                     "types": len(info.labels), "entity types (natural language)": ", ".join(types)})
    return pd.DataFrame(rows).set_index("dataset")
