"""Batch-invariant greedy decoding and log-likelihood over a Hugging Face causal LM.

`HFBackend` caches a completion per request, without the batch it was generated in, so a
request's output must not depend on which other requests shared its batch. In fp32 plain
`generate()` meets that by luck of tiny rounding; in bf16 it does not (6 of 18 test prompts
changed between batch 18 and batch 1 on this CPU). Three things made a row's numbers depend on
its neighbours, and this engine removes each:

- **Matrix products whose kernel depends on the number of rows.** oneDNN and MKL pick kernels
  by shape, so a row multiplied among 40 rows is rounded differently from the same row alone.
  Here every `nn.Linear` multiplies in blocks of exactly `rows` rows (the last block
  zero-padded), so every product has one shape whatever the batch.
- **Padding.** Left padding to the batch's longest prompt changes the attention kernel's key
  length and so its summation order. Here each request's layout is a function of the request
  alone: a shared prefix (its chat-template head, prefilled once and copied to every row that
  shares it), then its own tokens right-aligned in a region rounded up to `bucket` tokens, then
  its generated tokens. Attention runs per group of rows with the same layout.
- **Work wasted on padding and on finished rows**, which is speed rather than correctness:
  prefix tokens are computed once, pads are fewer than `bucket`, finished rows leave the batch.

Works with decoder-only models whose attention goes through transformers' attention interface
(Llama, Mistral, Qwen2/3, Phi-3, ...); `supports()` says whether a loaded model is one, and
`HFBackend` falls back to `generate()` otherwise.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

ATTENTION = "harness_grouped"
ENGINE_VERSION = 1
CONTINUATION_BUCKET = 4  # log-likelihood continuations are rounded up to a multiple of this many tokens
# Model families whose attention layers call the attention interface with the standard
# arguments, apply rotary embeddings from explicit position ids and have no sliding window.
FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "phi3", "granite", "olmo2", "smollm3"}


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, _grouped_attention)


@dataclass
class _Group:
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
class _Part:
    rows: slice  # rows of the forward's batch that belong to the group
    group: _Group
    start: int  # first slot the forward writes
    group_rows: slice  # the same rows in the group's cache
    mask: torch.Tensor  # (rows, 1, q_len, start + q_len): 0 where attended, -inf elsewhere


@dataclass
class _Step:
    parts: list[_Part] = field(default_factory=list)


def _grouped_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, harness_step=None, **kwargs):
    """Attention interface entry: store the new keys/values in each group's cache, then attend
    per group over exactly that group's slots (one layout, so one kernel shape per row)."""
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
        q = query[part.rows]
        if n == 1:
            # one new token: the query heads that share a key/value head read it together, once
            rows, heads, _, dim = q.shape
            kv = keys.shape[1]
            o = F.scaled_dot_product_attention(q.reshape(rows, kv, heads // kv, dim), keys[:, :, :end], values[:, :, :end],
                                               attn_mask=part.mask, scale=scaling)
            outs.append(o.reshape(rows, heads, 1, dim))
        else:
            outs.append(F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], attn_mask=part.mask,
                                                       scale=scaling, enable_gqa=True))
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.transpose(1, 2).contiguous(), None


def _linear_in_blocks(module: torch.nn.Linear, mode: list, packed: dict, x: torch.Tensor) -> torch.Tensor:
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
    m, full = flat.shape[0], flat.shape[0] // n * n
    pw = packed.get(id(module)) if use_packed else None

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


def _pack(module: torch.nn.Linear, rows: int):
    """The weight reordered for oneDNN's CPU kernels, or None where that does not apply."""
    w = module.weight
    if w.device.type != "cpu" or w.dtype not in (torch.bfloat16, torch.float16) or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(w.detach(), rows)
    except (RuntimeError, AttributeError):
        return None


