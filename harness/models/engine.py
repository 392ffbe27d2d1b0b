"""Batch-invariant greedy decoding and log-likelihood over a Hugging Face causal LM.

`HFBackend` caches a completion per request, without the batch it was generated in, so a
request's output must not depend on which other requests shared its batch. In fp32 plain
`generate()` meets that by luck of tiny rounding; in bf16 it does not (6 of 18 test prompts
changed between batch 18 and batch 1 on this CPU). Four things made a row's numbers depend on
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
- **Threads.** torch's CPU flash attention rounded a row differently on its second thread than on
  its first (its per-thread scratch was aligned differently), and a row's thread depends on how
  many rows precede it; queries and keys are padded to lengths that align every thread's scratch.
- **Work wasted on padding and on finished rows**, which is speed rather than correctness:
  prefix tokens are computed once, pads are fewer than `bucket`, finished rows leave the batch.

Works with decoder-only models whose attention goes through transformers' attention interface
(Llama, Mistral, Qwen2/3, Phi-3, ...); `supports()` says whether a loaded model is one, and
`HFBackend` falls back to `generate()` otherwise.
"""

from __future__ import annotations

import contextlib
import time

import torch

from harness.models.kernels import (
    ATTENTION,
    FusedLora,
    Group,
    Part,
    Step,
    additive_mask,
    fused_key,
    greedy,
    key_length,
    linear_in_blocks,
    lora_adapter,
    pack_weight,
    register_attention,
    round_up,
)

# 2: LoRA's A stacked under the base weight (kernels.FusedLora): bf16 unchanged in the tests, fp32
# log-likelihoods within ~1e-7 relative; a new version keeps earlier cached results apart all the same
# 3: attention on one thread (kernels.grouped_attention): rows that ran on a second thread may change
# 4: attention on every thread again, over queries and keys padded so that each thread's scratch is
# aligned alike (kernels.aligned_attention): the added keys are masked, sums may round differently
ENGINE_VERSION = 4
CONTINUATION_BUCKET = 4  # log-likelihood continuations are rounded up to a multiple of this many tokens
# Model families whose attention layers call the attention interface with the standard
# arguments, apply rotary embeddings from explicit position ids and have no sliding window.
FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "phi3", "granite", "olmo2", "smollm3"}


