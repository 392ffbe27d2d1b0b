"""Building a trl trainer for a validated config: load the base, the data and the method's PEFT
config, then one plain function per family (`sft_trainer`, `dpo_trainer`).

trl 1.x defaults to bf16 and gradient checkpointing; both are set explicitly here from the config
(`precision`: bf16 autocast where the hardware runs it fast, `gradient_checkpointing`). DPO trains a LoRA adapter and takes the
adapter-disabled base as its reference (`ref_model=None`): no second copy of the model.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ModelSpecError
from harness.train.config import TrainConfig
from harness.train.methods import METHODS

# eval_steps when the config sets none: only the start and last step are evaluated
NEVER = 10**9


@dataclass
class Prepared:
    """A trainer ready to run, with what the run's manifest needs."""

    trainer: object
    tokenizer: object
    base_path: Path
    base_fingerprint: str
    n_train: int
    n_validation: int
    cut: list[int] = field(default_factory=list)  # lengths of training records longer than max_length


def quiet_libraries() -> None:
    """No per-map or per-shard progress bars (the harness draws its own), and no deprecation
    warnings that trl and peft raise inside transformers, which a user cannot act on."""
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    for message in (r"`(is_)?gradient_checkpointing` is deprecated", r"`past_key_values` is deprecated",
                    r"Both `past_key_values` and `cache` are set"):
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


@contextlib.contextmanager
def answer_tokens_only():
    """While inside, trl's fused LM head scores only the positions that have a label, on CPUs too.

    trl 1.x projects hidden states through the LM head in tiles, for the loss, the entropy and
    the accuracy. With Triton (CUDA) it keeps only the labelled positions; everywhere else it
    scores every position of the batch and masks afterwards (to keep tile shapes fixed for
    compilers such as Neuron's). On a CPU nothing is compiled, so that is pure waste: with the
    loss on the answer only, ~80 % of a triage record is prompt, and the 49k-token vocabulary
    projection of those positions took half of each training step. The rows kept are the same
    ones, so loss and gradients are unchanged (tests/train/test_trainers.py); bench/train_step.py
    measures the step time both ways. trl's own function is back in place when the block ends:
    the harness's trainer enters it around each `compute_loss`, nothing else sees it.
    """
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:
        yield
        return
    real = getattr(trl_utils, "_use_triton", None)
    if real is None or getattr(real, "harness_compact", False):  # absent in this trl, or already inside
        yield
        return

    def compact(device) -> bool:
        return device.type == "cpu" or real(device)

    compact.harness_compact = True
    trl_utils._use_triton = compact
    try:
        yield
    finally:
        trl_utils._use_triton = real


# the fewest shared tokens worth a separate prefix pass (below that the extra calls cost more)
MIN_SHARED_PREFIX = 16
# a backbone call with any of these set runs unchanged; the shared-prefix pass sets REBUILT itself
PASSED_THROUGH = ("cache", "past_key_values", "inputs_embeds")
REBUILT = ("input_ids", "attention_mask", "position_ids", "use_cache")


def shared_prefix_length(input_ids, attention_mask) -> int:
    """How many leading tokens every row of the batch has in common (all real, none padding),
    leaving at least one token per row for the suffix pass; 0 for a batch of one row."""
    import torch

    if input_ids.dim() != 2 or input_ids.size(0) < 2 or input_ids.size(1) < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(0)
    if attention_mask is not None:
        same &= attention_mask.bool().all(0)
    differ = torch.nonzero(~same)
    n = int(differ[0, 0]) if len(differ) else input_ids.size(1)
    return min(n, input_ids.size(1) - 1)


