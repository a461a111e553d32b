"""The teacher behind an OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, ...).

The transport is the official ``openai`` SDK with its own retries off: the retries, backoff, rate limit, budgets
and cache are ours (see :class:`nerlib.uniner.teacher.Teacher`), and so are three guarantees the SDK does not give
by itself, enforced on the ``httpx2`` client we hand it: no redirects, a total deadline per attempt (a watchdog
that hangs up the connection) and no proxies or ``.netrc`` from the environment.
"""

from __future__ import annotations

import email.utils
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx2
import openai

from nerlib.uniner.teacher import AnswerCache, Teacher, TeacherError, Usage, estimate_usage

log = logging.getLogger(__name__)


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


class _Fault(Exception):
    """A transport fault of one attempt (retried), described in words."""


class _Watchdog:
    """The total deadline of one attempt.

    httpx2's timeouts bound each socket operation, so a reply that trickles in never times out. At the deadline
    this timer shuts the attempt's socket down, which wakes any read or write blocked on it. It learns the socket,
    and the step that failed, from httpcore2's ``trace`` request extension.
    """

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self.failed_in = ""  # the first transport step that failed, e.g. "http11.receive_response_body"
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                self._sock = info["return_value"].get_extra_info("socket")
                if self.expired:  # connected after the deadline
                    self._hang_up()
        elif event == "http11.response_closed.started":
            with self._lock:  # httpcore2 closes the socket next: its descriptor may soon belong to another one
                self._sock = None
        elif event.endswith(".failed") and not self.failed_in:
            self.failed_in = event.removesuffix(".failed")

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._hang_up()

    def _hang_up(self) -> None:
        if self._sock is not None:
            try:  # the plain socket call, also on a TLS socket (whose own shutdown would unwrap it under a reader)
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass


def _describe(err: BaseException, failed_in: str) -> str:
    """A transport fault in the words of :mod:`http.client`: the OS or TLS error at its root, else what broke off."""
    seen: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and cause not in seen:
        if isinstance(cause, OSError):  # refused, reset, TLS verification, ...
            return f"{type(cause).__name__}: {cause}"
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__  # httpcore2 re-raises some OS errors with a context only
    if failed_in.endswith("receive_response_body"):
        return f"IncompleteRead: the reply stopped short of its length ({seen[-1]})"
    if failed_in.endswith("receive_response_headers"):
        return f"RemoteDisconnected: the server closed the connection without a reply ({seen[-1]})"
    return f"{type(seen[-1]).__name__}: {seen[-1]}"


