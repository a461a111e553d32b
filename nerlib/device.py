"""Where models run and in which precision: one rule for the whole library.

The device is CUDA when a GPU is present, else Apple's MPS, else the CPU; the setting ``NERLIB_DEVICE`` (``cpu``,
``cuda``, ``cuda:1``, ``mps``) overrides it. Precision follows the device: bf16 where the hardware runs it natively
(Ampere and newer GPUs), fp16 with a loss scaler on older GPUs (a T4), fp32 on MPS and on the CPU unless CPU bf16
autocast is asked for (``NERLIB_CPU_BF16=1``) and the CPU supports it. Every model and batch in ``nerlib.msd`` and
``nerlib.uniner`` goes through :func:`get_device`; tensors go through ``.cpu()`` before NumPy.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Literal

DEVICE_ENV = "NERLIB_DEVICE"
CPU_BF16_ENV = "NERLIB_CPU_BF16"

Precision = Literal["fp32", "fp16", "bf16"]


def _torch():
    import torch

    return torch


def _mps_available() -> bool:
    torch = _torch()
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(name: str | None = None):
    """The ``torch.device`` to run on: ``name``, else ``$NERLIB_DEVICE``, else CUDA, MPS or CPU (first present).

    An explicit device that this machine lacks is an error naming the setting, not a silent fall-back to the CPU.
    """
    torch = _torch()
    value = (name or os.environ.get(DEVICE_ENV, "")).strip().lower()
    source = "device" if name else DEVICE_ENV
    if not value or value == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(value)
    except RuntimeError:
        raise ValueError(f"{source}={value!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{source}={value!r} but no CUDA GPU is available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{source}={value!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"{source}={value!r} but Apple's MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{source}={value!r}: nerlib runs on cpu, cuda or mps")
    return device


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 instructions (AVX512-BF16 or AMX); torch emulates bf16 elsewhere, slowly."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:  # not Linux: trust torch's own check where it has one
        check = getattr(_torch().backends.mkldnn, "is_bf16_supported", None)
        return bool(check and check())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_bf16_requested() -> bool:
    """``$NERLIB_CPU_BF16``: ``1``/``true`` asks for bf16 autocast on the CPU, ``0``/``false`` or unset does not."""
    value = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{CPU_BF16_ENV}={value!r}: use 1 or 0")


def precision_for(device=None) -> Precision:
    """The training precision for ``device`` (default: :func:`get_device`).

    bf16 on GPUs that support it natively (compute capability 8.0 and up), fp16 on older GPUs (train it with a loss
    scaler), fp32 on MPS, and on the CPU fp32 unless ``$NERLIB_CPU_BF16`` asks for bf16 and the CPU has it.
    """
    torch = _torch()
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16"
    if device.type == "cpu" and cpu_bf16_requested() and cpu_supports_bf16():
        return "bf16"
    return "fp32"


def autocast(device, precision: Precision) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for fp32); master weights stay fp32."""
    torch = _torch()
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def to_device(batch, device):
    """``batch`` (a tensor, or a dict/list/tuple of them, nested) moved to ``device``; other values unchanged."""
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    if isinstance(batch, dict):
        return type(batch)({k: to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@contextlib.contextmanager
def device_setting(name: str) -> Iterator[None]:
    """Temporarily set ``$NERLIB_DEVICE`` (for tests and scripts)."""
    saved = os.environ.get(DEVICE_ENV)
    os.environ[DEVICE_ENV] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(DEVICE_ENV, None)
        else:
            os.environ[DEVICE_ENV] = saved
