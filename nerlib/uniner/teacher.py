"""The teacher: the paper's prompt, three interchangeable clients and an append-only answer cache.

UniversalNER (Zhou et al., 2024, Section 2) asks ChatGPT once per passage for *all* entities and their types.
Every client here implements :meth:`Teacher.annotate`: it yields one :class:`TeacherResult` per passage, in input
order. Clients:

* :class:`OpenAITeacher`: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, ...) over
  HTTP with the standard library: concurrency, a requests-per-minute limit, a deadline per attempt, retries with
  exponential backoff on every transport fault, 429 and 5xx (``Retry-After`` honoured, capped), no redirects (the
  key never leaves its origin).
* :class:`TransformersTeacher`: a local causal LM (chat template, greedy decoding).
* :class:`ReplayTeacher`: answers recorded earlier (e.g. the paper's ChatGPT answers, see ``nerlib.uniner.pile``).

Every client submits requests through a bounded window (Ctrl-C or a budget stops new requests at once), asks each
distinct passage once per run, takes ``max_requests`` / ``max_cost`` budgets and shows requests, cache hits,
failures and the running cost on its progress bar. :func:`annotate_file` is ``nerlib uniner annotate --input``.

With an :class:`AnswerCache` every answer is appended to a JSONL file the moment it arrives (flushed and fsynced),
keyed by model and prompt hash: an interrupted run resumes and never asks the same question twice.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

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
    counted in :attr:`truncated`) and cut off so that new answers append cleanly. A malformed line anywhere else is
    an error naming the file and line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.truncated = 0
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # ``tail`` is b"" when the file ends with a newline
        for i, raw in enumerate(complete, 1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                self._entries[entry["key"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
                raise ValueError(f"{self.path}:{i}: malformed cache line ({err})") from None
        if tail.strip():
            self.truncated = 1
            log.warning(
                "%s:%d: ignoring a truncated last line (%d bytes) left by an interrupted run",
                self.path, len(complete) + 1, len(tail),
            )
            with self.path.open("r+b") as f:
                f.truncate(len(data) - len(tail))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def add(self, key: str, model: str, passage: str, content: str, usage: Usage) -> None:
        """Record one answer durably (append, flush, fsync) before anyone uses it."""
        entry = {"key": key, "model": model, "passage": passage, "content": content, "usage": asdict(usage)}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._entries[key] = entry


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
# (a) OpenAI-compatible HTTP endpoint
# ----------------------------------------------------------------------------------------------------------------


class RateLimiter:
    """At most ``per_minute`` request starts per minute, spaced evenly; thread-safe. ``None`` means no limit."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAITeacher(Teacher):
    """A teacher behind an OpenAI-compatible chat-completions endpoint.

    ``base_url`` is the API root (``https://api.openai.com/v1``, ``http://localhost:8000/v1`` for vLLM,
    ``http://localhost:11434/v1`` for Ollama). The API key is read from the environment variable ``api_key_env``
    at request time and never stored, printed or logged; it is required only for ``api.openai.com``.

    The transport is :mod:`http.client`, so that three things are ours to decide and test:

    * **No redirects.** A 3xx reply is a failed request naming the new address: the key is never sent to another
      origin, and nothing that answers there is cached. (Use the final address as ``base_url``.)
    * **A deadline per attempt.** ``timeout`` seconds bound the whole attempt (connect, send, the reply to its
      last byte), not only each socket read: a reply that trickles in is cut at the deadline and retried.
    * **Retries on every transport fault.** Timeouts, refused or reset connections, truncated bodies
      (``IncompleteRead``), malformed bodies, 408, 409, 429 and 5xx are retried up to ``max_retries`` times with
      exponential backoff ``backoff * 2**attempt``, or the server's ``Retry-After``; both capped at
      ``max_backoff`` seconds (the log shows the wait actually used). What still fails is a failed result.

    Connections go straight to the server (``HTTP(S)_PROXY`` variables are not used). Servers that report no
    ``usage`` get token counts estimated at four characters a token.
    """

    RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        cache: AnswerCache | str | Path | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_workers: int = 4,
        requests_per_minute: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        price_per_1k: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(cache)
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"teacher base URL {base_url!r}: expected http(s)://HOST[:PORT]/PATH")
        if parts.username or parts.password:
            raise ValueError("teacher base URL: put no credentials in the URL; the key comes from the environment")
        self._parts = parts
        self.api_key_env = api_key_env
        if "api.openai.com" in self.url and not os.environ.get(api_key_env):
            raise TeacherError(f"set the environment variable {api_key_env} to use {self.url}")
        if max_workers < 1 or timeout <= 0 or max_retries < 0:
            raise ValueError(f"OpenAITeacher: max_workers ({max_workers}) and timeout ({timeout}) must be positive, "
                             f"max_retries ({max_retries}) not negative")
        self.max_workers = max_workers
        self.limiter = RateLimiter(requests_per_minute)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.price_per_1k = price_per_1k

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAITeacher(model={self.model!r}, url={self.url!r}, key from ${self.api_key_env})"

    def _request(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One POST, finished within ``timeout`` seconds or failed with :class:`TimeoutError`."""
        deadline = time.monotonic() + self.timeout
        parts = self._parts
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=self.timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        expired = threading.Event()
        timer = None
        try:
            conn.connect()  # bounded by the socket timeout
            sock = conn.sock

            def hang_up() -> None:  # at the deadline: wake any read blocked on this connection
                expired.set()
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            timer = threading.Timer(max(0.0, deadline - time.monotonic()), hang_up)
            timer.daemon = True
            timer.start()
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()  # IncompleteRead when the body stops short of its Content-Length
            if expired.is_set():
                raise TimeoutError
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
        except (OSError, http.client.HTTPException):
            if expired.is_set() or time.monotonic() >= deadline:
                raise TimeoutError(f"no complete reply within the {self.timeout:g} s deadline") from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
            conn.close()

    def complete(self, passage: str, messages: list[dict[str, str]]) -> tuple[str, Usage]:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if self.max_tokens:
            payload["max_tokens"] = self.max_tokens
        body = json.dumps(payload).encode("utf-8")
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            if self._stop.is_set():  # interrupted while this thread waited (rate limit, backoff): send nothing
                raise TeacherError(f"not asked: the run was interrupted ({last})")
            wait = None
            try:
                status, headers, raw = self._request(body)
            except (OSError, http.client.HTTPException) as err:  # timeouts, resets, truncated bodies, ...
                last = f"request failed: {type(err).__name__}: {err}"
            else:
                if status == 200:
                    try:
                        data = json.loads(raw)
                        content = data["choices"][0]["message"]["content"]
                        if not isinstance(content, str):
                            raise TypeError("message content is not a string")
                        u = data.get("usage")
                        if isinstance(u, dict) and "prompt_tokens" in u:
                            usage = Usage(int(u["prompt_tokens"]), int(u.get("completion_tokens") or 0))
                        else:
                            usage = estimate_usage(messages, content)
                        return content, usage
                    except (ValueError, KeyError, IndexError, TypeError) as err:
                        last = f"malformed response body ({type(err).__name__}: {err}): {raw[:200]!r}"
                elif 300 <= status < 400:
                    raise TeacherError(
                        f"HTTP {status} from {self.url}: redirect to {headers.get('location', '(no Location)')!r} "
                        "refused (the teacher client follows no redirects, so the API key never leaves its "
                        "origin); use the final address as the base URL"
                    )
                elif status in self.RETRY_STATUS:
                    last = f"HTTP {status}: {raw[:200]!r}"
                    wait = _retry_after(headers.get("retry-after"))
                else:
                    raise TeacherError(f"HTTP {status} from {self.url} (not retried): {raw[:200]!r}")
            if attempt < self.max_retries:
                if wait is not None:
                    delay = min(wait, self.max_backoff)
                    why = f"Retry-After {wait:g} s" + (f", capped at max_backoff {self.max_backoff:g} s"
                                                       if wait > self.max_backoff else "")
                else:
                    delay = min(self.max_backoff, self.backoff * 2**attempt)
                    why = "backoff"
                log.info("teacher retry %d/%d in %.2f s (%s): %s", attempt + 1, self.max_retries, delay, why, last)
                self._stop.wait(delay)
        raise TeacherError(f"gave up after {self.max_retries + 1} attempts: {last}")


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


# ----------------------------------------------------------------------------------------------------------------
# The pipeline step (``nerlib uniner annotate``)
# ----------------------------------------------------------------------------------------------------------------

#: Environment variable naming an OpenAI-compatible endpoint for a non-replay teacher (e.g. a local vLLM server).
TEACHER_URL_ENV = "NERLIB_TEACHER_URL"


def make_teacher(teacher: str, recorded: Any = None, cache: AnswerCache | str | Path | None = None) -> Teacher:
    """The profile's teacher: ``"replay"`` (the ``recorded`` annotations), an API model name (served at
    ``$NERLIB_TEACHER_URL`` or by OpenAI with ``$OPENAI_API_KEY``), or else a local transformers model."""
    if teacher == "replay":
        from nerlib.uniner.pile import replay_teacher

        if recorded is None:
            raise ValueError("the replay teacher needs the recorded annotations")
        return replay_teacher(recorded, cache=AnswerCache(cache) if isinstance(cache, (str, Path)) else cache)
    url = os.environ.get(TEACHER_URL_ENV)
    if url or os.environ.get("OPENAI_API_KEY"):
        return OpenAITeacher(teacher, base_url=url or "https://api.openai.com/v1", cache=cache)
    return TransformersTeacher(teacher, cache=cache)


@dataclass(frozen=True)
class InputPassage:
    """One passage of an input file: its text and an id naming the file and line."""

    text: str
    id: str


def read_passages(path: str | Path) -> list[InputPassage]:
    """The passages of a text file, one per line (blank lines skipped), or of a JSONL file (``.jsonl`` or a first
    line starting with ``{``) whose records have a string ``text`` and optionally an ``id``. Errors name the file,
    the line and the field."""
    from nerlib.data.io import DataFormatError, json_records, text_lines

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    first = next((line for _, line, _ in text_lines(path) if line.strip()), "")
    out: list[InputPassage] = []
    if path.suffix == ".jsonl" or first.lstrip().startswith("{"):
        for lineno, record in json_records(path, blank_lines="skip"):
            if not isinstance(record, dict):
                raise DataFormatError(path, lineno, None, f"expected a JSON object with a \"text\" field, "
                                      f"got {type(record).__name__}")
            text = record.get("text")
            if not isinstance(text, str) or not text.strip():
                problem = "missing" if text is None else f"expected a non-empty string, got {text!r:.60}"
                raise DataFormatError(path, lineno, "text", problem)
            pid = record.get("id", f"{path.name}:{lineno}")
            if not isinstance(pid, (str, int)) or isinstance(pid, bool):
                raise DataFormatError(path, lineno, "id", f"expected a string or an integer, got {pid!r:.60}")
            out.append(InputPassage(text, str(pid)))
    else:
        out = [InputPassage(line.strip(), f"{path.name}:{lineno}")
               for lineno, line, _ in text_lines(path) if line.strip()]
    if not out:
        raise ValueError(f"{path}: no passages (expected one passage per line, or JSONL with a \"text\" field)")
    return out


def _run(teacher: Teacher, passages: Sequence[Any], out: Path, recorded: Any = None, progress: bool = True,
         max_requests: int | None = None, max_cost: float | None = None, extra: dict | None = None) -> dict:
    """Ask ``teacher`` about ``passages``, parse and clean the answers, write ``annotations.jsonl`` and
    ``summary.json`` into ``out`` (the answers are in the teacher's cache) and return the summary."""
    from nerlib.uniner import annotations as ann

    results = list(teacher.annotate(passages, progress=progress, max_requests=max_requests, max_cost=max_cost))
    annotations, report = ann.annotate(results)
    if recorded is not None:
        from nerlib.uniner.pile import attach_recorded

        attach_recorded(annotations, recorded)  # keep the recorded ids and negatives (types asked, answered empty)
    ann.write_annotations(annotations, out / "annotations.jsonl")
    s = teacher.stats
    summary = {
        **(extra or {}),
        "teacher": teacher.model,
        "passages": s.passages,
        "asked": s.asked,
        "answered": sum(r.ok for r in results),
        "cached": s.cached,
        "failed": s.failed,
        "not_asked": s.not_asked,
        "parse_failures": report.parse_failed,
        "kept_entities": report.kept,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "cost": round(s.cost, 6) if teacher.price_per_1k else None,
        "stopped": s.stopped,
    }
    summary.update((k, v) for k, v in report.as_dict().items() if k != "passages")
    summary.update(("annotated_passages" if k == "passages" else k, v) for k, v in ann.summary(annotations).items())
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def annotate(profile: Any = None, out_dir: str | Path | None = None, progress: bool = True,
             max_requests: int | None = None, max_cost: float | None = None) -> dict:
    """Run the profile's teacher over the profile's passages (the recorded Pile-NER-type passages), then parse and
    clean the answers. Writes ``answers.jsonl`` (the resumable cache), ``annotations.jsonl`` and ``summary.json``
    (also as ``report.json``, its earlier name) into ``out_dir`` and returns the counts."""
    from nerlib.config import cache_dir, get_profile
    from nerlib.uniner.pile import load_pile_ner_type

    profile = profile or get_profile()
    u = profile.uniner
    out = Path(out_dir or cache_dir() / "runs" / profile.name / "uniner_annotate")
    out.mkdir(parents=True, exist_ok=True)
    recorded = load_pile_ner_type(u.teacher_data, limit=u.max_passages)
    teacher = make_teacher(u.teacher, recorded, cache=out / "answers.jsonl")
    summary = _run(teacher, [a.passage for a in recorded], out, recorded, progress, max_requests, max_cost)
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    return summary


def annotate_file(
    input: str | Path,
    out_dir: str | Path,
    teacher: str,
    base_url: str,
    api_key_env: str = "OPENAI_API_KEY",
    max_requests: int | None = None,
    max_cost: float | None = None,
    price_per_1k: tuple[float, float] | None = None,
    max_workers: int = 4,
    timeout: float = 120.0,
    progress: bool = True,
) -> dict:
    """Annotate the passages of ``input`` (see :func:`read_passages`) with the model ``teacher`` behind the
    OpenAI-compatible endpoint ``base_url``, the key read from ``$api_key_env``. Writes ``answers.jsonl`` (the
    resumable cache), ``annotations.jsonl`` and ``summary.json`` into ``out_dir`` and returns the summary."""
    passages = read_passages(input)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    client = OpenAITeacher(teacher, base_url=base_url, cache=out / "answers.jsonl", api_key_env=api_key_env,
                           max_workers=max_workers, timeout=timeout, price_per_1k=price_per_1k)
    parts = client._parts  # the address without a query string, which could hold a credential
    where = {"input": str(input), "base_url": f"{parts.scheme}://{parts.netloc}{parts.path}"}
    return _run(client, passages, out, None, progress, max_requests, max_cost, extra=where)
