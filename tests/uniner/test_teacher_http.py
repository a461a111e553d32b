"""The OpenAI-compatible client against a real HTTP server on loopback: answers, retries, rate limit, resume."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_teacher_server import FakeServer, answer_for

from nerlib.uniner.openai_teacher import OpenAITeacher
from nerlib.uniner.teacher import AnswerCache, TeacherError

REPO = Path(__file__).resolve().parents[2]


def teacher(url, **kw):
    # A generous deadline: a loaded CI machine must not turn ordinary replies into timeouts (and retries that the
    # request counts below would see). Tests of the deadline pass their own.
    defaults = dict(max_workers=1, timeout=5.0, max_retries=3, backoff=0.01, max_backoff=1.0)
    return OpenAITeacher("test-model", base_url=url, **{**defaults, **kw})


PASSAGES = [f"passage number {i}" for i in range(5)]


def test_answers_in_order_with_usage():
    with FakeServer() as srv:
        results = list(teacher(srv.url, max_workers=3).annotate(PASSAGES, progress=False))
    assert [r.content for r in results] == [answer_for(p) for p in PASSAGES]
    assert [r.passage for r in results] == PASSAGES
    assert all(r.ok and not r.cached for r in results)
    assert sum(r.usage.prompt_tokens for r in results) == 50
    assert sorted(srv.requests) == sorted(PASSAGES)


def test_retries_429_500_timeout_and_malformed_bodies():
    script = ["429", "500", "slow", "malformed", "nochoices", "ok"]
    with FakeServer(script) as srv:
        (result,) = teacher(srv.url, max_retries=5, timeout=0.3).annotate(["passage number 7"], progress=False)  # "slow" = 0.6 s
    assert result.ok and result.content == answer_for("passage number 7")
    assert len(srv.requests) == 6  # five failures, then the answer


def test_retry_after_is_honoured():
    with FakeServer(["429:0.4"]) as srv:
        start = time.monotonic()
        (result,) = teacher(srv.url, backoff=0.001).annotate(["passage number 1"], progress=False)
        elapsed = time.monotonic() - start
    assert result.ok
    assert elapsed >= 0.4
    assert len(srv.requests) == 2


def test_gives_up_reports_and_does_not_cache(tmp_path):
    cache = tmp_path / "answers.jsonl"
    with FakeServer(["500", "503", "500"]) as srv:
        (failed,) = teacher(srv.url, cache=cache, max_retries=2).annotate(["passage number 1"], progress=False)
        assert not failed.ok and "gave up after 3 attempts" in failed.error and "HTTP 500" in failed.error
        assert not cache.exists() or cache.read_text() == ""
        (again,) = teacher(srv.url, cache=cache).annotate(["passage number 1"], progress=False)
    assert again.ok and len(srv.requests) == 4


def test_client_error_is_not_retried():
    with FakeServer(["401"]) as srv:
        (result,) = teacher(srv.url).annotate(["passage number 1"], progress=False)
    assert not result.ok and "HTTP 401" in result.error
    assert len(srv.requests) == 1


def test_connection_refused_is_an_error_result():
    with FakeServer() as srv:
        url = srv.url
    (result,) = teacher(url, max_retries=1).annotate(["passage number 1"], progress=False)
    assert not result.ok and "request failed" in result.error


def test_cache_means_no_repeated_prompts(tmp_path):
    cache = tmp_path / "answers.jsonl"
    with FakeServer() as srv:
        list(teacher(srv.url, cache=cache).annotate(PASSAGES[:3], progress=False))
        results = list(teacher(srv.url, cache=cache, max_workers=2).annotate(PASSAGES + PASSAGES[:1], progress=False))
    assert [r.cached for r in results] == [True, True, True, False, False, True]
    assert sorted(srv.requests) == sorted(PASSAGES)  # every prompt asked exactly once over both runs
    assert len(AnswerCache(cache)) == 5


def test_rate_limit_spaces_requests():
    with FakeServer() as srv:
        start = time.monotonic()
        list(teacher(srv.url, max_workers=4, requests_per_minute=600).annotate(PASSAGES[:4], progress=False))
        elapsed = time.monotonic() - start
    assert elapsed >= 0.3  # 4 starts, 0.1 s apart


def test_api_key_sent_as_bearer_and_never_shown(monkeypatch):
    monkeypatch.setenv("MY_TEST_KEY", "sk-secret-123")
    with FakeServer() as srv:
        t = teacher(srv.url, api_key_env="MY_TEST_KEY")
        list(t.annotate(["passage number 1"], progress=False))
    assert srv.auth == ["Bearer sk-secret-123"]
    assert "sk-secret" not in repr(t) and "sk-secret" not in str(vars(t))


def test_without_a_key_no_authorization_is_sent(monkeypatch):
    monkeypatch.delenv("MY_TEST_KEY", raising=False)
    with FakeServer() as srv:
        (result,) = teacher(srv.url, api_key_env="MY_TEST_KEY").annotate(["passage number 1"], progress=False)
    assert result.ok and srv.auth == [None]  # a local server (vLLM, Ollama) needs none; no placeholder goes out


def test_the_sdk_does_not_retry_on_its_own():
    with FakeServer(["500", "429", "ok"]) as srv:
        (result,) = teacher(srv.url, max_retries=0).annotate(["passage number 1"], progress=False)
    assert not result.ok and "HTTP 500" in result.error and len(srv.requests) == 1


def test_openai_endpoint_needs_a_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(TeacherError, match="OPENAI_API_KEY"):
        OpenAITeacher("gpt-3.5-turbo")


RUNNER = """
import sys
from nerlib.uniner.openai_teacher import OpenAITeacher
t = OpenAITeacher("test-model", base_url=sys.argv[1], cache=sys.argv[2], max_workers=1, timeout=30, max_retries=0)
for r in t.annotate([f"passage number {i}" for i in range(6)], progress=False):
    print("answered", r.ok, flush=True)
"""


def test_killed_run_resumes_without_asking_twice(tmp_path):
    cache = tmp_path / "answers.jsonl"
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    with FakeServer(["ok", "ok", "ok", "block"]) as srv:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, str(script), srv.url, str(cache)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while len(srv.requests) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(srv.requests) == 4, proc.stderr.read() if proc.poll() is not None else "timed out"
        proc.kill()  # killed while waiting for the 4th answer
        proc.wait(10)
        proc.stderr.close()
        srv.release.set()
        assert len(AnswerCache(cache)) == 3  # the three answers that arrived were on disk
        # a half-written line, as a kill during a write would leave it, is tolerated and cut off
        with cache.open("a") as f:
            f.write('{"key": "abc", "mod')
        resumed = AnswerCache(cache)
        assert resumed.truncated == 1 and len(resumed) == 3
        results = list(teacher(srv.url, cache=resumed).annotate([f"passage number {i}" for i in range(6)],
                                                                  progress=False))
    assert [r.cached for r in results] == [True] * 3 + [False] * 3
    assert all(r.ok for r in results)
    assert srv.requests[4:] == [f"passage number {i}" for i in (3, 4, 5)]
    assert sorted(srv.answered) == sorted(f"passage number {i}" for i in range(6))  # each answered exactly once
    assert len(AnswerCache(cache)) == 6