@contextlib.contextmanager
def shared_prefix_once(model, min_shared: int = MIN_SHARED_PREFIX):
    """While inside, a training batch whose rows start with the same tokens runs them once.

    Every triage record starts with the same system prompt (84 of its ~200 tokens), and the
    records of a batch are usually all triage records. The backbone then runs that prefix for one
    row, with its keys and values kept, and the rest of every row against those keys and values
    broadcast to the batch; its hidden states are joined back into the full
    `(batch, length, hidden)` tensor the LM head expects. Causal attention makes this the same
    computation (a row's prefix cannot see its suffix), and the backward pass sums the rows'
    gradients through the broadcast, so the loss and the gradients equal the unshared ones up to
    floating-point order (tests/train/test_trainers.py); bench/train_step.py measures the step.
    Prompt-learning adapters (prompt and prefix tuning), batches with inputs_embeds or a cache,
    gradient checkpointing (which drops caches) or too short a shared prefix run as before.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
    peft_config = getattr(model, "active_peft_config", None)
    if (backbone is None or backbone is inner or "forward" in vars(backbone)
            or getattr(peft_config, "is_prompt_learning", False)  # virtual tokens or a prefix cache in every row
            or getattr(inner, "is_activation_checkpointing", getattr(inner, "is_gradient_checkpointing", False))):
        yield
        return
    original = backbone.forward

    def forward(*args, **whole):
        # anything but plain token ids goes through exactly as it came (a cache passed under its
        # deprecated name too: rebuilding the call would drop it)
        if args or any(whole.get(k) is not None for k in PASSED_THROUGH):
            return original(*args, **whole)
        input_ids, attention_mask = whole.get("input_ids"), whole.get("attention_mask")
        n = 0 if input_ids is None else shared_prefix_length(input_ids, attention_mask)
        if n < min_shared:
            return original(**whole)
        kwargs = {k: v for k, v in whole.items() if k not in REBUILT and k not in PASSED_THROUGH}
        position_ids = whole.get("position_ids")
        import torch
        from transformers import DynamicCache
        from transformers.modeling_outputs import BaseModelOutputWithPast

        rows = input_ids.size(0)
        head = {} if position_ids is None else {"position_ids": position_ids[:1, :n]}
        prefix_cache = DynamicCache(config=backbone.config)
        first = original(input_ids=input_ids[:1, :n], cache=prefix_cache, use_cache=True, **head, **kwargs)
        for layer in prefix_cache.layers:
            layer.keys = layer.keys.expand(rows, *layer.keys.shape[1:])
            layer.values = layer.values.expand(rows, *layer.values.shape[1:])
        tail = {"position_ids": (torch.arange(n, input_ids.size(1), device=input_ids.device).unsqueeze(0)
                                 if position_ids is None else position_ids[:, n:])}
        rest = original(input_ids=input_ids[:, n:], attention_mask=attention_mask, cache=prefix_cache, use_cache=True,
                        **tail, **kwargs)
        hidden = torch.cat([first.last_hidden_state.expand(rows, -1, -1), rest.last_hidden_state], dim=1)
        return BaseModelOutputWithPast(last_hidden_state=hidden)

    backbone.forward = forward
    try:
        yield
    finally:
        del backbone.forward


@contextlib.contextmanager
def frozen_weights_in_autocast_dtype(trainer):
    """While inside (around `trainer.train()`), the frozen weights of the model's linear layers are
    stored in the autocast dtype; the original weights are back in place when the block ends.

    Under autocast every linear layer casts its fp32 weight to bf16 before its matmul, and it
    keeps the cast only for weights that train: a frozen base weight is cast again at every call,
    ~135M values per forward pass of the demo's model, twice where the shared-prefix pass calls
    each layer twice. A weight stored in bf16 is used as it is, and it holds exactly the values the
    cast would have made (both round to nearest even), so the loss and the gradients are bitwise
    the same (tests/train/test_trainers.py); bench/train_step.py measures the step both ways.
    An output head tied to frozen input embeddings gets a bf16 copy of its own (the embeddings keep
    theirs, so the lookup is unchanged): trl's fused LM head casts it in 16k- and 32k-row chunks,
    forward and backward (17 ms of a 1.68 s demo step, 6 steps x 3 alternating); the copy costs
    vocabulary x hidden in bf16 for the run (57 MB here, ~1 GB for a 256k vocabulary). Weights
    that train (the adapter's, a full fine-tune's) and quantized ones are left as they are. Only
    the trainer's own loop is sure to run its model under autocast (accelerate wraps the forward
    pass), hence a block around it: outside it, a caller running the model in fp32 finds the
    weights it loaded. Yields how many were stored.
    """
    import torch

    dtype = torch.bfloat16 if trainer.args.bf16 else torch.float16 if trainer.args.fp16 else None
    model = trainer.model
    kept = []
    for module in model.modules() if dtype is not None else ():
        w = getattr(module, "weight", None)  # a tied head's Parameter is the embeddings': replaced on the head only
        if (isinstance(module, torch.nn.Linear) and type(w) is torch.nn.Parameter and not w.requires_grad
                and w.dtype == torch.float32):
            kept.append((module, w))
            module.weight = torch.nn.Parameter(w.detach().to(dtype), requires_grad=False)
    try:
        yield len(kept)
    finally:
        for module, w in kept:
            module.weight = w


def load_model(cfg: TrainConfig):
    """(model, tokenizer, resolved, fingerprint): safetensors only, no remote code; 4-bit NF4 for qlora."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.models import load_tokenizer, model_fingerprint, resolve

    resolved = resolve(cfg.base_model)
    dtype = getattr(torch, cfg.dtype)
    kwargs = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": False}
    if cfg.attention != "auto":
        kwargs["attn_implementation"] = cfg.attention
    if METHODS[cfg.method].quantize_4bit:
        from harness.models.loading import nf4_config

        kwargs["quantization_config"] = nf4_config(dtype)  # the same config the candidate is evaluated on
        if torch.cuda.is_available():
            # a 4-bit model cannot be moved after loading: place it on this process's GPU now
            from accelerate import PartialState

            kwargs["device_map"] = {"": PartialState().local_process_index}
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelSpecError(
            f"model {cfg.base_model!r} at {resolved.path} could not be loaded: {str(e).splitlines()[0]}"
        ) from None
    return model, load_tokenizer(resolved.path), resolved, model_fingerprint(resolved.path)


