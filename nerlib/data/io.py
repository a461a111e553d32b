"""Reading and writing NER data: CoNLL column files and JSONL, validated line by line.

Every reader returns a list of examples ``{"tokens": [...], "ner_tags": [...]}`` with string IOB2 tags (or a
``datasets.Dataset`` of them via :func:`to_dataset`). Bad input raises :class:`DataFormatError`, which names the
file, the line and the field; nothing is skipped or repaired silently.

* CoNLL columns: one token per line, whitespace-separated columns (token first, tag in ``tag_column``, the last
  by default), a blank line between sentences, ``-DOCSTART-`` lines treated as document boundaries.
* JSONL: one sentence per line, ``{"tokens": [...], "ner_tags": [...]}``, tags as strings.

Every text file goes through :func:`text_lines` (and every JSONL file through :func:`json_records`): lines end at
``"\n"`` only (never at U+2028, U+2029, U+0085 or other characters that ``str.splitlines`` also splits on, since
JSON may carry them unescaped inside strings), a UTF-8 byte-order mark is dropped, and bytes that are not UTF-8 raise
:class:`DataFormatError` naming the file and line.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from nerlib.config import NerlibWarning
from nerlib.data.tags import invalid_iob2_position, iob1_to_iob2, split_tag

Example = dict[str, list[str]]

SCHEMES = ("iob2", "iob1")


class DataFormatError(ValueError):
    """Malformed NER data. ``str(err)`` reads ``file:line: field: problem``; the parts are also attributes."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


_BOM = b"\xef\xbb\xbf"