def _greedy(logits: torch.Tensor) -> torch.Tensor:
    """The first maximal index per row, like argmax (`max` finds it 3x faster on a CPU)."""
    return logits.max(-1).indices


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean attention mask as 0 / -inf in the query dtype, converted once for all layers."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def supports(model) -> str | None:
    """None when the engine can run this model, else the reason it cannot."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    if getattr(cfg, "model_type", None) not in FAMILIES:
        return f"model type {getattr(cfg, 'model_type', None)!r} is not one the engine knows"
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return "sliding-window attention"
    if not hasattr(base, "get_decoder") or base.get_output_embeddings() is None:
        return "no decoder / output embeddings"
    return None


class Engine:
    """Greedy generation and log-likelihood for one loaded model (with or without adapters).

    `prefill_rows` / `decode_rows`: the row count of every matrix product while prefilling /
    decoding (fixed, so results do not depend on the batch); `bucket`: requests' own tokens are
    right-aligned in a region rounded up to this many tokens.
    """

    def __init__(self, model, *, prefill_rows: int = 512, decode_rows: int = 64, bucket: int = 16,
                 prefill_tokens: int = 16384):
        _register()
        self.model = model
        self.prefill_rows, self.decode_rows, self.bucket = prefill_rows, decode_rows, bucket
        self.prefill_tokens = prefill_tokens
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.base = base
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        cfg = base.config
        self.layers = cfg.num_hidden_layers
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self._rows = [decode_rows, True]  # rows per product, use the packed weights
        self._packed: dict[int, object] = {}
        self._packed_keys: dict[int, tuple] = {}

    @property
    def name(self) -> str:
        """The engine and the settings that change its rounding."""
        return f"harness-grouped/{ENGINE_VERSION} rows {self.prefill_rows}/{self.decode_rows} bucket {self.bucket}"

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8

    # ---- plumbing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _session(self):
        """Fixed-row products and the grouped attention, for the duration of one call."""
        configs = {id(m.config): m.config for m in self.base.modules() if hasattr(m, "config")}
        configs[id(self.base.config)] = self.base.config
        saved = {k: c._attn_implementation for k, c in configs.items()}
        linears = [m for m in self.base.modules() if type(m) is torch.nn.Linear]
        for m in linears:  # packed once per weight (adapters loaded later bring new modules)
            key = (id(m), m.weight.data_ptr(), m.weight._version)
            if self._packed_keys.get(id(m)) != key:
                self._packed_keys[id(m)] = key
                self._packed[id(m)] = _pack(m, self.decode_rows)
        packed = {k: v for k, v in self._packed.items() if v is not None}
        for c in configs.values():
            c._attn_implementation = ATTENTION
        for m in linears:
            m.forward = lambda x, _m=m: _linear_in_blocks(_m, self._rows, packed, x)
        try:
            with torch.inference_mode():
                yield
        finally:
            for m in linears:
                del m.forward
            for k, c in configs.items():
                c._attn_implementation = saved[k]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, step: _Step, rows: int) -> torch.Tensor:
        self._rows[:] = [rows, rows == self.decode_rows]
        out = self.decoder(input_ids=ids, position_ids=positions, use_cache=False, harness_step=step)
        return out.last_hidden_state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        self._rows[:] = [self.decode_rows, True]
        return self.head(hidden)

    def _new_group(self, n: int, capacity: int, members: list[int]) -> _Group:
        shape = (n, self.kv_heads, capacity, self.head_dim)
        kw = {"dtype": self.dtype, "device": self.device}
        return _Group(
            keys=[torch.zeros(shape, **kw) for _ in range(self.layers)],
            values=[torch.zeros(shape, **kw) for _ in range(self.layers)],
            valid=torch.zeros((n, capacity), dtype=torch.bool, device=self.device),
            filled=0, positions=torch.zeros(n, dtype=torch.long, device=self.device), members=members,
        )

    def _prefill(self, g: _Group, seqs: list[list[int]], region: int, pad_id: int, keep_all: bool = False) -> torch.Tensor:
        """Write each row's tokens right-aligned into the group's next `region` slots and run
        them, a few rows at a time (rows are independent, so results do not depend on how
        many). Returns the hidden state of each row's last slot, (rows, hidden), or with
        `keep_all` of every slot of the region, (rows, region, hidden)."""
        n, start = len(seqs), g.filled
        end = start + region
        lengths = torch.tensor([len(s) for s in seqs], device=self.device)
        ids = torch.full((n, region), pad_id, dtype=torch.long, device=self.device)
        for r, s in enumerate(seqs):
            ids[r, region - len(s):] = torch.tensor(s, dtype=torch.long)
            g.valid[r, end - len(s):end] = True
        # positions continue each row's sequence; pads take its first position (never read)
        offset = (torch.arange(region, device=self.device)[None, :] - (region - lengths)[:, None]).clamp(min=0)
        pos = g.positions[:, None] + offset
        q = torch.arange(start, end, device=self.device)
        k = torch.arange(end, device=self.device)
        causal = (k[None, :] <= q[:, None])[None]
        own = (k[None, :] == q[:, None])[None]  # a pad query attends itself: never a row of -inf
        mask = _additive((g.valid[:, None, :end] & causal) | own, self.dtype)[:, None]
        outs = []
        per = max(1, self.prefill_tokens // region)
        for a in range(0, n, per):
            rows = slice(a, min(n, a + per))
            step = _Step([_Part(slice(0, rows.stop - a), g, start, rows, mask[rows])])
            hidden = self._forward(ids[rows], pos[rows], step, self.prefill_rows)
            outs.append(hidden if keep_all else hidden[:, -1])
        g.filled = end
        g.positions = g.positions + lengths
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _prefix_group(self, prefix: list[int], pad_id: int, capacity: int) -> _Group:
        g = self._new_group(1, capacity, [-1])
        if prefix:
            self._prefill(g, [prefix], len(prefix), pad_id)
        return g

    def _expand(self, parent: _Group, rows: torch.Tensor, capacity: int, members: list[int]) -> _Group:
        """A new group whose rows start from copies of `parent`'s rows (its filled slots)."""
        g = self._new_group(len(members), capacity, members)
        f = parent.filled
        for layer in range(self.layers):
            g.keys[layer][:, :, :f] = parent.keys[layer][rows, :, :f]
            g.values[layer][:, :, :f] = parent.values[layer][rows, :, :f]
        g.valid[:, :f] = parent.valid[rows, :f]
        g.filled = f
        g.positions = parent.positions[rows].clone()
        return g

    def _region(self, n: int, bucket: int | None = None) -> int:
        b = bucket or self.bucket
        return -(-n // b) * b

    # ---- generation ----------------------------------------------------------------------
    def generate(self, requests: list[tuple[list[int], int]], max_new_tokens: int, stop_ids: set[int], pad_id: int,
                 max_rows: int = 256, stop=None, on_done=None) -> list[tuple[list[int], str, float]]:
        """Greedy continuations of `requests` (token ids, length of the shared prefix), in input
        order: (new tokens without the stop token, "stop" | "length", seconds until the row
        finished within its wave). `stop(index, tokens) -> bool` ends a row early (stop strings);
        `on_done(n)` is called as rows finish."""
        out: list = [None] * len(requests)
        if not requests:
            return out
        # groups: same prefix tokens and same rounded suffix length, in a fixed order
        keyed: dict[tuple, list[int]] = {}
        for i, (ids, p) in enumerate(requests):
            keyed.setdefault((tuple(ids[:p]), self._region(len(ids) - p)), []).append(i)
        order = sorted(keyed, key=lambda k: (-k[1] - len(k[0]), k[0], k[1]))
        chunks = []  # (prefix, region, members) with at most max_rows members
        for key in order:
            members = keyed[key]
            for s in range(0, len(members), max_rows):
                chunks.append((key[0], key[1], members[s:s + max_rows]))
        prefixes: dict[tuple, _Group] = {}
        with self._session():
            wave: list = []
            for c in chunks:
                if wave and sum(len(w[2]) for w in wave) + len(c[2]) > max_rows:
                    self._run_wave(wave, requests, prefixes, max_new_tokens, stop_ids, pad_id, stop, on_done, out)
                    wave = []
                wave.append(c)
            if wave:
                self._run_wave(wave, requests, prefixes, max_new_tokens, stop_ids, pad_id, stop, on_done, out)
        return out

    def _run_wave(self, wave, requests, prefixes, max_new, stop_ids, pad_id, stop, on_done, out) -> None:
        t0 = time.perf_counter()
        groups: list[_Group] = []
        nexts: list[torch.Tensor] = []
        tokens: dict[int, list[int]] = {}
        for prefix, region, members in wave:
            if prefix not in prefixes:
                prefixes[prefix] = self._prefix_group(list(prefix), pad_id, len(prefix))
            parent = prefixes[prefix]
            g = self._expand(parent, torch.zeros(len(members), dtype=torch.long), len(prefix) + region + max_new, members)
            hidden = self._prefill(g, [requests[i][0][len(prefix):] for i in members], region, pad_id)
            nexts.append(_greedy(self._logits(hidden)))
            groups.append(g)
            for i in members:
                tokens[i] = []

        def finish(i: int, reason: str) -> None:
            out[i] = (tokens[i], reason, time.perf_counter() - t0)
            if on_done:
                on_done(1)

        while groups:
            # record each row's new token; drop rows that are done
            live_groups, live_next = [], []
            for g, nxt in zip(groups, nexts):
                keep = []
                for r, (i, t) in enumerate(zip(g.members, nxt.tolist())):
                    if t in stop_ids:
                        finish(i, "stop")
                        continue
                    tokens[i].append(t)
                    if stop is not None and stop(i, tokens[i]):
                        finish(i, "stop")
                    elif len(tokens[i]) >= max_new:
                        finish(i, "length")
                    else:
                        keep.append(r)
                if not keep:
                    continue
                if len(keep) < len(g.members):
                    sel = torch.tensor(keep, device=self.device)
                    g.select(sel)
                    nxt = nxt.index_select(0, sel)
                live_groups.append(g)
                live_next.append(nxt)
            groups = live_groups
            if not groups:
                break
            # one decode step for every live row of the wave
            step, row = _Step(), 0
            for g in groups:
                n, slot = len(g.members), g.filled
                g.valid[:, slot] = True
                step.parts.append(_Part(slice(row, row + n), g, slot, slice(None), _additive(g.valid[:, None, None, :slot + 1], self.dtype)))
                row += n
            ids = torch.cat(live_next)[:, None]
            pos = torch.cat([g.positions for g in groups])[:, None]
            hidden = self._forward(ids, pos, step, self.decode_rows)
            logits = self._logits(hidden[:, -1])
            nexts = list(_greedy(logits).split([len(g.members) for g in groups]))
            for g in groups:
                g.filled += 1
                g.positions = g.positions + 1

    # ---- log-likelihood ------------------------------------------------------------------
    def loglikelihood(self, pairs: list[tuple[list[int], list[int]]], pad_id: int, max_rows: int = 256,
                      on_done=None, prefix_lengths: list[int] | None = None) -> list[tuple[float, bool]]:
        """(sum log-prob of continuation, continuation is greedy) per (context ids, continuation
        ids). Each distinct context is run once (its first `prefix_lengths` tokens, when shared
        with other contexts, once for all of them); its choices are scored from its cache."""
        out: list = [None] * len(pairs)
        contexts: dict[tuple, list[int]] = {}
        for i, (ctx, _) in enumerate(pairs):
            p = prefix_lengths[i] if prefix_lengths else 0
            contexts.setdefault((tuple(ctx), p), []).append(i)
        by_layout: dict[tuple, list[tuple]] = {}
        for ctx, p in contexts:
            by_layout.setdefault((ctx[:p], self._region(len(ctx) - p)), []).append((ctx, p))
        prefixes: dict[tuple, _Group] = {}
        with self._session():
            for prefix, region in sorted(by_layout, key=lambda k: (-k[1] - len(k[0]), k)):
                if prefix not in prefixes:
                    prefixes[prefix] = self._prefix_group(list(prefix), pad_id, len(prefix))
                ctxs = by_layout[(prefix, region)]
                for s in range(0, len(ctxs), max_rows):
                    self._score_contexts(prefixes[prefix], ctxs[s:s + max_rows], region, contexts, pairs, pad_id, out, on_done)
        return out

    def _score_contexts(self, parent, ctxs, region, contexts, pairs, pad_id, out, on_done) -> None:
        p = parent.filled
        stage = self._expand(parent, torch.zeros(len(ctxs), dtype=torch.long), p + region, list(range(len(ctxs))))
        hidden = self._prefill(stage, [list(c[p:]) for c, _ in ctxs], region, pad_id)
        first = torch.log_softmax(self._logits(hidden).float(), -1)  # predicts each continuation's first token
        scored: dict[int, list[tuple[float, bool]]] = {}
        longer: dict[int, list[tuple[int, int]]] = {}  # continuation region -> (pair, context row)
        for row, ctx in enumerate(ctxs):
            for i in contexts[ctx]:
                cont = pairs[i][1]
                scored[i] = [(float(first[row, cont[0]]), bool(first[row].argmax() == cont[0]))]
                if len(cont) > 1:  # continuations are short: a finer rounding pads them less
                    longer.setdefault(self._region(len(cont) - 1, CONTINUATION_BUCKET), []).append((i, row))
        for creg, items in sorted(longer.items()):
            rows = torch.tensor([r for _, r in items])
            g = self._expand(stage, rows, p + region + creg, [i for i, _ in items])
            hidden = self._prefill(g, [pairs[i][1][:-1] for i, _ in items], creg, pad_id, keep_all=True)
            # only the positions that predict a continuation token go through the LM head
            ks = [len(pairs[i][1]) - 1 for i, _ in items]
            picked = torch.cat([hidden[r, creg - k:] for r, k in enumerate(ks)])
            logp = torch.log_softmax(self._logits(picked).float(), -1)
            at = 0
            for (i, _), k in zip(items, ks):
                lp, target = logp[at:at + k], torch.tensor(pairs[i][1][1:])
                at += k
                scored[i].append((float(lp.gather(1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all())))
        for row, ctx in enumerate(ctxs):
            for i in contexts[ctx]:
                parts = scored[i]
                out[i] = (sum(p[0] for p in parts), all(p[1] for p in parts))
                if on_done:
                    on_done(1)

