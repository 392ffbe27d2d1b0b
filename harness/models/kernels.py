"""The engine's building blocks: a cache layout per group of rows, attention over exactly one
group's slots, and linear layers multiplied in blocks of a fixed row count, so a row's numbers
never depend on its neighbours (see `harness.models.engine`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

ATTENTION = "harness_grouped"


def register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, grouped_attention)


@dataclass
class Group:
    """Rows that share one cache layout: prefix, suffix region, generated tokens."""

    keys: list[torch.Tensor]  # per layer: (rows, kv_heads, capacity, head_dim)
    values: list[torch.Tensor]
    valid: torch.Tensor  # (rows, capacity) bool: slots that hold a real token
    filled: int  # slots written so far (the same for every row)
    positions: torch.Tensor  # (rows,) position id of each row's next token
    members: list[int]  # request index of each row

    def select(self, keep: torch.Tensor) -> None:
        self.keys = [k.index_select(0, keep) for k in self.keys]
        self.values = [v.index_select(0, keep) for v in self.values]
        self.valid = self.valid.index_select(0, keep)
        self.positions = self.positions.index_select(0, keep)
        self.members = [self.members[i] for i in keep.tolist()]


@dataclass
class Part:
    rows: slice  # rows of the forward's batch that belong to the group
    group: Group
    start: int  # first slot the forward writes
    group_rows: slice  # the same rows in the group's cache
    mask: torch.Tensor  # (rows, 1, q_len, key_length(start + q_len)): 0 where attended, -inf elsewhere


@dataclass
class Step:
    parts: list[Part] = field(default_factory=list)


# torch's CPU flash attention gives each thread slices of two scratch buffers (fp32 and bf16), sized
# from the query and key block lengths; when a size is not a multiple of 64 bytes, a thread's slice
# is aligned differently from the first thread's, and its rows rounded differently (torch 2.13, 2
# threads: one bf16 ulp on about 1 row in 1,000, enough to change a greedy token). Which thread a
# row gets depends on how many rows come before it, so a row's output depended on its neighbours.
# With queries in multiples of QUERY_MULTIPLE and keys in multiples of KEY_MULTIPLE (masked slots)
# every slice is 64-byte aligned, and no row differed between threads any more (README).
QUERY_MULTIPLE = 8
KEY_MULTIPLE = 4


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def key_length(n: int) -> int:
    """The key length attention runs over for `n` real slots: rounded up to KEY_MULTIPLE."""
    return round_up(n, KEY_MULTIPLE)


def grouped_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, harness_step=None, **kwargs):
    """Attention interface entry: store the new keys/values in each group's cache, then attend
    per group over that group's slots, padded to `key_length` with masked ones (one layout, so one
    kernel shape per row)."""
    if harness_step is None:
        raise RuntimeError(f"attention '{ATTENTION}' is only usable inside harness.models.engine")
    layer = module.layer_idx
    outs = []
    for part in harness_step.parts:
        g, n = part.group, query.shape[2]
        end = part.start + n
        keys, values = g.keys[layer][part.group_rows], g.values[layer][part.group_rows]
        keys[:, :, part.start:end] = key[part.rows]
        values[:, :, part.start:end] = value[part.rows]
        length = part.mask.shape[-1]  # key_length(end): the slots past `end` are masked
        outs.append(aligned_attention(query[part.rows], keys[:, :, :length], values[:, :, :length], part.mask, scaling))
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.transpose(1, 2).contiguous(), None


def aligned_attention(q, k, v, mask, scaling) -> torch.Tensor:
    """SDPA of q (rows, heads, n, dim) over k/v (rows, kv_heads, length, dim) with the queries
    padded to a multiple of QUERY_MULTIPLE (see above; `length` must be a multiple of KEY_MULTIPLE).
    A decode step (n 1) gives the query heads that share a key/value head to that head as its
    queries, so each key/value head is read once."""
    rows, heads, n, dim = q.shape
    kv = k.shape[1]
    if k.shape[2] % KEY_MULTIPLE:
        raise ValueError(f"attention over {k.shape[2]} keys: the engine pads keys to a multiple of {KEY_MULTIPLE}")
    if n == 1:
        per = heads // kv
        qq = _pad_queries(q.reshape(rows, kv, per, dim))
        o = F.scaled_dot_product_attention(qq, k, v, attn_mask=mask, scale=scaling)
        return o[:, :, :per].reshape(rows, heads, 1, dim)
    qq = _pad_queries(q)
    if qq.shape[2] != n:  # the padded queries attend every key (their outputs are dropped)
        mask = torch.cat([mask, mask.new_zeros(*mask.shape[:2], qq.shape[2] - n, mask.shape[3])], 2)
    o = F.scaled_dot_product_attention(qq, k, v, attn_mask=mask, scale=scaling, enable_gqa=True)
    return o[:, :, :n]


def _pad_queries(q: torch.Tensor) -> torch.Tensor:
    short = round_up(q.shape[2], QUERY_MULTIPLE) - q.shape[2]
    return q if not short else torch.cat([q, q.new_zeros(*q.shape[:2], short, q.shape[3])], 2)


def linear_in_blocks(module: torch.nn.Linear, mode: list, packed: dict, x: torch.Tensor) -> torch.Tensor:
    """`module(x)` computed in products of exactly `mode[0]` rows; the rows left over are
    zero-padded to a full block. With `mode[1]` (decoding), bf16/fp16 weights on a CPU go through
    oneDNN reordered once (`packed`) instead of on every call; prefill blocks write straight
    into the output, which saves copying it."""
    n, use_packed = mode
    w, b = module.weight, module.bias
    if x.dtype != w.dtype:  # leave mixed-dtype calls to torch's own promotion rules
        return F.linear(x, w, b)
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    if not flat.is_contiguous():
        flat = flat.contiguous()
    pw = packed.get(id(module)) if use_packed else None
    if n == 0:  # products as they come (a request timed alone: not batch-invariant)
        out = torch.ops.mkldnn._linear_pointwise(flat, pw, b, "none", [], "") if pw is not None else F.linear(flat, w, b)
        return out.reshape(*shape[:-1], w.shape[0])
    m, full = flat.shape[0], flat.shape[0] // n * n

    def block(rows: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if pw is not None:
            return torch.ops.mkldnn._linear_pointwise(rows, pw, b, "none", [], "")
        if b is None:
            return torch.mm(rows, w.t(), out=out)
        return torch.addmm(b, rows, w.t(), out=out)

    if m < n:  # one block, mostly padding (a decode step with few rows)
        return block(torch.cat([flat, flat.new_zeros(n - m, flat.shape[1])]))[:m].reshape(*shape[:-1], w.shape[0])
    out = flat.new_empty(m, w.shape[0])
    for s in range(0, full, n):
        if pw is not None:
            out[s:s + n] = block(flat[s:s + n])
        else:
            block(flat[s:s + n], out=out[s:s + n])
    if full < m:
        rest = torch.cat([flat[full:], flat.new_zeros(n - (m - full), flat.shape[1])])
        out[full:] = block(rest)[: m - full]
    return out.reshape(*shape[:-1], w.shape[0])


def pack_weight(module: torch.nn.Linear, rows: int):
    """The weight reordered for oneDNN's CPU kernels, or None where that does not apply."""
    w = module.weight
    if w.device.type != "cpu" or w.dtype not in (torch.bfloat16, torch.float16) or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(w.detach(), rows)
    except (RuntimeError, AttributeError):
        return None


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The first maximal index per row, like argmax (`max` finds it 3x faster on a CPU)."""
    return logits.max(-1).indices


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean attention mask as 0 / -inf in the query dtype, converted once for all layers."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


class FusedLora:
    """A peft LoRA linear with one plain adapter, as the engine runs it: the adapter's A rows
    stacked under the base weight, so `x·[W; A]ᵀ` is one product that gives the base output and
    `x·Aᵀ` together, then `(x·Aᵀ)·Bᵀ · scaling` added as peft adds it. The same numbers as
    peft's forward (tests/models/test_engine.py), ~100 fewer small products per decode step."""

    def __init__(self, module, name: str):
        base, a, b = module.base_layer, module.lora_A[name], module.lora_B[name]
        self.weight = torch.cat([base.weight.detach(), a.weight.detach()])
        self.bias = None if base.bias is None else torch.cat([base.bias.detach(), base.bias.new_zeros(a.weight.shape[0])])
        self.out_features, self.lora_B, self.scaling = base.weight.shape[0], b, module.scaling[name]
        self.key = fused_key(module, name)

    def forward(self, mode: list, packed: dict, x: torch.Tensor) -> torch.Tensor:
        both = linear_in_blocks(self, mode, packed, x)
        result, h = both[..., :self.out_features], both[..., self.out_features:]
        return result + linear_in_blocks(self.lora_B, mode, packed, h) * self.scaling