def text_lines(path: str | Path) -> Iterator[tuple[int, str, bool]]:
    """Yield ``(line_number, text, complete)`` for every line of a UTF-8 text file.

    Lines are split on ``"\n"`` only; the line ending (``"\n"`` or ``"\r\n"``) is removed and ``complete`` says
    whether it was there (``False`` only for a last line cut off without one). A UTF-8 byte-order mark at the start
    is dropped. Bytes that are not UTF-8 raise :class:`DataFormatError` naming the file, line and column.
    """
    path = Path(path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            complete = raw.endswith(b"\n")
            raw = raw[:-1] if complete else raw
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(
                    path, lineno, None, f"not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            yield lineno, text, complete


def json_records(
    path: str | Path, blank_lines: str = "error", truncated_tail: str = "error"
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for every JSON line of a file: the one JSONL reading path of nerlib.

    ``blank_lines``: ``"error"`` (a JSONL file has one record per line) or ``"skip"``. ``truncated_tail``:
    ``"error"``, or ``"skip"`` for append-only caches, where a last line without its newline that is not valid
    JSON is what an interrupted write leaves behind: it is ignored with a warning, so the run resumes and redoes
    that one record. Invalid JSON anywhere else raises :class:`DataFormatError` naming the file and line.
    """
    path = Path(path)
    for lineno, line, complete in text_lines(path):
        if not line.strip():
            if blank_lines == "skip" or (not complete and truncated_tail == "skip"):
                continue
            raise DataFormatError(path, lineno, None, "blank line (one JSON object per line expected)")
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            if not complete and truncated_tail == "skip":
                warnings.warn(f"{path}:{lineno}: ignoring a cut-off last line (an interrupted write); "
                              "its record will be made again", NerlibWarning, stacklevel=2)
                return
            raise DataFormatError(path, lineno, None, f"invalid JSON ({err.msg} at column {err.colno})") from None
        yield lineno, value


def end_with_newline(path: str | Path) -> None:
    """Prepare an append-only JSONL cache for appending: a last line without its newline is completed when it is
    valid JSON and cut off (removed) when it is not, since it is what an interrupted write leaves behind and the
    next record appended to it would make both unreadable. A missing file is left alone."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb+") as f:
        size = f.seek(0, 2)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = max(0, size - 65536)
        while True:  # find the start of the last line
            f.seek(start)
            cut = f.read(size - start).rfind(b"\n")
            if cut >= 0 or start == 0:
                break
            start = max(0, start - 65536)
        line_start = start + cut + 1 if cut >= 0 else 0
        f.seek(line_start)
        tail = f.read()
        try:
            json.loads(tail.decode("utf-8").lstrip("\ufeff"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            f.seek(line_start)
            f.truncate()
            return
        f.seek(size)
        f.write(b"\n")


def check_example(
    tokens: object,
    tags: object,
    path: str | Path,
    line: int | None,
    labels: Sequence[str] | None = None,
    scheme: str = "iob2",
) -> Example:
    """Validate one sentence and return it with IOB2 tags (converted from IOB1 when ``scheme="iob1"``).

    Checks: both fields are lists of strings, non-empty, of equal length; every tag is ``O``/``B-X``/``I-X``;
    the type is in ``labels`` when given; the sequence is valid ``scheme``. Errors name ``path``/``line``/field.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; choose one of {SCHEMES}")
    for field, value in (("tokens", tokens), ("ner_tags", tags)):
        if not isinstance(value, list):
            raise DataFormatError(path, line, field, f"expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise DataFormatError(path, line, f"{field}[{i}]", f"expected a string, got {item!r}")
    assert isinstance(tokens, list) and isinstance(tags, list)
    if not tokens:
        raise DataFormatError(path, line, "tokens", "empty sentence")
    if len(tokens) != len(tags):
        raise DataFormatError(path, line, "ner_tags", f"{len(tags)} tags for {len(tokens)} tokens")
    for i, tok in enumerate(tokens):
        if not tok or tok.isspace():
            raise DataFormatError(path, line, f"tokens[{i}]", "empty or whitespace-only token")
    known = set(labels) if labels is not None else None
    for i, tag in enumerate(tags):
        try:
            _, etype = split_tag(tag)
        except ValueError as err:
            raise DataFormatError(path, line, f"ner_tags[{i}]", str(err)) from None
        if known is not None and etype is not None and etype not in known:
            raise DataFormatError(
                path, line, f"ner_tags[{i}]", f"unknown entity type {etype!r} in {tag!r}; known: {sorted(known)}"
            )
    if scheme == "iob1":
        tags = iob1_to_iob2(tags)
    else:
        bad = invalid_iob2_position(tags)
        if bad is not None:
            prev = tags[bad - 1] if bad else "<start>"
            raise DataFormatError(
                path, line, f"ner_tags[{bad}]", f"{tags[bad]!r} after {prev!r} is not valid IOB2 (pass scheme='iob1'?)"
            )
    return {"tokens": list(tokens), "ner_tags": list(tags)}


def iter_jsonl(
    path: str | Path,
    labels: Sequence[str] | None = None,
    scheme: str = "iob2",
    limit: int | None = None,
) -> Iterator[Example]:
    """Yield validated sentences from a JSONL file, stopping after ``limit`` sentences when given.

    Blank lines are rejected too (a JSONL file has one record per line), so line numbers in errors are exact.
    """
    path = Path(path)
    count = 0
    for lineno, record in json_records(path):
        if limit is not None and count >= limit:
            return
        if not isinstance(record, dict):
            raise DataFormatError(path, lineno, None, f"expected a JSON object, got {type(record).__name__}")
        for field in ("tokens", "ner_tags"):
            if field not in record:
                raise DataFormatError(path, lineno, field, "missing field")
        yield check_example(record["tokens"], record["ner_tags"], path, lineno, labels, scheme)
        count += 1
    if count == 0:
        raise DataFormatError(path, None, None, "empty file (no sentences)")


def read_jsonl(
    path: str | Path, labels: Sequence[str] | None = None, scheme: str = "iob2", limit: int | None = None
) -> list[Example]:
    """All validated sentences of a JSONL file (see :func:`iter_jsonl`)."""
    return list(iter_jsonl(path, labels=labels, scheme=scheme, limit=limit))


def iter_conll(
    path: str | Path,
    tag_column: int = -1,
    labels: Sequence[str] | None = None,
    scheme: str = "iob2",
    limit: int | None = None,
) -> Iterator[Example]:
    """Yield validated sentences from a CoNLL column file.

    Columns are split on whitespace; every line of a file must have the same number of columns (a ragged line
    is an error naming it). ``-DOCSTART-`` lines end the current sentence and are not data. Errors about a
    sentence point at its first line; errors about one token point at that token's line.
    """
    path = Path(path)
    n_columns: int | None = None
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    count = 0

    def flush() -> Example:
        try:
            return check_example(tokens, tags, path, lines[0], labels, scheme)
        except DataFormatError as err:
            # an error about one token or tag is reported at that token's own line
            field, _, index = (err.field or "").partition("[")
            if index:
                column = "token column" if field == "tokens" else f"tag column {tag_column}"
                raise DataFormatError(path, lines[int(index.rstrip("]"))], column, err.message) from None
            raise

    for lineno, raw, _ in text_lines(path):
        line = raw.strip()
        if not line or line.startswith("-DOCSTART-"):
            if tokens:
                yield flush()
                count += 1
                tokens, tags, lines = [], [], []
                if limit is not None and count >= limit:
                    return
            continue
        cols = line.split()
        if n_columns is None:
            n_columns = len(cols)
            if n_columns < 2:
                raise DataFormatError(path, lineno, None, "a CoNLL line needs at least a token and a tag column")
            if not -n_columns <= tag_column < n_columns:
                raise DataFormatError(path, lineno, None, f"tag column {tag_column} but only {n_columns} columns")
        elif len(cols) != n_columns:
            raise DataFormatError(
                path, lineno, None, f"ragged columns: {len(cols)} columns, earlier lines have {n_columns}"
            )
        tokens.append(cols[0])
        tags.append(cols[tag_column])
        lines.append(lineno)
    if tokens and (limit is None or count < limit):
        yield flush()
        count += 1
    if count == 0:
        raise DataFormatError(path, None, None, "empty file (no sentences)")


def read_conll(
    path: str | Path,
    tag_column: int = -1,
    labels: Sequence[str] | None = None,
    scheme: str = "iob2",
    limit: int | None = None,
) -> list[Example]:
    """All validated sentences of a CoNLL column file (see :func:`iter_conll`); ``scheme="iob1"`` converts the
    tags of original CoNLL-2003 files to IOB2."""
    return list(iter_conll(path, tag_column=tag_column, labels=labels, scheme=scheme, limit=limit))


def write_jsonl(examples: Iterable[Example], path: str | Path) -> Path:
    """Write sentences as JSONL (one ``{"tokens", "ner_tags"}`` object per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps({"tokens": list(ex["tokens"]), "ner_tags": list(ex["ner_tags"])}, ensure_ascii=False))
            f.write("\n")
    return path


def write_conll(examples: Iterable[Example], path: str | Path) -> Path:
    """Write sentences as two tab-separated columns (token, tag) with a blank line after each sentence."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            for tok, tag in zip(ex["tokens"], ex["ner_tags"], strict=True):
                f.write(f"{tok}\t{tag}\n")
            f.write("\n")
    return path


def to_dataset(examples: Sequence[Example]):
    """A ``datasets.Dataset`` with columns ``tokens`` and ``ner_tags`` (lists of strings)."""
    import datasets

    features = datasets.Features(
        {"tokens": datasets.List(datasets.Value("string")), "ner_tags": datasets.List(datasets.Value("string"))}
    )
    return datasets.Dataset.from_dict(
        {"tokens": [ex["tokens"] for ex in examples], "ner_tags": [ex["ner_tags"] for ex in examples]},
        features=features,
    )