def engine_settings(device: str) -> dict:
    """Row counts of the engine's products and its padding granularity, per device kind. They
    change the rounding, so they are part of the engine's name (and so of every cache key).
    On a 2-core Xeon with AMX, 64 rows of a bf16 decode step cost about what 32 do (reading
    the weights dominates: 36 ms for all 210 products of SmolLM2-135M either way), and
    512-row prefill products written in place come within ~20 % of unsplit ones; a GPU wants
    far larger products."""
    if device.startswith("cuda"):
        return {"prefill_rows": 4096, "decode_rows": 256, "bucket": 64}
    return {"prefill_rows": 512, "decode_rows": 64, "bucket": 16}


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
    decoding (fixed, so results do not depend on the batch; 0: each product as it comes, for a
    request timed alone, which is then not batch-invariant); `bucket`: requests' own tokens are
    right-aligned in a region rounded up to this many tokens.
    """

    def __init__(self, model, *, prefill_rows: int = 512, decode_rows: int = 64, bucket: int = 16,
                 prefill_tokens: int = 16384, pack_rows: int | None = None):
        register_attention()
        self.model = model
        self.prefill_rows, self.decode_rows, self.bucket = prefill_rows, decode_rows, bucket
        self.pack_rows = pack_rows or decode_rows or 1  # the row count oneDNN reorders the weights for
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
        self._fused: dict[int, FusedLora] = {}

    def timing(self) -> Engine:
        """This engine with every product as it comes (rows 0), for a request timed alone: not
        batch-invariant. It shares this engine's reordered weights and stacked LoRA layers, so
        it costs no memory and the weights are packed alike whichever engine runs first."""
        other = Engine(self.model, prefill_rows=0, decode_rows=0, bucket=self.bucket,
                       prefill_tokens=self.prefill_tokens, pack_rows=self.pack_rows)
        other._packed, other._packed_keys, other._fused = self._packed, self._packed_keys, self._fused
        return other

    @property
    def name(self) -> str:
        """The engine and the settings that change its rounding."""
        rows = f"rows {self.prefill_rows}/{self.decode_rows}" if self.decode_rows else "rows as they come"
        return f"harness-grouped/{ENGINE_VERSION} {rows} bucket {self.bucket}"

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
                self._packed[id(m)] = pack_weight(m, self.pack_rows)
        loras = []  # peft LoRA linears with one plain adapter: the base product and x·Aᵀ in one
        for m in self.base.modules():
            name = lora_adapter(m)
            if name is None:
                continue
            fused = self._fused.get(id(m))
            if fused is None or fused.key != fused_key(m, name):
                fused = self._fused[id(m)] = FusedLora(m, name)
                self._packed[id(fused)] = pack_weight(fused, self.pack_rows)
            loras.append((m, fused))
        packed = {k: v for k, v in self._packed.items() if v is not None}
        for c in configs.values():
            c._attn_implementation = ATTENTION
        for m in linears:
            m.forward = lambda x, _m=m: linear_in_blocks(_m, self._rows, packed, x)
        for m, fused in loras:
            m.forward = lambda x, *a, _f=fused, **k: _f.forward(self._rows, packed, x)
        try:
            with torch.inference_mode():
                yield
        finally:
            for m in linears:
                del m.forward
            for m, _ in loras:
                del m.forward
            for k, c in configs.items():
                c._attn_implementation = saved[k]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, step: Step, rows: int) -> torch.Tensor:
        self._rows[:] = [rows, rows == self.decode_rows]
        out = self.decoder(input_ids=ids, position_ids=positions, use_cache=False, harness_step=step)
        return out.last_hidden_state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        self._rows[:] = [self.decode_rows, True]
        return self.head(hidden)

    def _new_group(self, n: int, capacity: int, members: list[int]) -> Group:
        capacity = key_length(capacity)  # attention reads up to a multiple of KEY_MULTIPLE slots
        shape = (n, self.kv_heads, capacity, self.head_dim)
        kw = {"dtype": self.dtype, "device": self.device}
        return Group(
            keys=[torch.zeros(shape, **kw) for _ in range(self.layers)],
            values=[torch.zeros(shape, **kw) for _ in range(self.layers)],
            valid=torch.zeros((n, capacity), dtype=torch.bool, device=self.device),
            filled=0, positions=torch.zeros(n, dtype=torch.long, device=self.device), members=members,
        )

    def _prefill(self, g: Group, seqs: list[list[int]], region: int, pad_id: int, keep_all: bool = False) -> torch.Tensor:
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
        k = torch.arange(key_length(end), device=self.device)
        causal = (k[None, :] <= q[:, None])[None]
        own = (k[None, :] == q[:, None])[None]  # a pad query attends itself: never a row of -inf
        mask = additive_mask((g.valid[:, None, :len(k)] & causal) | own, self.dtype)[:, None]
        outs = []
        per = max(1, self.prefill_tokens // region)
        for a in range(0, n, per):
            rows = slice(a, min(n, a + per))
            step = Step([Part(slice(0, rows.stop - a), g, start, rows, mask[rows])])
            hidden = self._forward(ids[rows], pos[rows], step, self.prefill_rows)
            outs.append(hidden if keep_all else hidden[:, -1])
        g.filled = end
        g.positions = g.positions + lengths
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _prefix_group(self, prefix: list[int], pad_id: int, capacity: int) -> Group:
        g = self._new_group(1, capacity, [-1])
        if prefix:
            self._prefill(g, [prefix], len(prefix), pad_id)
        return g

    def _expand(self, parent: Group, rows: torch.Tensor, capacity: int, members: list[int]) -> Group:
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
        return round_up(n, bucket or self.bucket)

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
        prefixes: dict[tuple, Group] = {}
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
        """One wave of chunks decoded together until every row has finished."""
        t0 = time.perf_counter()
        groups, nexts = self._start_wave(wave, requests, prefixes, max_new, pad_id)
        tokens: dict[int, list[int]] = {i: [] for g in groups for i in g.members}

        def finished(i: int, t: int) -> str | None:
            """Record row i's new token t; why the row is done, or None while it goes on."""
            if t in stop_ids:
                return "stop"
            tokens[i].append(t)
            if stop is not None and stop(i, tokens[i]):
                return "stop"
            return "length" if len(tokens[i]) >= max_new else None

        while groups:
            live = []
            for g, nxt in zip(groups, nexts):
                keep = []
                for r, (i, t) in enumerate(zip(g.members, nxt.tolist())):
                    reason = finished(i, t)
                    if reason is None:
                        keep.append(r)
                        continue
                    out[i] = (tokens[i], reason, time.perf_counter() - t0)
                    if on_done:
                        on_done(1)
                if keep:
                    live.append(self._keep_rows(g, nxt, keep))
            groups = [g for g, _ in live]
            if groups:
                nexts = self._decode_step(groups, [n for _, n in live])

    def _start_wave(self, wave, requests, prefixes, max_new, pad_id) -> tuple[list[Group], list[torch.Tensor]]:
        """Each chunk's group prefilled (its shared prefix once per wave's engine call), with the
        first greedy token of every row."""
        groups, nexts = [], []
        for prefix, region, members in wave:
            if prefix not in prefixes:
                prefixes[prefix] = self._prefix_group(list(prefix), pad_id, len(prefix))
            g = self._expand(prefixes[prefix], torch.zeros(len(members), dtype=torch.long), len(prefix) + region + max_new, members)
            hidden = self._prefill(g, [requests[i][0][len(prefix):] for i in members], region, pad_id)
            nexts.append(greedy(self._logits(hidden)))
            groups.append(g)
        return groups, nexts

    def _keep_rows(self, g: Group, nxt: torch.Tensor, keep: list[int]) -> tuple[Group, torch.Tensor]:
        """The group and its next tokens with only the rows still decoding."""
        if len(keep) < len(g.members):
            sel = torch.tensor(keep, device=self.device)
            g.select(sel)
            nxt = nxt.index_select(0, sel)
        return g, nxt

    def _decode_step(self, groups: list[Group], nexts: list[torch.Tensor]) -> list[torch.Tensor]:
        """One decode step for every live row of the wave: the next greedy token per group."""
        step, row = Step(), 0
        for g in groups:
            n, slot = len(g.members), g.filled
            g.valid[:, slot] = True
            step.parts.append(Part(slice(row, row + n), g, slot, slice(None), additive_mask(g.valid[:, None, None, :key_length(slot + 1)], self.dtype)))
            row += n
        ids = torch.cat(nexts)[:, None]
        pos = torch.cat([g.positions for g in groups])[:, None]
        hidden = self._forward(ids, pos, step, self.decode_rows)
        out = list(greedy(self._logits(hidden[:, -1])).split([len(g.members) for g in groups]))
        for g in groups:
            g.filled += 1
            g.positions = g.positions + 1
        return out

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
        prefixes: dict[tuple, Group] = {}
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