def lora_adapter(module) -> str | None:
    """The one active adapter of a peft LoRA linear that `FusedLora` computes exactly, or None
    (no adapter, several, merged, disabled, DoRA or another variant, a bias, dropout while
    training, adapter and base in different dtypes: peft's own forward runs those)."""
    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:
        return None
    if type(module) is not Linear or module.merged or module.disable_adapters or len(module.active_adapters) != 1:
        return None
    name = module.active_adapters[0]
    base = module.base_layer
    if name not in module.lora_A or name in getattr(module, "lora_variant", {}) or type(base) is not torch.nn.Linear:
        return None
    a, b = module.lora_A[name], module.lora_B[name]
    if type(a) is not torch.nn.Linear or type(b) is not torch.nn.Linear or a.bias is not None or b.bias is not None:
        return None
    if module.training and not isinstance(module.lora_dropout[name], torch.nn.Identity):
        return None
    if not (a.weight.dtype == b.weight.dtype == base.weight.dtype) or not isinstance(module.scaling[name], (int, float)):
        return None
    return name


def fused_key(module, name: str) -> tuple:
    """What a `FusedLora` was built from: rebuilt when any of the three weights changes."""
    ws = (module.base_layer.weight, module.lora_A[name].weight, module.lora_B[name].weight)
    return (name, module.scaling[name], *((w.data_ptr(), w._version) for w in ws))
