"""Which device and dtype a model runs in: `auto` picks what this machine runs fast.

Device `auto`: CUDA when present, then Apple's MPS, else the CPU. Dtype `auto`: bfloat16 on a
CUDA GPU that supports it and on CPUs with AMX or AVX512-BF16 (where a bf16 matrix product
runs ~5x faster than fp32: 565 vs 116 GFLOP/s measured on a 2-core Xeon with AMX), float32
everywhere else. Both are part of a model run's identity: results of different dtypes or
devices are never mixed in a cache or compared by the gate.
"""

from __future__ import annotations

from harness.errors import ModelSpecError

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda", "mps")


def cpu_has_fast_bf16() -> bool:
    """AMX tiles or AVX512-BF16 instructions: the CPU multiplies bf16 in hardware."""
    import torch

    probes = [getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(p()) for p in probes if p is not None)


def resolve_device(device: str = "auto") -> str:
    """'cpu', 'cuda', 'cuda:N' or 'mps' for a requested device ('auto' or one of those)."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":", 1)[0]
    if kind not in DEVICES:
        raise ModelSpecError(f"unknown device {device!r}: use auto, {', '.join(DEVICES)} (or cuda:N)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelSpecError(f"device {device!r} requested but torch sees no CUDA GPU: use --device cpu (or auto)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelSpecError(f"device {device!r} requested but MPS is not available: use --device cpu (or auto)")
    return device


def resolve_dtype(dtype: str = "auto", device: str = "cpu") -> str:
    """'float32', 'bfloat16' or 'float16' for a requested dtype ('auto' or one of those)."""
    import torch

    if dtype in (None, "", "auto"):
        kind = device.split(":", 1)[0]
        if kind == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
        if kind == "cpu":
            return "bfloat16" if cpu_has_fast_bf16() else "float32"
        return "float32"
    if dtype not in DTYPES:
        raise ModelSpecError(f"unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    return dtype


def placement(dtype: str = "auto", device: str = "auto") -> tuple[str, str]:
    """(dtype, device) resolved together: the dtype auto choice depends on the device."""
    dev = resolve_device(device)
    return resolve_dtype(dtype, dev), dev


def training_precision(precision: str = "auto", device: str | None = None) -> str:
    """'fp32', 'bf16' or 'fp16' autocast for training on `device` (default: the one trainers
    pick, CUDA when present, else the CPU)."""
    if precision != "auto":
        return precision
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if resolve_dtype("auto", device) == "bfloat16" else "fp32"
