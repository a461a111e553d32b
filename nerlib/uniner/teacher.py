"""The teacher: the paper's prompt, three interchangeable clients and an append-only answer cache.

UniversalNER (Zhou et al., 2024, Section 2) asks ChatGPT once per passage for *all* entities and their types.
Every client here implements :meth:`Teacher.annotate`: it yields one :class:`TeacherResult` per passage, in input
order. Clients:

* :class:`~nerlib.uniner.openai_teacher.OpenAITeacher` (in its own module, on the ``openai`` SDK): any
  OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, ...): concurrency, a requests-per-minute
  limit, a deadline per attempt, retries with exponential backoff on every transport fault, 429 and 5xx
  (``Retry-After`` honoured, capped), no redirects (the key never leaves its origin).
* :class:`TransformersTeacher`: a local causal LM (chat template, greedy decoding).
* :class:`ReplayTeacher`: answers recorded earlier (e.g. the paper's ChatGPT answers, see ``nerlib.uniner.pile``).

Every client submits requests through a bounded window (Ctrl-C or a budget stops new requests at once), asks each
distinct passage once per run, takes ``max_requests`` / ``max_cost`` budgets and shows requests, cache hits,
failures and the running cost on its progress bar. The pipeline step ``nerlib uniner annotate`` (the profile's
teacher, or ``--input`` with any endpoint) is :mod:`nerlib.uniner.pipeline`.

With an :class:`AnswerCache` every answer is appended to a JSONL file the moment it arrives (flushed and fsynced),
keyed by model and prompt hash: an interrupted run resumes and never asks the same question twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from tqdm.auto import tqdm

from nerlib.data.io import DataFormatError
from nerlib.runs import AppendLog

log = logging.getLogger(__name__)

SYSTEM_MESSAGE = "You are a helpful information extraction system."

#: The paper's data-construction prompt (Zhou et al., 2024, Figure 1 / project page), verbatim.
PROMPT = (
    "Given a passage, your task is to extract all entities and identify their entity types. The output should be "
    'in a list of tuples of the following format: [("entity 1", "type of entity 1"), ... ].'
    "\n\nPassage: {passage}"
)

#: The definition-based variant (paper, Section 5, "entity type definitions"): each entity's type is a short
#: defining sentence instead of a type name. Written from our reading of the paper; we could not check it
#: character for character against a stored copy.
DEFINITION_PROMPT = (
    "Given a paragraph, your task is to extract all entities and concepts, and define their type using a short "
    'sentence. The output should be in the following format: [("entity", "definition of entity type in a short '
    'sentence"), ... ].'
    "\n\nParagraph: {passage}"
)


def build_messages(passage: str, definitions: bool = False) -> list[dict[str, str]]:
    """The chat messages sent to the teacher for one passage (system + user, as in the paper)."""
    template = DEFINITION_PROMPT if definitions else PROMPT
    return [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": template.format(passage=passage)},
    ]


def prompt_key(model: str, messages: list[dict[str, str]]) -> str:
    """A stable key for (model, prompt): the SHA-256 of their canonical JSON."""
    blob = json.dumps({"model": model, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Usage:
    """Token counts of one completion (as reported by the server or counted locally)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class TeacherResult:
    """The teacher's answer for one passage. ``error`` is set (and ``content`` empty) when every attempt failed."""

    passage: str
    content: str
    model: str
    key: str
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    error: str | None = None
    id: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class TeacherError(RuntimeError):
    """A request that failed for good (retries exhausted or a non-retryable error)."""


# ----------------------------------------------------------------------------------------------------------------
# The append-only answer cache
# ----------------------------------------------------------------------------------------------------------------


class AnswerCache:
    """Append-only JSONL cache of teacher answers keyed by :func:`prompt_key`.

    Each line is ``{"key", "model", "passage", "content", "usage"}``. Lines are flushed and fsynced one by one, so a
    killed process loses at most the line it was writing; such a truncated last line is reported (logged and
    counted in :attr:`truncated`) and cut off before the next answer is appended (a :class:`nerlib.runs.AppendLog`).
    A malformed line anywhere else is an error naming the file and line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.truncated = 0
        self._lock = threading.Lock()
        self._log = AppendLog(self.path, check=_check_entry)
        self._entries: dict[str, dict] = {}
        with warnings.catch_warnings(record=True) as caught:  # the log warns about a cut-off last line
            warnings.simplefilter("always")
            try:
                self._entries = {entry["key"]: entry for entry in self._log}
            except DataFormatError as err:
                raise ValueError(f"{err.path}:{err.line}: malformed cache line ({err.message})") from None
        for w in caught:
            self.truncated += 1
            log.warning("%s (a truncated last line left by an interrupted run)", w.message)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def add(self, key: str, model: str, passage: str, content: str, usage: Usage) -> None:
        """Record one answer durably (append, flush, fsync) before anyone uses it."""
        entry = {"key": key, "model": model, "passage": passage, "content": content, "usage": asdict(usage)}
        with self._lock:
            self._log.append(entry)  # a cut-off last line is removed first
            self._entries[key] = entry


def _check_entry(entry: Any, where: str) -> None:
    """An answer-cache line must be a JSON object with a string ``key``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise ValueError(f"{where}: malformed cache line (expected an object with a string 'key')")