def training_args(cfg: TrainConfig, cls, sampling: str | None = None, **extra):
    """The trl config (SFTConfig / DPOConfig) every family shares, from the harness config."""
    import torch

    from harness.models.device import training_precision

    precision = training_precision(cfg.precision)

    from harness.train.passthrough import trl_kwargs

    has_eval = cfg.validation_data is not None
    kwargs = dict(
        output_dir=str(cfg.output_dir),
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_steps=cfg.max_steps or -1,
        num_train_epochs=cfg.num_epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        train_sampling_strategy=sampling or ("group_by_length" if cfg.group_by_length else "random"),
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps or NEVER,
        eval_on_start=has_eval,
        use_cpu=not torch.cuda.is_available(),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing,
        report_to=[] if cfg.report_to == ["none"] else list(cfg.report_to),
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    # the method's own settings, then the config's trl: section (validated against `cls`)
    return cls(**{**kwargs, **extra, **trl_kwargs(cfg.trl)})


class LengthBatches:
    """`group_by_length` that also suits short runs: batches of similar length, in random order.

    transformers' length-grouped sampler sorts "megabatches" of ~100 random records longest
    first, so a run of 40 steps trains on the long records first and the short ones last, all
    together: on the demo data, the answered and refused chat requests (no system prompt, so the
    shortest) filled steps 21-28 in a row and the adapter drifted toward prose answers. Here each
    window of 16 batches' worth of shuffled records is sorted into batches (little padding), and
    all batches are then shuffled, so every stretch of a run sees every kind of record. One short
    batch, if any, comes last. The order depends on the seed and the epoch only, so a resumed run
    skips exactly the batches it had trained on.
    """

    WINDOW_BATCHES = 16

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by the trainer at the start of each epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(self.order(self.epoch))

    def order(self, epoch: int) -> list[int]:
        import random

        rng = random.Random(f"{self.seed}:{epoch}")
        perm = list(range(len(self.lengths)))
        rng.shuffle(perm)
        window = self.batch_size * self.WINDOW_BATCHES
        full, short = [], []
        for start in range(0, len(perm), window):
            chunk = sorted(perm[start:start + window], key=lambda i: (self.lengths[i], i))
            for i in range(0, len(chunk), self.batch_size):
                batch = chunk[i:i + self.batch_size]
                (full if len(batch) == self.batch_size else short).append(batch)
        rng.shuffle(full)
        return [i for batch in full + short for i in batch]


def sft_trainer(cfg: TrainConfig, model, tokenizer, train_ds, eval_ds, peft_config, callbacks):
    from trl import SFTConfig, SFTTrainer

    from harness.train.lm_head import HeadWeights, lm_head_on_cpu

    class Trainer(SFTTrainer):
        head_weights = HeadWeights()  # the frozen head's fp32 copy, kept from step to step

        def compute_loss(self, model, *args, **kwargs):
            with answer_tokens_only(), lm_head_on_cpu(self.head_weights), shared_prefix_once(model):
                return super().compute_loss(model, *args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            dataset = self.train_dataset if train_dataset is None else train_dataset
            if not cfg.group_by_length or "input_ids" not in getattr(dataset, "column_names", ()):
                return super()._get_train_sampler(train_dataset)
            return LengthBatches([len(ids) for ids in dataset["input_ids"]], self.args.per_device_train_batch_size, cfg.seed)

    # "random" keeps transformers' own length grouping out of the way; _get_train_sampler groups
    args = training_args(cfg, SFTConfig, sampling="random", packing=False)
    return Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                   peft_config=peft_config, callbacks=list(callbacks))


def dpo_trainer(cfg: TrainConfig, model, tokenizer, train_ds, eval_ds, peft_config, callbacks):
    from trl import DPOConfig, DPOTrainer

    args = training_args(cfg, DPOConfig, beta=cfg.dpo_beta, precompute_ref_log_probs=False)
    return DPOTrainer(model=model, ref_model=None, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))