class OpenAITeacher(Teacher):
    """A teacher behind an OpenAI-compatible chat-completions endpoint, through the ``openai`` SDK.

    ``base_url`` is the API root (``https://api.openai.com/v1``, ``http://localhost:8000/v1`` for vLLM,
    ``http://localhost:11434/v1`` for Ollama). The API key is read from the environment variable ``api_key_env``
    at request time and never stored, printed or logged; it is required only for ``api.openai.com``.

    The SDK's own retries are off; ours decide:

    * **No redirects.** A 3xx reply is a failed request naming the new address: the key is never sent to another
      origin, and nothing that answers there is cached. (Use the final address as ``base_url``.)
    * **A deadline per attempt.** ``timeout`` seconds bound the whole attempt (connect, send, the reply to its
      last byte), not only each socket read: a reply that trickles in is cut at the deadline and retried.
    * **Retries on every transport fault.** Timeouts, refused or reset connections, truncated bodies
      (``IncompleteRead``), malformed bodies, 408, 409, 429 and 5xx are retried up to ``max_retries`` times with
      exponential backoff ``backoff * 2**attempt``, or the server's ``Retry-After``; both capped at
      ``max_backoff`` seconds (the log shows the wait actually used). What still fails is a failed result.

    Each attempt opens its own connection, straight to the server (``HTTP(S)_PROXY`` variables are not used),
    trusting the system's certificates (and ``SSL_CERT_FILE``). Servers that report no ``usage`` get token counts
    estimated at four characters a token.
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
        self._attempt = threading.local()  # .watchdog: the current attempt's, per worker thread
        http = httpx2.Client(
            follow_redirects=False,
            trust_env=False,  # no proxies, no .netrc credentials
            verify=ssl.create_default_context(),  # the system's trust store, as the standard library's
            timeout=httpx2.Timeout(timeout),  # each step; the watchdog bounds the whole attempt
            limits=httpx2.Limits(max_connections=max_workers, max_keepalive_connections=0),  # a connection each
            event_hooks={"request": [self._watch]},
        )
        # The key goes with each request (extra_headers), so this placeholder is never sent.
        self.client = openai.OpenAI(base_url=base_url.rstrip("/"), api_key="-", max_retries=0,
                                    timeout=httpx2.Timeout(timeout), http_client=http)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAITeacher(model={self.model!r}, url={self.url!r}, key from ${self.api_key_env})"

    def _watch(self, request: httpx2.Request) -> None:
        """httpx2 request hook: let this thread's watchdog follow the request's connection."""
        watchdog = getattr(self._attempt, "watchdog", None)
        if watchdog is not None:
            request.extensions["trace"] = watchdog.trace

    def _post(self, messages: list[dict[str, str]]) -> Any:
        """One attempt, finished within ``timeout`` seconds: the SDK's raw response, or :class:`_Fault` or
        :class:`openai.APIStatusError`."""
        key = os.environ.get(self.api_key_env)
        extra = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        watchdog = self._attempt.watchdog = _Watchdog(self.timeout)
        try:
            with watchdog:
                return self.client.chat.completions.with_raw_response.create(
                    model=self.model, messages=messages, temperature=self.temperature, **extra,
                    extra_headers={"Authorization": f"Bearer {key}" if key else openai.omit},
                )
        except openai.APIStatusError:
            raise
        except Exception as err:  # APIConnectionError, APITimeoutError, or what a hung-up TLS socket raises
            if watchdog.expired or time.monotonic() >= watchdog.deadline:
                raise _Fault(f"TimeoutError: no complete reply within the {self.timeout:g} s deadline") from None
            if isinstance(err, openai.APIConnectionError):
                raise _Fault(_describe(err, watchdog.failed_in)) from None
            raise
        finally:
            self._attempt.watchdog = None

    def complete(self, passage: str, messages: list[dict[str, str]]) -> tuple[str, Usage]:
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            if self._stop.is_set():  # interrupted while this thread waited (rate limit, backoff): send nothing
                raise TeacherError(f"not asked: the run was interrupted ({last})")
            wait = None
            try:
                raw = self._post(messages)
            except _Fault as err:  # timeouts, refused or reset connections, truncated bodies, ...
                last = f"request failed: {err}"
            except openai.APIStatusError as err:
                status, body = err.status_code, err.response.content
                if 300 <= status < 400:
                    raise TeacherError(
                        f"HTTP {status} from {self.url}: redirect to "
                        f"{err.response.headers.get('location', '(no Location)')!r} refused (the teacher client "
                        "follows no redirects, so the API key never leaves its origin); use the final address as "
                        "the base URL"
                    ) from None
                if status not in self.RETRY_STATUS:
                    raise TeacherError(f"HTTP {status} from {self.url} (not retried): {body[:200]!r}") from None
                last = f"HTTP {status}: {body[:200]!r}"
                wait = _retry_after(err.response.headers.get("retry-after"))
            else:
                try:
                    completion = raw.parse()
                    content = completion.choices[0].message.content
                    if not isinstance(content, str):
                        raise TypeError("message content is not a string")
                    u = completion.usage
                    if getattr(u, "prompt_tokens", None) is not None:
                        usage = Usage(int(u.prompt_tokens), int(getattr(u, "completion_tokens", 0) or 0))
                    else:
                        usage = estimate_usage(messages, content)
                    return content, usage
                except (ValueError, KeyError, IndexError, TypeError, AttributeError,
                        openai.APIResponseValidationError) as err:
                    last = (f"malformed response body ({type(err).__name__}: {err}): "
                            f"{raw.http_response.content[:200]!r}")
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
