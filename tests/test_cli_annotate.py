"""`nerlib uniner annotate --input FILE` against a chat-completions server on loopback (issue 13).

Plain-text and JSONL input, the key from the environment and nowhere else, budgets, failures that exit non-zero,
and Ctrl-C (a SIGINT to a subprocess) that stops spending at once and keeps what arrived.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "uniner"))
from fake_teacher_server import FakeServer, answer_for  # noqa: E402

from nerlib import cli  # noqa: E402
from nerlib.uniner.teacher import AnswerCache  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-cli-secret-5a4b3c2d1e"


def run(capsys, url, input_file, out_dir, *extra):
    argv = ["uniner", "annotate", "--teacher", "test-model", "--base-url", url, "--input", str(input_file),
            "--out-dir", str(out_dir), "--api-key-env", "ANNOTATE_TEST_KEY", "--timeout", "2", *extra]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("ANNOTATE_TEST_KEY", KEY)


def assert_key_nowhere(out, err, out_dir):
    assert KEY not in out and KEY not in err
    for path in Path(out_dir).rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_plain_text_input_end_to_end(tmp_path, capsys):
    src = tmp_path / "passages.txt"
    src.write_text("passage number 1\n\npassage number 2\npassage number 3\npassage number 1\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    with FakeServer() as srv:
        code, out, err = run(capsys, srv.url, src, out_dir, "--price-in", "1", "--price-out", "2", "--workers", "2")
    assert code == 0, err
    assert sorted(srv.requests) == ["passage number 1", "passage number 2", "passage number 3"]  # asked once each
    assert srv.auth == [f"Bearer {KEY}"] * 3
    summary = json.loads((out_dir / "summary.json").read_text())
    assert json.loads(out) == summary
    assert {k: summary[k] for k in ("passages", "asked", "cached", "failed", "parse_failures", "kept_entities")} == {
        "passages": 4, "asked": 3, "cached": 1, "failed": 0, "parse_failures": 0, "kept_entities": 4}
    assert summary["cost"] == pytest.approx(3 * (10 * 1 + 4 * 2) / 1000)
    rows = [json.loads(line) for line in (out_dir / "annotations.jsonl").read_text().splitlines()]
    assert [(r["id"], r["passage"], r["entities"]) for r in rows] == [
        ("passages.txt:1", "passage number 1", [["1", "number"]]),
        ("passages.txt:3", "passage number 2", [["2", "number"]]),
        ("passages.txt:4", "passage number 3", [["3", "number"]]),
        ("passages.txt:5", "passage number 1", [["1", "number"]]),
    ]
    assert len(AnswerCache(out_dir / "answers.jsonl")) == 3
    # the progress bar shows requests, cache hits, failures and the running cost
    assert "asked=3" in err and "cached=1" in err and "failed=0" in err and "cost$=0.0540" in err
    assert_key_nowhere(out, err, out_dir)


def test_jsonl_input_end_to_end_and_resume(tmp_path, capsys):
    src = tmp_path / "passages.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "text": "passage number 7"}, {"text": "passage number 8", "source": "x"}]) + "\n")
    out_dir = tmp_path / "out"
    with FakeServer() as srv:
        code, out, err = run(capsys, srv.url, src, out_dir)
        assert code == 0, err
        code, out, err = run(capsys, srv.url, src, out_dir)  # a second run asks nothing
    assert code == 0 and len(srv.requests) == 2
    summary = json.loads(out)
    assert (summary["asked"], summary["cached"], summary["kept_entities"], summary["cost"]) == (0, 2, 2, None)
    rows = [json.loads(line) for line in (out_dir / "annotations.jsonl").read_text().splitlines()]
    assert [(r["id"], r["entities"]) for r in rows] == [("a", [["7", "number"]]), ("passages.jsonl:2", [["8", "number"]])]
    assert_key_nowhere(out, err, out_dir)


@pytest.mark.parametrize("line, message", [
    ('{"txt": "passage"}', 'bad.jsonl:2: text: missing'),
    ('{"text": ["passage"]}', 'bad.jsonl:2: text: expected a non-empty string'),
    ('["passage"]', 'bad.jsonl:2: expected a JSON object'),
    ('{"text": "passage', 'bad.jsonl:2: invalid JSON'),
])
def test_a_bad_jsonl_line_names_file_and_line(tmp_path, capsys, line, message):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "passage number 1"}\n' + line + "\n")
    with FakeServer() as srv:
        code, out, err = run(capsys, srv.url, src, tmp_path / "out")
    assert code == 2 and message in err and "Traceback" not in err
    assert srv.requests == []  # nothing is asked before the whole file is read


def test_plain_text_with_a_byte_order_mark_and_a_non_utf8_line(tmp_path, capsys):
    src = tmp_path / "bom.txt"
    src.write_bytes(b"\xef\xbb\xbfpassage number 1\r\n")
    with FakeServer() as srv:
        code, out, err = run(capsys, srv.url, src, tmp_path / "out")
        assert code == 0 and srv.requests == ["passage number 1"]  # no U+FEFF, no carriage return
        bad = tmp_path / "latin1.txt"
        bad.write_bytes(b"passage number 1\ncaf\xe9 number 2\n")
        code, out, err = run(capsys, srv.url, bad, tmp_path / "out2")
    assert code == 2 and "latin1.txt:2" in err and "UTF-8" in err and len(srv.requests) == 1


def test_max_requests_stops_and_a_rerun_continues(tmp_path, capsys):
    src = tmp_path / "passages.txt"
    src.write_text("".join(f"passage number {i}\n" for i in range(5)))
    out_dir = tmp_path / "out"
    with FakeServer() as srv:
        code, out, err = run(capsys, srv.url, src, out_dir, "--max-requests", "2")
        assert code == 0, err
        first = json.loads(out)
        assert len(srv.requests) == 2
        assert (first["asked"], first["not_asked"], first["failed"]) == (2, 3, 0)
        assert "max_requests=2" in first["stopped"] and "stopped early" in err
        code, out, err = run(capsys, srv.url, src, out_dir)
    assert code == 0 and len(srv.requests) == 5
    second = json.loads(out)
    assert (second["asked"], second["cached"], second["kept_entities"]) == (3, 2, 5)


def test_max_cost_stops_new_requests(tmp_path, capsys):
    src = tmp_path / "passages.txt"
    src.write_text("".join(f"passage number {i}\n" for i in range(6)))
    with FakeServer() as srv:  # $0.018 a request at these prices
        code, out, err = run(capsys, srv.url, src, tmp_path / "out", "--workers", "1", "--max-cost", "0.03",
                             "--price-in", "1", "--price-out", "2")
    assert code == 0, err
    summary = json.loads(out)
    assert len(srv.requests) == 2 and summary["cost"] == pytest.approx(0.036) and summary["not_asked"] == 4
    assert "cost budget" in summary["stopped"]


def test_max_cost_needs_prices(tmp_path, capsys):
    src = tmp_path / "passages.txt"
    src.write_text("passage number 1\n")
    code, out, err = run(capsys, "http://127.0.0.1:9/v1", src, tmp_path / "out", "--max-cost", "1")
    assert code == 2 and "--price-in" in err


def test_openai_without_a_key_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    src = tmp_path / "passages.txt"
    src.write_text("passage number 1\n")
    code = cli.main(["uniner", "annotate", "--teacher", "gpt-4o-mini", "--base-url", "https://api.openai.com/v1",
                     "--input", str(src), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "set the environment variable OPENAI_API_KEY" in err and "Traceback" not in err


def test_failed_requests_exit_non_zero(tmp_path, capsys):
    src = tmp_path / "passages.txt"
    src.write_text("passage number 1\npassage number 2\n")
    out_dir = tmp_path / "out"
    with FakeServer(["401"]) as srv:
        code, out, err = run(capsys, srv.url, src, out_dir)
    assert code == 1 and "1 of 2 passages got no answer" in err
    assert json.loads((out_dir / "summary.json").read_text())["failed"] == 1
    assert_key_nowhere(out, err, out_dir)


def test_a_named_key_variable_that_is_not_set_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ANNOTATE_TEST_KEY")
    src = tmp_path / "passages.txt"
    src.write_text("passage number 1\n")
    code, out, err = run(capsys, "http://127.0.0.1:9/v1", src, tmp_path / "out")
    assert code == 2 and "ANNOTATE_TEST_KEY" in err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_stops_spending_at_once_and_keeps_what_arrived(tmp_path):
    src = tmp_path / "passages.txt"
    src.write_text("".join(f"passage number {i}\n" for i in range(40)))
    out_dir = tmp_path / "out"
    # a named profile: choosing one by default looks for a GPU, which imports torch (seconds)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANNOTATE_TEST_KEY": KEY, "NERLIB_PROFILE": "smoke"}
    workers = 2
    with FakeServer(default="sleep:0.2") as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nerlib", "uniner", "annotate", "--teacher", "test-model", "--base-url", srv.url,
             "--input", str(src), "--out-dir", str(out_dir), "--api-key-env", "ANNOTATE_TEST_KEY",
             "--workers", str(workers)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while len(srv.requests) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert len(srv.requests) >= 5, proc.communicate(timeout=10)[1].decode()[-2000:]
        sent_at_signal = len(srv.requests)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        time.sleep(0.3)  # let the server record the answers it wrote
        after = len(srv.requests) - sent_at_signal
        answered = list(srv.answered)
    err = err.decode()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "run the same command again to resume" in err
    assert after <= 2 * workers  # at most the submission window, not the 35 or so passages still to go
    cache = AnswerCache(out_dir / "answers.jsonl")
    assert sorted(e["passage"] for e in cache._entries.values()) == sorted(answered)  # every answer that arrived
    assert KEY not in out.decode() and KEY not in err
    assert all(e["content"] == answer_for(e["passage"]) for e in cache._entries.values())


def test_without_input_the_profile_teacher_runs_with_a_request_budget(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    out_dir = tmp_path / "out"
    argv = ["uniner", "annotate", "--profile", "smoke", "--out-dir", str(out_dir)]
    assert cli.main(argv + ["--max-requests", "3"]) == 0
    out, err = capsys.readouterr()
    first = json.loads(out)
    assert "recorded" in first["teacher"] and (first["passages"], first["asked"], first["not_asked"]) == (16, 3, 13)
    assert "max_requests=3" in err
    assert cli.main(argv) == 0  # the rest, with the three answers from the cache
    second = json.loads(capsys.readouterr().out)
    assert (second["asked"], second["cached"], second["failed"], second["answered"]) == (13, 3, 0, 16)
    assert json.loads((out_dir / "summary.json").read_text()) == second
    assert len((out_dir / "annotations.jsonl").read_text().splitlines()) == 16 - second["parse_failures"]


def test_teacher_options_without_input_are_refused(tmp_path, capsys):
    code = cli.main(["uniner", "annotate", "--profile", "smoke", "--out-dir", str(tmp_path), "--teacher", "gpt-4o"])
    assert code == 2 and "--input" in capsys.readouterr().err
