"""nerlib.runs: run keys, the run-folder layout and the durable append-only log."""

import hashlib
import json

import pytest

from nerlib import runs


def test_run_key_is_sha256_of_sorted_json():
    expected = hashlib.sha256(json.dumps({"a": 1, "b": [2, 3]}, sort_keys=True).encode()).hexdigest()
    assert runs.run_key(b=[2, 3], a=1) == expected[:12]
    assert runs.run_key(length=16, a=1, b=[2, 3]) == expected[:16]
    assert runs.run_key(a=1, b=[2, 4]) != runs.run_key(a=1, b=[2, 3])


def test_run_key_rejects_bad_length():
    with pytest.raises(ValueError, match="length"):
        runs.run_key(length=0, a=1)


def test_run_dir_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))
    path = runs.run_dir("small", "uniner_annotate")
    assert path == tmp_path / "runs" / "small" / "uniner_annotate" and path.is_dir()
    assert not runs.run_dir("small", "other", create=False).exists()
    assert runs.run_dir("small", "x", out_dir=tmp_path / "mine") == tmp_path / "mine"


def test_append_log_round_trip_and_cut_tail(tmp_path):
    log = runs.AppendLog(tmp_path / "sub" / "log.jsonl")
    assert list(log) == []
    log.append({"key": "a", "v": 1}, {"key": "b", "v": 2})
    with log.path.open("a") as f:
        f.write('{"key": "c", "v"')  # what a killed writer leaves
    with pytest.warns(UserWarning, match="cut-off last line"):
        assert [r["key"] for r in log] == ["a", "b"]
    runs.AppendLog(log.path).append({"key": "d"})
    assert [r["key"] for r in runs.AppendLog(log.path)] == ["a", "b", "d"]
    assert log.path.read_text().endswith('{"key": "d"}\n')


def test_append_log_names_bad_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match=r"log.jsonl:2"):
        list(runs.AppendLog(path))
    path.write_text('{"key": "a"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"log.jsonl:2: expected a JSON object"):
        list(runs.AppendLog(path))

    def check(record, where):
        if not isinstance(record.get("key"), str):
            raise ValueError(f"{where}: no string field 'key'")

    path.write_text('{"key": "a"}\n{"key": 3}\n')
    with pytest.raises(ValueError, match=r"log.jsonl:2: no string field 'key'"):
        list(runs.AppendLog(path, check))
