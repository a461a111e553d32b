"""Entity extraction on raw text with a trained UniversalNER student, with character offsets.

The student answers one question per entity type ("What describes *person* in the text?") with a JSON list of
mention strings, as in the official code. :class:`Extractor` turns those strings into spans of the input text:

1. **Windows.** A text longer than ``max_passage_tokens`` (or than the model's context minus the prompt and the
   answer budget) is cut into windows at sentence ends (at word boundaries inside a sentence that alone is too
   long); each window is one passage.
2. **Shared-prefix inference** (:func:`nerlib.uniner.infer.answer`): the passage is encoded once and every type
   is asked from its key/value cache.
3. **Offsets.** Each answered string is looked up in its window: exactly first, else with flexible whitespace (a
   model trained on tokenised passages may write ``Joe 's`` for ``Joe's``), last ignoring case. Matches must
   start and end at word boundaries (``Paris`` is not found inside ``Parisian``). **A repeated string yields every
   occurrence**: the model names a mention, not a position, so ``["Paris"]`` marks each word-bounded ``Paris`` in
   the window. Within one type, a span inside a longer span of that type is dropped (``York`` inside ``New
   York``); the same span may carry several types, unless ``one_type_per_mention`` keeps each mention under the
   type the student was most confident of (:mod:`nerlib.uniner.resolve`). Strings that occur nowhere
   (paraphrases, hallucinations) are reported as ``unmatched``; :func:`ground_answer` applies the same rule to a
   raw answer, so that the evaluation can score what the extractor returns (``ground_mentions``).
4. Window results are shifted to text offsets and merged in text order; every returned entity satisfies
   ``text[start:end] == entity["text"]`` (tested).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from nerlib.data.io import text_lines

# data/texts at the top level; nerlib/data/texts links to it so that a built wheel carries a copy (MANIFEST.in)
DEMO_TEXTS_DIR = next((p for p in (Path(__file__).resolve().parents[1] / "data" / "texts",
                                   Path(__file__).resolve().parents[2] / "data" / "texts") if p.is_dir()),
                      Path(__file__).resolve().parents[2] / "data" / "texts")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")


@dataclass(frozen=True)
class Entity:
    """A mention of ``type`` at ``text[start:end]`` (character offsets, ``end`` exclusive)."""

    type: str
    text: str
    start: int
    end: int


def parse_types(types: str | Sequence[str]) -> list[str]:
    """``"person, organization,programming language"`` -> a list of stripped, distinct, non-empty type names."""
    items = types.split(",") if isinstance(types, str) else list(types)
    out = list(dict.fromkeys(t.strip() for t in items if t and t.strip()))
    if not out:
        raise ValueError("no entity types given (e.g. --types \"person,organization\")")
    return out


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _bounded(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` does not cut a word: no word character on both sides of either edge."""
    if start > 0 and _is_word_char(text[start - 1]) and _is_word_char(text[start]):
        return False
    if end < len(text) and _is_word_char(text[end - 1]) and _is_word_char(text[end]):
        return False
    return True


def locate(text: str, mention: str) -> list[tuple[int, int]]:
    """Every word-bounded occurrence of ``mention`` in ``text`` as ``(start, end)``: exact matches, or, when
    there is none, matches that allow any whitespace (including none) where the mention has a space, and last
    the same ignoring case."""
    mention = mention.strip()
    if not mention:
        return []
    exact = [(m.start(), m.start() + len(mention)) for m in re.finditer(re.escape(mention), text)]
    found = [s for s in exact if _bounded(text, *s)]
    if found:
        return found
    pattern = r"\s*".join(re.escape(part) for part in mention.split())
    for flags in (0, re.IGNORECASE):
        found = [(m.start(), m.end()) for m in re.finditer(pattern, text, flags) if _bounded(text, m.start(), m.end())]
        if found:
            return found
    return []


def ground_answer(passage: str, answer: str) -> str:
    """``answer`` (one raw UniversalNER answer, a JSON list of mention strings) keeping only the mentions that
    :func:`locate` finds in ``passage``: the strings :class:`Extractor` turns into entities, so that scoring the
    grounded answers scores what the extractor returns, while the official metric scores every string the
    student wrote. An answer that does not parse is returned unchanged (it still counts as a parse failure).

    >>> ground_answer("Tim Cook visited Paris.", '["Tim Cook", "Apple", "paris"]')
    '["Tim Cook", "paris"]'
    """
    from nerlib.metrics import parse_answer

    mentions, ok = parse_answer(answer, normalize=False)
    if not ok:
        return answer
    return json.dumps([m for m in mentions if locate(passage, m)], ensure_ascii=False)


