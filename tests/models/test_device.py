"""Device and dtype `auto`: CUDA, then MPS, else the CPU; bf16 where the hardware runs it fast."""

from __future__ import annotations

import pytest

from harness.errors import ModelSpecError
from harness.models import device as dev


def test_auto_dtype_on_a_cpu_follows_its_bf16_instructions(monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: True)
    assert dev.resolve_dtype("auto", "cpu") == "bfloat16" and dev.training_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: False)
    assert dev.resolve_dtype("auto", "cpu") == "float32" and dev.training_precision("auto", "cpu") == "fp32"
    assert dev.resolve_dtype("auto", "mps") == "float32"
    assert dev.resolve_dtype("float16", "cpu") == "float16" and dev.training_precision("fp16") == "fp16"


def test_auto_device_is_the_cpu_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert dev.resolve_device("auto") == "cpu"
    with pytest.raises(ModelSpecError, match="no CUDA GPU: use --device cpu"):
        dev.resolve_device("cuda")


def test_unknown_names_are_clear_errors():
    with pytest.raises(ModelSpecError, match="unknown dtype 'fp8'"):
        dev.resolve_dtype("fp8")
    with pytest.raises(ModelSpecError, match="unknown device 'tpu'"):
        dev.resolve_device("tpu")


def test_this_cpu_is_probed_from_torch():
    import torch

    expected = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert dev.cpu_has_fast_bf16() == expected


def test_a_backend_records_where_and_how_it_runs(tiny_model_dir):
    from harness.models import HFBackend

    auto = HFBackend.from_spec(str(tiny_model_dir))
    assert auto.identity["dtype"] == dev.resolve_dtype("auto", "cpu") and auto.identity["device"] == "cpu"
    assert next(auto.model.parameters()).dtype.__repr__().endswith(auto.dtype)
    fp32 = HFBackend.from_spec(str(tiny_model_dir), dtype="float32")
    assert set(fp32.identity) == {"engine", "dtype", "device", "torch", "transformers"} and fp32.identity["dtype"] == "float32"
