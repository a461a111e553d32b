"""The teacher client under faults and budgets (issue 13), against real HTTP servers on loopback.

Redirects never carry the key elsewhere; truncated bodies and resets are retried and counted; a trickling reply is
cut at the deadline; ``Retry-After`` is capped and logged as capped; a repeated passage is asked once; the request
and cost budgets stop new requests and keep what arrived.
"""

import logging
import shutil
import subprocess
import time

import pytest
from fake_teacher_server import FakeServer, answer_for

from nerlib.uniner.openai_teacher import OpenAITeacher
from nerlib.uniner.teacher import AnswerCache, ReplayTeacher

KEY = "sk-fault-test-9f8e7d"


def teacher(url, **kw):
    # A generous deadline by default (a loaded machine must not cause retries the tests would count); the deadline
    # tests pass their own.
    defaults = dict(max_workers=1, timeout=5.0, max_retries=2, backoff=0.01, max_backoff=0.05)
    return OpenAITeacher("test-model", base_url=url, **{**defaults, **kw})


def test_redirect_to_another_origin_is_refused_and_the_key_stays_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAULT_KEY", KEY)
    cache = tmp_path / "answers.jsonl"
    with FakeServer() as other, FakeServer(["redirect"]) as srv:
        srv.redirect_to = other.url + "/chat/completions"
        t = teacher(srv.url, cache=cache, api_key_env="FAULT_KEY")
        (result,) = t.annotate(["passage number 1"], progress=False)
    assert other.requests == [] and other.auth == []  # nothing, and no key, reached the other server
    assert srv.requests == ["passage number 1"] and srv.auth == [f"Bearer {KEY}"]  # not retried
    assert not result.ok and "redirect" in result.error and other.url in result.error
    assert KEY not in result.error
    assert not cache.exists() or AnswerCache(cache).get(result.key) is None  # nothing cached
    assert t.stats.failed == 1 and t.stats.asked == 1


@pytest.mark.parametrize("fault, error", [
    ("truncated", "IncompleteRead"), ("reset", "ConnectionResetError"), ("close", "RemoteDisconnected"),
])
def test_truncated_body_reset_or_hang_up_is_retried_then_succeeds(fault, error, caplog):
    with FakeServer([fault]) as srv, caplog.at_level(logging.INFO, logger="nerlib.uniner.openai_teacher"):
        t = teacher(srv.url)
        (result,) = t.annotate(["passage number 3"], progress=False)
    assert f"request failed: {error}" in caplog.text
    assert result.ok and result.content == answer_for("passage number 3")
    assert len(srv.requests) == 2
    assert t.stats.failed == 0


def test_truncated_every_time_is_a_counted_failure_and_the_run_goes_on():
    with FakeServer(["truncated"] * 3) as srv:  # three attempts for the first passage, then answers
        t = teacher(srv.url, max_retries=2)
        results = list(t.annotate(["passage number 1", "passage number 2"], progress=False))
    assert not results[0].ok and "IncompleteRead" in results[0].error and "gave up after 3" in results[0].error
    assert results[1].ok
    assert t.stats.failed == 1 and t.stats.asked == 2
    assert len(srv.requests) == 4


def test_a_trickling_reply_is_cut_at_the_deadline():
    with FakeServer(["trickle"]) as srv:  # about 3 s to send the whole body, one byte every 20 ms
        start = time.monotonic()
        (result,) = teacher(srv.url, timeout=0.5).annotate(["passage number 5"], progress=False)
        elapsed = time.monotonic() - start
    assert result.ok and len(srv.requests) == 2  # cut, then retried and answered
    assert elapsed < 2.5  # far below the trickle's 4 s


def test_a_trickle_every_time_fails_within_the_deadlines():
    with FakeServer(default="trickle") as srv:
        start = time.monotonic()
        (result,) = teacher(srv.url, timeout=0.2, max_retries=1).annotate(["passage number 5"], progress=False)
        elapsed = time.monotonic() - start
    assert not result.ok and "deadline" in result.error
    assert elapsed < 2.5  # two attempts of 0.2 s and one backoff, not two whole trickles (8 s)


def test_retry_after_is_capped_and_logged_as_capped(caplog):
    with FakeServer(["429:3600"]) as srv, caplog.at_level(logging.INFO, logger="nerlib.uniner.openai_teacher"):
        start = time.monotonic()
        (result,) = teacher(srv.url, max_backoff=0.05).annotate(["passage number 1"], progress=False)
        elapsed = time.monotonic() - start
    assert result.ok and elapsed < 1.0
    (line,) = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert "in 0.05 s" in line and "Retry-After 3600 s, capped at max_backoff 0.05 s" in line


@pytest.mark.parametrize("workers", [1, 3])
def test_the_same_passage_twice_is_asked_once_and_both_get_the_answer(workers):
    passages = ["passage number 1", "passage number 2", "passage number 1", "passage number 1"]
    with FakeServer() as srv:
        t = teacher(srv.url, max_workers=workers)
        results = list(t.annotate(passages, progress=False))
    assert all(r.ok for r in results)
    assert [r.content for r in results] == [answer_for(p) for p in passages]
    assert sorted(srv.requests) == ["passage number 1", "passage number 2"]
    assert [r.cached for r in results] == [False, False, True, True]
    assert t.stats.asked == 2 and t.stats.cached == 2 and t.stats.failed == 0