def answers_to_entities(text: str, types: Sequence[str], answers: Sequence[str], offset: int = 0
                        ) -> tuple[list[Entity], list[dict]]:
    """Entities (offsets shifted by ``offset``) and unmatched ``{"type", "text"}`` items for the raw answers of
    one passage ``text`` (one answer per type, each a JSON list of strings; unparsable answers give nothing)."""
    from nerlib.metrics import parse_answer

    entities: list[Entity] = []
    unmatched: list[dict] = []
    for etype, raw in zip(types, answers, strict=True):
        mentions, _ = parse_answer(raw, normalize=False)
        spans: set[tuple[int, int]] = set()
        for m in mentions:
            found = locate(text, m)
            if not found:
                unmatched.append({"type": etype, "text": m})
            spans.update(found)
        kept = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
        entities += [Entity(etype, text[a:b], a + offset, b + offset) for a, b in kept]
    return entities, unmatched


def windows(text: str, n_tokens: Any, budget: int) -> list[tuple[int, str]]:
    """Cut ``text`` into ``(offset, window)`` pieces of at most ``budget`` tokens (``n_tokens(str) -> int``),
    at sentence ends where possible, else at whitespace; pieces keep their exact characters (stripped of
    surrounding whitespace, with the offset adjusted), so offsets inside a window map back by addition."""
    if budget < 1:
        raise ValueError(f"window budget must be at least one token, got {budget}")
    if not text.strip():
        return []
    if n_tokens(text) <= budget:
        return _strip(0, text)
    # units: sentences, and words of a sentence that alone is too long
    cuts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    units: list[tuple[int, int]] = []
    for a, b in zip(cuts, cuts[1:]):
        if a == b:
            continue
        if n_tokens(text[a:b]) <= budget:
            units.append((a, b))
        else:
            words = [m.start() for m in re.finditer(r"\S+\s*", text[a:b])] + [b - a]
            units += [(a + x, a + y) for x, y in zip(words, words[1:]) if y > x]
    out: list[tuple[int, str]] = []
    start, end = units[0]
    for a, b in units[1:]:
        if n_tokens(text[start:b]) <= budget:
            end = b
        else:
            out += _strip(start, text[start:end])
            start, end = a, b
    out += _strip(start, text[start:end])
    return out


def _strip(offset: int, piece: str) -> list[tuple[int, str]]:
    stripped = piece.strip()
    if not stripped:
        return []
    return [(offset + piece.index(stripped), stripped)]