# ----------------------------------------------------------------------------------------------------------------
# The common client interface
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class RunStats:
    """What one :meth:`Teacher.annotate` run did, for the progress bar and the run's summary."""

    passages: int = 0
    asked: int = 0  # requests sent (distinct prompts that were not in the cache)
    cached: int = 0  # answers taken from the cache, or from this run's answer to the same passage
    failed: int = 0  # passages without an answer because every attempt failed
    not_asked: int = 0  # passages left unasked because a budget was reached or the run was interrupted
    prompt_tokens: int = 0  # of the requests sent in this run
    completion_tokens: int = 0
    cost: float = 0.0  # US dollars, at the teacher's price (0 without one)
    stopped: str | None = None  # why new requests stopped before the end, if they did


class Teacher:
    """Base class: turns passages into :class:`TeacherResult` s, using the cache and a thread pool.

    Subclasses implement :meth:`complete` (one chat completion, raising :class:`TeacherError` on failure).
    """

    model: str = "teacher"
    max_workers: int = 1
    #: (input, output) US dollars per 1,000 tokens, for the cost display and ``max_cost``; ``None``: no cost.
    price_per_1k: tuple[float, float] | None = None

    def __init__(self, cache: AnswerCache | str | Path | None = None) -> None:
        self.cache = AnswerCache(cache) if isinstance(cache, (str, Path)) else cache
        self.stats = RunStats()
        self._stop = threading.Event()  # set when a run is interrupted: workers start no new attempt

    def complete(self, passage: str, messages: list[dict[str, str]]) -> tuple[str, Usage]:
        raise NotImplementedError

    def _ask(self, passage: str, messages: list[dict[str, str]], key: str, pid: str) -> TeacherResult:
        if self._stop.is_set():
            return TeacherResult(passage, "", self.model, key, error="not asked: the run was interrupted", id=pid)
        try:
            content, usage = self.complete(passage, messages)
        except TeacherError as err:
            return TeacherResult(passage, "", self.model, key, error=str(err), id=pid)
        if self.cache is not None:
            self.cache.add(key, self.model, passage, content, usage)
        return TeacherResult(passage, content, self.model, key, usage=usage, id=pid)

    def annotate(
        self,
        passages: Iterable[str] | Iterable[Any],
        definitions: bool = False,
        progress: bool = True,
        max_requests: int | None = None,
        max_cost: float | None = None,
    ) -> Iterator[TeacherResult]:
        """Ask the teacher about every passage (strings, or objects with ``.text`` and ``.id``); yield results in
        input order.

        Cached answers are returned without a request, and a passage that occurs twice is asked once (the later
        copies get the same answer, counted as cached). Failures come back with ``error`` set and are not cached,
        so a later run asks again. Requests go out through a window of at most ``2 * max_workers``: an interrupt
        (Ctrl-C) or a budget stops new requests at once, while those already sent finish and are cached.

        ``max_requests`` caps the requests sent. ``max_cost`` (US dollars, needs :attr:`price_per_1k`) lets a
        request start only while the cost of the answers so far plus an estimate for the requests in flight (the
        mean cost so far; before any answer, the prompt's length) stays below it; when only that estimate stands
        in the way, the client waits for the answers in flight. So the spend passes ``max_cost`` by at most about
        one request per worker. Token counts come from the server's ``usage`` (or an estimate, see
        :func:`estimate_usage`). Passages left unasked come back with ``error`` starting with ``"not asked"``.
        :attr:`stats` holds the counts of the run.
        """
        if max_requests is not None and max_requests < 0:
            raise ValueError(f"max_requests must be 0 or more, not {max_requests}")
        if max_cost is not None:
            if max_cost < 0:
                raise ValueError(f"max_cost must be 0 or more, not {max_cost}")
            if not self.price_per_1k:
                raise ValueError("max_cost needs the teacher's price per 1,000 input and output tokens "
                                 "(price_per_1k; on the command line --price-in and --price-out)")
        items = [(p, "") if isinstance(p, str) else (p.text, getattr(p, "id", "")) for p in passages]
        jobs = []
        for text, pid in items:
            messages = build_messages(text, definitions)
            jobs.append((text, messages, prompt_key(self.model, messages), pid))
        stats = self.stats = RunStats(passages=len(jobs))
        self._stop.clear()
        bar = tqdm(total=len(jobs), desc=f"teacher {self.model}", disable=not progress)
        lock = threading.Lock()
        spent = Usage()  # of the requests finished so far (updated by the workers)
        n_finished = 0

        def finished(result: TeacherResult) -> None:
            nonlocal n_finished
            with lock:
                n_finished += 1
                spent.prompt_tokens += result.usage.prompt_tokens
                spent.completion_tokens += result.usage.completion_tokens

        def report(result: TeacherResult) -> None:
            if result.cached:
                stats.cached += 1
            elif result.error and result.error.startswith("not asked"):
                stats.not_asked += 1
            if not result.ok and not result.error.startswith("not asked"):
                stats.failed += 1
            with lock:
                stats.prompt_tokens, stats.completion_tokens = spent.prompt_tokens, spent.completion_tokens
            stats.cost = self.cost(Usage(stats.prompt_tokens, stats.completion_tokens))
            postfix = {"asked": stats.asked, "cached": stats.cached, "failed": stats.failed,
                       "tok_in": stats.prompt_tokens, "tok_out": stats.completion_tokens}
            if self.price_per_1k:
                postfix["cost$"] = f"{stats.cost:.4f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)

        def budget_reached(job) -> tuple[str | None, bool]:
            """Why no new request may start (or None), and whether that hangs on estimates of requests in flight."""
            if max_requests is not None and stats.asked >= max_requests:
                return f"the request budget is reached (max_requests={max_requests})", False
            if max_cost is not None:
                with lock:
                    done_cost, n_done = self.cost(spent), n_finished
                in_flight = stats.asked - n_done
                per_request = done_cost / n_done if n_done else self.cost(estimate_usage(job[1], ""))
                if done_cost + in_flight * per_request >= max_cost:
                    return (f"the cost budget is reached (max_cost=${max_cost:g}: ${done_cost:.4f} spent, "
                            f"about ${in_flight * per_request:.4f} in flight)"), in_flight > 0
            return None, False

        pool = ThreadPoolExecutor(self.max_workers, "teacher") if self.max_workers > 1 else None
        window = 2 * self.max_workers if pool is not None else 1  # alone: deliver each answer before the next
        asked: dict[str, Future | TeacherResult] = {}  # prompt key -> this run's request for it
        queue: deque[tuple[tuple, Any, bool]] = deque()  # (job, Future | TeacherResult, first request for its key)
        in_flight = 0  # requests in the queue (sent or waiting for a worker)
        delivered: set[str] = set()

        def pop() -> TeacherResult:
            nonlocal in_flight
            job, source, first = queue.popleft()
            result = source.result() if isinstance(source, Future) else source
            if first:
                in_flight -= 1
            if result.key in delivered and not result.cached and result.ok:  # a repeat of a passage of this run
                result = replace(result, passage=job[0], id=job[3], cached=True)
            elif result.key in delivered:
                result = replace(result, passage=job[0], id=job[3])
            delivered.add(result.key)
            report(result)
            return result

        def ask(job) -> TeacherResult:  # counts the cost before anyone can see the answer
            result = self._ask(*job)
            finished(result)
            return result

        try:
            for job in jobs:
                text, messages, key, pid = job
                if key in asked:
                    queue.append((job, asked[key], False))
                    continue
                entry = self.cache.get(key) if self.cache is not None else None
                if entry is not None:
                    result = TeacherResult(text, entry["content"], self.model, key, Usage(**entry.get("usage", {})),
                                           cached=True, id=pid)
                    queue.append((job, result, False))
                    continue
                while in_flight >= window:
                    yield pop()
                reason, estimated = budget_reached(job) if stats.stopped is None else (None, False)
                while estimated:  # wait for answers in flight: their real cost replaces the estimate
                    yield pop()
                    reason, estimated = budget_reached(job)
                if reason:
                    stats.stopped = reason
                    log.warning("teacher %s: no new requests: %s; the answers so far are kept%s", self.model,
                                reason, f" in {self.cache.path}" if self.cache is not None else "")
                if stats.stopped is not None:
                    queue.append((job, TeacherResult(text, "", self.model, key, error=f"not asked: {stats.stopped}",
                                                     id=pid), False))
                    continue
                stats.asked += 1
                source = ask(job) if pool is None else pool.submit(ask, job)
                asked[key] = source
                queue.append((job, source, True))
                in_flight += 1
            while queue:
                yield pop()
        except BaseException as err:  # Ctrl-C, a closed generator, a bug: send nothing more, keep what arrived
            self._stop.set()
            if isinstance(err, KeyboardInterrupt):
                stats.stopped = "interrupted"
                log.warning("teacher %s: interrupted; no new requests (those already sent finish and are cached)",
                            self.model)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=not self._stop.is_set(), cancel_futures=True)
            bar.close()

    def cost(self, usage: Usage) -> float:
        """Dollar cost of ``usage`` at :attr:`price_per_1k` (0 when no price is set)."""
        if not self.price_per_1k:
            return 0.0
        p_in, p_out = self.price_per_1k
        return usage.prompt_tokens / 1000 * p_in + usage.completion_tokens / 1000 * p_out


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token), for servers that report no ``usage``."""
    return max(1, -(-len(text) // 4)) if text else 0


def estimate_usage(messages: list[dict[str, str]], answer: str) -> Usage:
    """Estimated :class:`Usage` of a request whose server sent no token counts."""
    return Usage(estimate_tokens("".join(m["content"] for m in messages)) + 4 * len(messages), estimate_tokens(answer))


# ----------------------------------------------------------------------------------------------------------------
# (b) A local transformers model
# ----------------------------------------------------------------------------------------------------------------


class TransformersTeacher(Teacher):
    """A local causal LM as teacher: the chat template (a plain ``system\\n\\nuser`` text when the tokenizer has
    none) and greedy decoding. ``model_name`` may be a short name of ``nerlib.models``, a hub name or a path."""

    def __init__(
        self,
        model_name: str,
        cache: AnswerCache | str | Path | None = None,
        max_new_tokens: int = 256,
        model: Any | None = None,
        tokenizer: Any | None = None,
        **from_pretrained: Any,
    ) -> None:
        super().__init__(cache)
        self.model = model_name
        self.max_new_tokens = max_new_tokens
        if model is None or tokenizer is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                from nerlib.models import resolve

                path = resolve(model_name)
            except ImportError:
                path = model_name
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
            if model is None:  # loaded here: on the library's device (nerlib.device); a given model stays put
                from nerlib.device import get_device

                model = AutoModelForCausalLM.from_pretrained(path, **from_pretrained).to(get_device())
        self.lm = model.eval()
        self.tokenizer = tokenizer

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the prompt, ending where the assistant's answer starts."""
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, Mapping) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n\n".join(m["content"] for m in messages) + "\n\n"
        return self.tokenizer(text)["input_ids"]

    def complete(self, passage: str, messages: list[dict[str, str]]) -> tuple[str, Usage]:
        import torch

        ids = self.prompt_ids(messages)
        device = next(self.lm.parameters()).device
        input_ids = torch.tensor([ids], device=device)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.lm.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        new = out[0, len(ids):]
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return text, Usage(len(ids), int(new.numel()))


