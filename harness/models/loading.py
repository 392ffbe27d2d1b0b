"""Loading a base model and its tokenizer from a spec, safetensors only, no remote code."""

from __future__ import annotations

from harness.errors import ModelSpecError
from harness.models.device import DTYPES, placement
from harness.models.fingerprint import model_fingerprint
from harness.models.specs import ResolvedModel, resolve

__all__ = ["DTYPES", "describe", "load_base", "load_tokenizer"]


def load_tokenizer(path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


QUANTIZATIONS = ("nf4",)


def nf4_config(dtype):
    """The 4-bit NF4 (double-quantised) config QLoRA trains on and its candidates are evaluated on."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        from harness.errors import MissingExtra

        raise MissingExtra("qlora needs bitsandbytes>=0.47: pip install 'finetune-harness[qlora]'") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype)


def load_base(spec: str, dtype: str = "auto", device: str = "auto", quantize: str | None = None):
    """(model, tokenizer, resolved, fingerprint) for a spec; the model in eval mode, placed on
    `device` in `dtype` (`auto`: see `harness.models.device`); `quantize="nf4"` loads the linear
    layers in 4-bit NF4 with `dtype` as their compute dtype (a QLoRA candidate's base)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dtype, device = placement(dtype, device)
    resolved: ResolvedModel = resolve(spec)
    kwargs = {"dtype": getattr(torch, dtype), "use_safetensors": True, "trust_remote_code": False}
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ModelSpecError(f"unknown quantization {quantize!r}: use one of {', '.join(QUANTIZATIONS)}")
        kwargs["quantization_config"] = nf4_config(getattr(torch, dtype))
        if device != "cpu":
            kwargs["device_map"] = {"": device}  # a 4-bit model cannot be moved after loading
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"model {spec!r} at {resolved.path} could not be loaded: {str(e).splitlines()[0]}") from None
    if quantize is None:
        model.to(device)
    model.eval()
    tokenizer = load_tokenizer(resolved.path)
    return model, tokenizer, resolved, model_fingerprint(resolved.path)


def describe(spec: str) -> dict:
    """What `harness models show` prints: architecture, parameters, the dtype and device `auto`
    picks here, fingerprint, path."""
    model, tokenizer, resolved, fp = load_base(spec, dtype="float32", device="cpu")
    cfg = model.config
    return {
        "spec": spec,
        "kind": resolved.kind,
        "architecture": (cfg.architectures or [type(model).__name__])[0],
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "vocab_size": cfg.vocab_size,
        "dtype": placement()[0],  # what `auto` runs it in on this machine
        "device": placement()[1],
        "context_length": getattr(cfg, "max_position_embeddings", None),
        "chat_template": bool(tokenizer.chat_template),
        "fingerprint": fp,
        "path": str(resolved.path),
    }