class Extractor:
    """A trained UniversalNER student (LoRA adapter, merged/exported model or a model name) that extracts
    entities of any types from raw text. ``max_passage_tokens`` caps a window (the course trains on 256-token
    passages); the model's context also bounds it. ``one_type_per_mention`` resolves a mention named under several
    types of one window to one type (:func:`nerlib.uniner.resolve.resolve_passage`). ``empty_bias`` makes the empty
    answer that many logits less likely (:mod:`nerlib.uniner.calibrate`; 0: plain greedy answers)."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 64, max_passage_tokens: int = 256,
                 max_length: int | None = None, one_type_per_mention: bool = False, empty_bias: float = 0.0) -> None:
        if not empty_bias >= 0:
            raise ValueError(f"empty_bias must be >= 0 (logits taken from the empty answer), got {empty_bias}")
        self.empty_bias = empty_bias
        self.one_type_per_mention = one_type_per_mention
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.max_passage_tokens = max_passage_tokens
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, base: str | None = None, device: Any = None,
                        **kwargs: Any) -> "Extractor":
        """Load a trained folder (adapter or full model, see :func:`nerlib.uniner.train.load_trained`) or a model
        name (the untuned student), on ``device`` (default :func:`nerlib.device.get_device`)."""
        from nerlib.device import get_device
        from nerlib.uniner.train import load_student, load_trained, ready_for_inference

        device = get_device(device) if not hasattr(device, "type") else device
        if Path(name_or_path).is_dir():
            model, tokenizer = load_trained(name_or_path, base, device)
        else:
            model, tokenizer = load_student(str(name_or_path), lora=False)
            model = ready_for_inference(model, device)
        return cls(model, tokenizer, **kwargs)

    def _n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def passage_budget(self, types: Sequence[str]) -> int:
        """Tokens a window may have: ``max_passage_tokens``, lowered so that the prompt (prefix, longest
        question) and the answer fit in the model's context."""
        from nerlib.uniner.infer import encode_prompts

        limit = self.max_length or getattr(self.model.config, "max_position_embeddings", None)
        if limit is None:
            return self.max_passage_tokens
        enc = encode_prompts(self.tokenizer, "", types)
        overhead = len(enc.prefix) + max(len(s) for s in enc.suffixes) + self.max_new_tokens + 8
        budget = min(self.max_passage_tokens, limit - overhead)
        if budget < 8:
            raise ValueError(f"the model's context ({limit} tokens) leaves no room for a passage with these "
                             f"types and max_new_tokens={self.max_new_tokens}")
        return budget

    def extract(self, text: str, types: str | Sequence[str]) -> dict:
        """``{"text", "entities": [{"type", "text", "start", "end"}...], "unmatched": [...]}`` for one text;
        entities in text order (then by type order)."""
        from nerlib.uniner.infer import answer

        types = parse_types(types)
        entities: set[Entity] = set()
        unmatched: list[dict] = []
        for offset, window in windows(text, self._n_tokens, self.passage_budget(types)):
            if self.empty_bias:
                from nerlib.uniner.calibrate import answer_with_bias

                answers = answer_with_bias(self.model, self.tokenizer, window, types, self.empty_bias,
                                           self.max_new_tokens, max_length=self.max_length)
            else:
                answers = answer(self.model, self.tokenizer, window, types, max_new_tokens=self.max_new_tokens,
                                 max_length=self.max_length)
            if self.one_type_per_mention:
                from nerlib.uniner.resolve import resolve_passage

                answers, _ = resolve_passage(self.model, self.tokenizer, window, list(zip(types, answers)))
            found, missing = answers_to_entities(window, types, answers, offset)
            entities.update(found)
            unmatched += missing
        rank = {t: i for i, t in enumerate(types)}
        ordered = sorted(entities, key=lambda e: (e.start, e.end, rank[e.type]))
        return {"text": text, "entities": [asdict(e) for e in ordered], "unmatched": unmatched}

    __call__ = extract


def read_texts(path: str | Path) -> Iterator[str]:
    """Texts of an input file: JSONL with a ``text`` field (when the first non-blank line is a JSON object), else
    one text per line; blank lines are skipped. Errors name the file and line."""
    path = Path(path)
    lines = [(i, line) for i, line, _ in text_lines(path)]  # split on "\n" only: U+2028 stays inside a text
    first = next((line for _, line in lines if line.strip()), "")
    jsonl = first.lstrip().startswith("{")
    for i, line in lines:
        if not line.strip():
            continue
        if not jsonl:
            yield line
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{i}: invalid JSON ({err.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{path}:{i}: field 'text' (a string) is missing")
        yield record["text"]


def input_texts(text: str | None = None, input: str | Path | None = None) -> list[str]:
    """The texts of a command: ``--text`` or ``--input`` (exactly one)."""
    if (text is None) == (input is None):
        raise ValueError("give exactly one of --text or --input")
    return [text] if text is not None else list(read_texts(input))


def demo_texts(folder: str | Path = DEMO_TEXTS_DIR) -> dict[str, str]:
    """The course's short demo texts (``data/texts/<domain>.txt``, written for the course, in no dataset)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the demo texts folder (data/texts of the repository) is missing")
    return {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted(folder.glob("*.txt"))}


def extract_texts(model: str | Path, types: str | Sequence[str], texts: Iterable[str], **kwargs: Any
                  ) -> Iterator[dict]:
    """Command-line entry (``nerlib uniner extract``): one result per text."""
    extractor = Extractor.from_pretrained(model, **kwargs)
    for t in texts:
        yield extractor.extract(t, types)


__all__ = [
    "Entity", "Extractor", "answers_to_entities", "demo_texts", "extract_texts", "input_texts", "locate",
    "parse_types", "read_texts", "windows",
]