FAMILIES = {"sft": sft_trainer, "dpo": dpo_trainer}


def prepare(cfg: TrainConfig, callbacks=()) -> Prepared:
    """Load the base and the data, build the method's trainer; nothing trained yet."""
    from transformers import PrinterCallback, set_seed

    from harness.train.callbacks import StableCheckpoints
    from harness.train.dataset import build_dataset

    quiet_libraries()
    method = METHODS[cfg.method]
    set_seed(cfg.seed)  # adapters initialise from the global RNG
    model, tokenizer, resolved, fingerprint = load_model(cfg)
    chat = bool(tokenizer.chat_template)
    train_ds = build_dataset(cfg.train_data, method.family, chat, cfg.data_format)
    eval_ds = build_dataset(cfg.validation_data, method.family, chat, cfg.data_format) if cfg.validation_data else None
    set_seed(cfg.seed)
    from harness.train.methods import with_layers

    from harness.train.passthrough import peft_config as build_peft

    peft_config = with_layers(build_peft(cfg), cfg, model)
    trainer = FAMILIES[method.family](cfg, model, tokenizer, train_ds, eval_ds, peft_config, callbacks)
    trainer.remove_callback(PrinterCallback)  # prints raw log dicts; ProgressLog replaces it
    trainer.add_callback(StableCheckpoints(cfg.base_model, resolved.path))
    from harness.train.dataset import longer_than

    cut = longer_than(train_ds, tokenizer, cfg.max_length)
    return Prepared(trainer, tokenizer, resolved.path, fingerprint, len(train_ds), len(eval_ds) if eval_ds else 0, cut)
