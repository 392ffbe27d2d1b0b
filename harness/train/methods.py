"""Training methods, registered by name with `@method(...)`.

A method is a small factory: it receives the validated `TrainConfig` and returns the PEFT config
to train (or `None` for full fine-tuning). Its registration records the trainer family (`sft`
through trl's SFTTrainer, `dpo` through trl's DPOTrainer), the default learning rate and whether
the base loads in 4-bit. peft is imported inside the factories, so validating a config stays
instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.catalog import Catalog

# The validated training config (`harness.train.config.TrainConfig`), which itself reads METHODS:
# named by its role here so that this module does not import the config module back.
TrainConfig = Any


@dataclass(frozen=True)
class Method:
    """A training method: how to build its PEFT config and how to train it."""

    name: str
    family: str  # "sft" | "dpo"
    learning_rate: float  # default when the config gives none
    build: Callable[[TrainConfig], object]
    help: str
    quantize_4bit: bool = False
    prompt_learning: bool = False  # virtual tokens instead of modified layers


METHODS: Catalog[Method] = Catalog("training method")


def method(name: str, *, learning_rate: float, help: str, family: str = "sft", quantize_4bit: bool = False,
           prompt_learning: bool = False):
    """Register a PEFT-config factory under `name`."""
    return METHODS.decorator(name, lambda fn: Method(name, family, learning_rate, fn, help, quantize_4bit, prompt_learning))


def _targets(cfg: TrainConfig):
    t = cfg.lora.target_modules
    return t if isinstance(t, str) else list(t)


def _lora(cfg: TrainConfig):
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=_targets(cfg),
    )


def with_layers(peft_config, cfg: TrainConfig, model):
    """Restrict a LoRA config to `lora.layers`: the one place layers are applied. peft takes layers
    only with a list of module names, so 'all-linear' becomes the names of the base's linear
    layers (its output head excluded)."""
    import dataclasses

    import torch

    if not cfg.lora.layers or not hasattr(peft_config, "r"):
        return peft_config
    names = _targets(cfg)
    if isinstance(names, str):  # 'all-linear' (the config refuses any other string with layers)
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if isinstance(m, torch.nn.Linear) and ".layers." in f".{n}" and n.rsplit(".", 1)[-1] != "lm_head"})
    return dataclasses.replace(peft_config, target_modules=names, layers_to_transform=list(cfg.lora.layers))


@method("full", learning_rate=2e-5, help="every weight of the base model is trained; the output is a full model folder")
def full(cfg: TrainConfig):
    return None


@method("lora", learning_rate=2e-4, help="low-rank adapters (r, alpha, dropout) on lora.target_modules")
def lora(cfg: TrainConfig):
    return _lora(cfg)


@method("qlora", learning_rate=2e-4, quantize_4bit=True,
        help="LoRA on a base loaded in 4-bit NF4 with bitsandbytes (double quantisation)")
def qlora(cfg: TrainConfig):
    return _lora(cfg)


@method("prompt_tuning", learning_rate=3e-2, prompt_learning=True,
        help="num_virtual_tokens trainable embeddings prepended to every input")
def prompt_tuning(cfg: TrainConfig):
    from peft import PromptTuningConfig, TaskType

    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.num_virtual_tokens)


@method("prefix_tuning", learning_rate=1e-2, prompt_learning=True,
        help="num_virtual_tokens trainable key/value prefixes in every attention layer")
def prefix_tuning(cfg: TrainConfig):
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.num_virtual_tokens)


@method("ia3", learning_rate=3e-3,
        help="learned rescaling vectors on peft's default modules for the architecture (k, v, down_proj for Llama)")
def ia3(cfg: TrainConfig):
    from peft import IA3Config, TaskType

    return IA3Config(task_type=TaskType.CAUSAL_LM)


@method("lokr", learning_rate=5e-4, help="Kronecker-product low-rank adapters (rank lora.r, alpha lora.alpha)")
def lokr(cfg: TrainConfig):
    from peft import LoKrConfig, TaskType

    return LoKrConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.lora.r,
        alpha=cfg.lora.alpha,
        module_dropout=cfg.lora.dropout,
        target_modules=_targets(cfg),
    )


@method("dpo", family="dpo", learning_rate=5e-5,
        help="direct preference optimisation of a LoRA adapter; the reference is the base with the adapter disabled")
def dpo(cfg: TrainConfig):
    return _lora(cfg)
