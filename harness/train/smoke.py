"""The adapter-effect smoke test: a trained artifact must change the model, through the evals' path.

The base loads through `HFBackend` (as the evals load it), the adapter attaches to it, and on a
few fixed prompts the last-position logits and a short greedy generation are compared with the
adapter enabled and disabled. For layer adapters (LoRA, QLoRA, LoKr, IA3, ...) every name in
`target_modules` must have matched at least one layer. A failure raises `AdapterNoEffect` with
the reason; a pass returns the numbers. For `full` fine-tuning the model folder is compared with
the base model itself.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.errors import HarnessError

SMOKE_PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write one sentence about the sea."}],
    [{"role": "user", "content": "Reply with a JSON object with one key, answer."}],
    [{"role": "user", "content": "Is 17 a prime number?"}],
]
NO_EFFECT_ATOL = 1e-6  # a zero LoRA B or unit IA3 vector gives exactly 0.0
GEN_TOKENS = 8


class AdapterNoEffect(HarnessError):
    """A trained adapter that fails the smoke test: it changes nothing, matched no layer, or is not finite."""


def _injected_modules(model, adapter: str) -> list[str]:
    """Names of the layers peft injected `adapter` into."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    names = []
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            if any(adapter in getattr(module, attr, {}) for attr in module.adapter_layer_names):
                names.append(name)
    return names


def _check_targets(model, adapter: str, where: str) -> tuple[int, list[str]]:
    """(modules injected, target names) or AdapterNoEffect when a target name matched nothing."""
    cfg = model.peft_config[adapter]
    injected = _injected_modules(model, adapter)
    targets = cfg.target_modules
    if not injected:
        raise AdapterNoEffect(f"{where}: the adapter was injected into no layer (target_modules {targets!r}): "
                              "fix lora.target_modules to name layers of the base model (e.g. q_proj, v_proj)")
    names = sorted(targets) if isinstance(targets, (list, set, tuple)) else []
    unmatched = [t for t in names if not any(n == t or n.endswith("." + t) for n in injected)]
    if unmatched:
        raise AdapterNoEffect(f"{where}: target module(s) {', '.join(unmatched)} matched no layer of the base model: "
                              "fix or remove them in lora.target_modules")
    return len(injected), names


def _check_finite(model, adapter: str, where: str) -> None:
    import torch

    for name, p in model.named_parameters():
        if f".{adapter}." in name or name.endswith(f".{adapter}"):
            if not torch.isfinite(p).all():
                raise AdapterNoEffect(f"{where}: adapter weight {name} holds NaN or inf: training diverged; "
                                      "lower learning_rate")


def _last_logits(model, tokenizer, prompts, render) -> list:
    import torch

    out = []
    with torch.inference_mode():
        for messages in prompts:
            ids = tokenizer(render(messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
            out.append(model(input_ids=ids, logits_to_keep=1).logits[0, -1].float())
    return out


def _compare(tuned_logits, base_logits, tuned_text, base_text, where: str, what: str) -> dict:
    import torch

    diffs = [float((a - b).abs().max()) for a, b in zip(tuned_logits, base_logits)]
    if not all(math.isfinite(d) for d in diffs) or not all(torch.isfinite(t).all() for t in tuned_logits):
        raise AdapterNoEffect(f"{where}: the {what} produces NaN or inf logits: training diverged; lower learning_rate")
    changed = sum(a != b for a, b in zip(tuned_text, base_text))
    max_diff = max(diffs)
    if max_diff <= NO_EFFECT_ATOL and changed == 0:
        raise AdapterNoEffect(
            f"{where}: the {what} changes nothing: max |logit difference| {max_diff:.2g} on {len(diffs)} prompts and "
            "identical greedy outputs. Train longer or with a higher learning_rate, and check that the adapter's "
            "weights are not all zero"
        )
    return {"max_logit_diff": max_diff, "changed_generations": changed, "n_prompts": len(diffs)}


def smoke_test(base, adapter_dir: str | Path, prompts: list[list[dict]] | None = None) -> dict:
    """Load the base (a spec, or an `HFBackend`), attach the adapter, and check it changes the model.

    Returns max_logit_diff, changed_generations, n_prompts, n_modules, peft_type and targets;
    raises AdapterNoEffect with the reason otherwise.
    """
    from harness.models import GenerationConfig, HFBackend

    adapter_dir = Path(adapter_dir)
    where = str(adapter_dir)
    prompts = list(prompts or []) + SMOKE_PROMPTS
    gen = GenerationConfig(max_new_tokens=GEN_TOKENS)
    backend = base if isinstance(base, HFBackend) else HFBackend.from_spec(str(base))
    if not (adapter_dir / "adapter_config.json").is_file() and (adapter_dir / "config.json").is_file():
        return _smoke_full_model(backend, adapter_dir, prompts, gen)

    from peft.utils import NoMatchingPeftModuleError

    try:
        name = backend.load_adapter(adapter_dir)
    except NoMatchingPeftModuleError as e:
        raise AdapterNoEffect(f"{where}: the adapter does not attach to the base model: {str(e).splitlines()[0]}") from None
    model = backend.model
    peft_cfg = model.peft_config[name]
    peft_type = str(getattr(peft_cfg.peft_type, "value", peft_cfg.peft_type))
    try:
        if peft_cfg.is_prompt_learning:
            n_modules, targets = 1, []
        else:
            n_modules, targets = _check_targets(model, name, where)
        _check_finite(model, name, where)
        backend.set_adapter(name)
        tuned_logits = _last_logits(model, backend.tokenizer, prompts, backend.render)
        tuned_text = [c.text for c in backend.generate(prompts, gen)]
        backend.set_adapter(None)
        base_text = [c.text for c in backend.generate(prompts, gen)]
        with model.disable_adapter():
            base_logits = _last_logits(model, backend.tokenizer, prompts, backend.render)
        report = _compare(tuned_logits, base_logits, tuned_text, base_text, where, f"{peft_type} adapter")
    finally:
        backend.set_adapter(None)
    return {**report, "n_modules": n_modules, "peft_type": peft_type, "targets": targets}


def _smoke_full_model(base_backend, model_dir: Path, prompts, gen) -> dict:
    """`full` fine-tuning: the trained model folder against the base model."""
    import torch

    from harness.models import HFBackend

    where = str(model_dir)
    if base_backend.adapters:  # compare with the plain weights, not a base wrapped by peft
        base_backend = HFBackend.from_spec(str(base_backend.path))
    tuned = HFBackend.from_spec(str(model_dir))
    base_params = dict(base_backend.base_model.named_parameters())
    changed = [n for n, p in tuned.model.named_parameters() if n in base_params and not torch.equal(p, base_params[n])]
    if any(not torch.isfinite(p).all() for _, p in tuned.model.named_parameters()):
        raise AdapterNoEffect(f"{where}: the fine-tuned weights hold NaN or inf: training diverged; lower learning_rate")
    report = _compare(
        _last_logits(tuned.model, tuned.tokenizer, prompts, tuned.render),
        _last_logits(base_backend.base_model, base_backend.tokenizer, prompts, base_backend.render),
        [c.text for c in tuned.generate(prompts, gen)],
        [c.text for c in base_backend.generate(prompts, gen)],
        where, "fine-tuned model",
    )
    return {**report, "n_modules": len(changed), "peft_type": "FULL", "targets": []}