# ----------------------------------------------------------------------------------------------------------------
# (c) Replay of recorded answers
# ----------------------------------------------------------------------------------------------------------------


class ReplayTeacher(Teacher):
    """Serves recorded answers: ``answers`` maps a passage to the teacher's raw answer string.

    A passage without a recorded answer comes back as a failed result (nothing is invented).
    """

    def __init__(self, answers: Mapping[str, str], model: str = "replay", cache: AnswerCache | None = None) -> None:
        super().__init__(cache)
        self.answers = dict(answers)
        self.model = model

    def complete(self, passage: str, messages: list[dict[str, str]]) -> tuple[str, Usage]:
        try:
            return self.answers[passage], Usage()
        except KeyError:
            raise TeacherError(f"no recorded answer for passage {passage[:60]!r}...") from None


def results_summary(results: Iterable[TeacherResult]) -> dict[str, int]:
    """Counts of a finished run: passages, answered, from cache, failed, tokens in and out."""
    out = {"passages": 0, "answered": 0, "cached": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for r in results:
        out["passages"] += 1
        out["answered"] += r.ok
        out["cached"] += r.cached
        out["failed"] += not r.ok
        out["prompt_tokens"] += r.usage.prompt_tokens
        out["completion_tokens"] += r.usage.completion_tokens
    return out