def test_repeated_passage_without_cache_for_a_local_client():
    t = ReplayTeacher({"p1": '[("x", "y")]'})
    results = list(t.annotate(["p1", "p1"], progress=False))
    assert [r.ok for r in results] == [True, True] and results[1].content == '[("x", "y")]'


@pytest.mark.parametrize("workers", [1, 3])
def test_max_requests_stops_new_requests_and_keeps_the_cache(tmp_path, workers, caplog):
    cache = tmp_path / "answers.jsonl"
    passages = [f"passage number {i}" for i in range(8)]
    with FakeServer() as srv:
        list(teacher(srv.url, cache=cache).annotate(passages[:1], progress=False))  # one answer already cached
        t = teacher(srv.url, cache=cache, max_workers=workers)
        with caplog.at_level(logging.WARNING, logger="nerlib.uniner.teacher"):
            results = list(t.annotate(passages, progress=False, max_requests=3))
    assert len(srv.requests) == 4  # the earlier one plus the three allowed
    assert [r.ok for r in results] == [True] * 4 + [False] * 4
    assert all(r.error.startswith("not asked: the request budget is reached (max_requests=3)") for r in results[4:])
    assert (t.stats.asked, t.stats.cached, t.stats.failed, t.stats.not_asked) == (3, 1, 0, 4)
    assert "max_requests=3" in caplog.text and str(cache) in caplog.text
    assert len(AnswerCache(cache)) == 4


def test_max_cost_stops_new_requests():
    # every answer reports 10 prompt + 4 completion tokens: $0.014 at $1 per 1,000 tokens either way
    passages = [f"passage number {i}" for i in range(6)]
    with FakeServer() as srv:
        t = teacher(srv.url, price_per_1k=(1.0, 1.0))
        results = list(t.annotate(passages, progress=False, max_cost=0.03))
    assert len(srv.requests) == 3  # 0.028 spent after two is under the budget; 0.042 after three is not
    assert [r.ok for r in results] == [True] * 3 + [False] * 3
    assert "cost budget" in results[3].error and t.stats.stopped.startswith("the cost budget")
    assert t.stats.cost == pytest.approx(0.042)


def test_max_cost_counts_requests_in_flight():
    passages = [f"passage number {i}" for i in range(12)]
    with FakeServer(default="sleep:0.05") as srv:
        t = teacher(srv.url, price_per_1k=(1.0, 1.0), max_workers=4)
        results = list(t.annotate(passages, progress=False, max_cost=0.05))
    # requests in flight count at their estimated cost, and when only that estimate stands in the way the client
    # waits for their real cost: it sends a fourth request ($0.042 spent) but no fifth ($0.056 would be spent)
    assert len(srv.requests) == 4 and [r.ok for r in results] == [True] * 4 + [False] * 8
    assert t.stats.cost == pytest.approx(0.056) and t.stats.not_asked == 8


def test_max_cost_needs_a_price():
    with pytest.raises(ValueError, match="price"):
        list(teacher("http://127.0.0.1:9/v1").annotate(["p"], progress=False, max_cost=1.0))


def test_usage_is_estimated_when_the_server_reports_none():
    with FakeServer(["nousage"]) as srv:
        t = teacher(srv.url, price_per_1k=(1.0, 2.0))
        (result,) = t.annotate(["passage number 1"], progress=False)
    assert result.ok and result.usage.prompt_tokens > 50 and result.usage.completion_tokens == 5  # 17 characters
    assert t.stats.cost > 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (made with the openssl command; skipped without it)."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    done = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {done.stderr.decode()[-200:]}")
    return str(cert), str(key)


def test_https_answers_and_the_deadline_cuts_a_trickle(tls_files, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", tls_files[0])  # trust the test certificate (verification stays on)
    with FakeServer(["ok", "trickle"], tls=tls_files) as srv:
        assert srv.url.startswith("https://")
        t = teacher(srv.url, timeout=1.0)
        start = time.monotonic()
        results = list(t.annotate(["passage number 1", "passage number 2"], progress=False))
        elapsed = time.monotonic() - start
    assert [r.content for r in results] == [answer_for("passage number 1"), answer_for("passage number 2")]
    assert len(srv.requests) == 3 and elapsed < 3.5  # the trickle alone would take 4 s


def test_https_with_an_untrusted_certificate_fails_and_is_counted(tls_files):
    with FakeServer(tls=tls_files) as srv:
        t = teacher(srv.url, max_retries=1)
        (result,) = t.annotate(["passage number 1"], progress=False)
    assert not result.ok and "CERTIFICATE_VERIFY_FAILED" in result.error and srv.requests == []
    assert t.stats.failed == 1


def test_requests_go_out_through_a_bounded_window():
    passages = [f"passage number {i}" for i in range(30)]
    with FakeServer(default="sleep:0.05") as srv:
        t = teacher(srv.url, max_workers=2)
        results = t.annotate(passages, progress=False)
        first = next(results)
        assert first.ok and len(srv.requests) <= 4  # at most 2 x max_workers sent before the first answer is used
        results.close()  # the consumer stops (as Ctrl-C would): nothing new is sent
        time.sleep(0.3)
    assert len(srv.requests) <= 4
    assert t.stats.asked <= 4
