"""The LM head's per-token log-probabilities on a CPU: trl's own computation, bit for bit, with
less work.

trl 1.x scores the answer tokens through the LM head in vocabulary tiles (`ChunkedLogProbFunction`)
and, without Triton, folds each tile with torch operations written for a GPU kernel's structure.
On a CPU that costs more than the products themselves: 184-369 ms of a ~1.5 s demo training
step for ~200 answer tokens (SmolLM2's 49k-token vocabulary; bench/train_step.py's last line), of
which the forward pass's bf16 product needs ~30 ms (2 × 200 × 576 × 49,152 ≈ 11 GFLOP at
the ~370 GFLOP/s the host's bf16 products reached in training). The rest is work whose result
is thrown away or recomputed:

- the backward pass recomputes every logits tile (the same product again) and converts the
  frozen head's bf16 weight to fp32 (for its fp32 gradient product) at every step;
- both passes multiply by the logit scale and the inverse temperature when they are 1, and the
  backward builds the gradient in some fourteen passes over the tile (a float copy, two
  scalings, a difference, an exp, zeros, a one-hot and its float copy, a difference, a product, a
  sum, two scalings, the copy back) where seven do;
- the accuracy metric (is the target the first maximum?) masks a copy of every tile.

`LogProbsOnCPU` does the same operations on the same values, in the same order wherever it
matters for rounding (the same products with the same shapes, the same reductions over the same
tiles), and skips the rest: it keeps the forward's tiles for the backward while they are small
(`KEEP_TILES`), keeps one fp32 copy of a frozen head's weight for the run (`KEEP_FP32_WEIGHT`),
and folds the gradient in place. Log-probabilities, entropy, accuracy and the hidden states'
gradient are bitwise trl's (tests/train/test_lm_head.py compares them to trl's own function);
`python bench/train_step.py` measures the steps. Anything it does not cover (a GPU, a bias, a
soft cap, a head that trains, outputs other than log-probabilities, entropy and accuracy) goes to
trl's function unchanged.
"""

from __future__ import annotations

import contextlib
import weakref

import torch

COVERED_OUTPUTS = frozenset({"log_probs", "entropy", "is_top1"})
KEEP_TILES = 1 << 27  # logits values kept from the forward for the backward (256 MB in bf16); more are recomputed
KEEP_FP32_WEIGHT = 1 << 27  # weight values kept in fp32 for the run (512 MB); a larger head is converted per tile


class LogProbsOnCPU(torch.autograd.Function):
    """`trl.kernels.ChunkedLogProbFunction` for CPU tensors without bias or soft cap and a head that
    does not train: the same arguments and results (`log_sum_sq_probs` and `mean_logits` are None)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
                logit_scale=1.0, outputs=("log_probs",), fp32_weight=None):
        from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE

        ctx.set_materialize_grads(False)
        n_tokens, vocab = hidden.shape[0], weight.shape[0]
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden.dtype
        inv_t = 1 / temperature
        running_max = torch.full((n_tokens,), float("-inf"), dtype=torch.float32)
        sum_exp = torch.zeros(n_tokens, dtype=torch.float32)
        x_sum_exp = torch.zeros(n_tokens, dtype=torch.float32)
        target_logit = torch.zeros(n_tokens, dtype=torch.float32)
        best = torch.full((n_tokens,), float("-inf"), dtype=torch.float32)  # the first maximum and where
        best_at = torch.zeros(n_tokens, dtype=torch.long)
        keep = ctx.needs_input_grad[0] and n_tokens * vocab <= KEEP_TILES
        tiles = []
        for t0 in range(0, n_tokens, TOKEN_CHUNK_SIZE):
            t1 = min(t0 + TOKEN_CHUNK_SIZE, n_tokens)
            rows = torch.arange(t1 - t0)
            h = hidden[t0:t1].to(dtype)
            for v0 in range(0, vocab, chunk_size):
                v1 = min(v0 + chunk_size, vocab)
                tile = torch.mm(h, weight[v0:v1].to(dtype).t())
                if keep:
                    tiles.append(tile)
                z = tile.float()  # in fp32 the tile itself: scaled on a copy, the kept tile stays as made
                z = _scaled(z.clone() if z is tile and (logit_scale != 1.0 or inv_t != 1.0) else z, logit_scale, inv_t)
                top, at = z.max(-1)  # the first maximum of the tile; an equal one in a later tile is not first
                later = top > best[t0:t1]
                best_at[t0:t1] = torch.where(later, at + v0, best_at[t0:t1])
                best[t0:t1] = torch.where(later, top, best[t0:t1])
                m = running_max[t0:t1]
                new_m = torch.maximum(m, top)
                rescale = torch.exp(m - new_m)
                e = torch.exp(z - new_m.unsqueeze(-1))
                sum_exp[t0:t1] = sum_exp[t0:t1].mul_(rescale).add_(e.sum(-1))
                if "entropy" in outputs:
                    x_sum_exp[t0:t1] = x_sum_exp[t0:t1].mul_(rescale).add_((e * z).sum(-1))
                running_max[t0:t1] = new_m
                local = targets[t0:t1] - v0
                inside = (local >= 0) & (local < v1 - v0)
                target_logit[t0:t1] = torch.where(inside, z[rows, local.clamp(0, v1 - v0 - 1)], target_logit[t0:t1])
        log_z = running_max + torch.log(sum_exp)
        logprobs = target_logit - log_z
        entropy = log_z - x_sum_exp / sum_exp if "entropy" in outputs else None
        is_top1 = best_at == targets if "is_top1" in outputs else None
        ctx.save_for_backward(hidden, weight, targets, log_z, log_z if entropy is None else entropy)
        ctx.dtype, ctx.chunk_size, ctx.logit_scale, ctx.inv_t = dtype, chunk_size, logit_scale, inv_t
        ctx.tiles, ctx.fp32_weight = tiles, fp32_weight
        if is_top1 is not None:
            ctx.mark_non_differentiable(is_top1)
        return logprobs, entropy, None, None, is_top1

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy, *_):
        from trl.kernels.chunked_logprob import _BLOCK_SIZE, TOKEN_CHUNK_SIZE, _backward_tile

        hidden, weight, targets, log_z, entropy = ctx.saved_tensors
        dtype, chunk_size, scale, inv_t = ctx.dtype, ctx.chunk_size, ctx.logit_scale, ctx.inv_t
        tiles = iter(ctx.tiles)
        ctx.tiles = []  # a second backward recomputes them
        n_tokens, vocab = hidden.shape[0], weight.shape[0]
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32)
        g = grad_logprobs.float().contiguous() if grad_logprobs is not None else None
        g_entropy = grad_entropy.float().contiguous() if grad_entropy is not None else None
        for t0 in range(0, n_tokens, TOKEN_CHUNK_SIZE):
            t1 = min(t0 + TOKEN_CHUNK_SIZE, n_tokens)
            h = hidden[t0:t1].to(dtype)
            for v0 in range(0, vocab, chunk_size):
                v1 = min(v0 + chunk_size, vocab)
                w = weight[v0:v1].to(dtype)
                tile = next(tiles, None)
                if tile is None:
                    tile = torch.mm(h, w.t())
                if g is not None and g_entropy is None:  # the loss's gradient alone: folded in place
                    p = _scaled(tile.to(torch.float32, copy=True), scale, inv_t)
                    p.sub_(log_z[t0:t1].unsqueeze(-1)).exp_().neg_()  # 0 - p off the target
                    local = targets[t0:t1] - v0
                    at = ((local >= 0) & (local < v1 - v0)).nonzero().squeeze(-1)
                    p[at, local[at]] += 1.0  # 1 - p on it
                    p.mul_(g[t0:t1].unsqueeze(-1)).add_(0.0)  # + 0.0: a -0.0 becomes 0.0, as trl's zeros + x
                    tile.copy_(_scaled(p, inv_t, scale))
                else:  # with the entropy's gradient: trl's own fold
                    _backward_tile(tile, tile.stride(0), targets[t0:t1], log_z[t0:t1], entropy[t0:t1],
                                   g[t0:t1] if g is not None else log_z, g_entropy[t0:t1] if g_entropy is not None else log_z,
                                   v0, v1 - v0, scale, 1.0, inv_t, HAS_SOFTCAP=False, HAS_LOGPROB_GRAD=g is not None,
                                   HAS_ENTROPY_GRAD=g_entropy is not None, BLOCK_SIZE=_BLOCK_SIZE)
                w32 = ctx.fp32_weight[v0:v1] if ctx.fp32_weight is not None else w.float()
                grad_hidden[t0:t1].addmm_(tile.float(), w32)
        return (grad_hidden.to(hidden.dtype),) + (None,) * 9


def _scaled(z: torch.Tensor, first: float, second: float) -> torch.Tensor:
    """z * first * second in place, as trl multiplies (a factor of 1 changes nothing and is skipped)."""
    if first != 1.0:
        z.mul_(first)
    if second != 1.0:
        z.mul_(second)
    return z


def covered(hidden, weight, bias, final_logit_softcapping, outputs) -> bool:
    return (hidden.device.type == "cpu" and weight.device.type == "cpu" and bias is None
            and final_logit_softcapping is None and not weight.requires_grad and set(outputs) <= COVERED_OUTPUTS)


class HeadWeights:
    """One fp32 copy of a frozen bf16 head's weight, made at its first use and kept while that same
    tensor is unchanged: the same values as trl's per-tile `.float()`, once per run instead of per
    step. It is keyed on the tensor itself (a weak reference) and its version (an in-place change
    makes a new copy), and dropped when the tensor goes (the harness's bf16 head copy, when its
    training block ends). The harness's trainer holds one for its life."""

    def __init__(self):
        self.copy = None  # (weak reference to the weight, its version, the fp32 copy)

    def fp32(self, weight):
        if weight.dtype == torch.float32 or weight.numel() > KEEP_FP32_WEIGHT:
            return None
        if self.copy is None or self.copy[0]() is not weight or self.copy[1] != weight._version:
            self.copy = None  # the old copy goes before the new one is made
            self.copy = (weakref.ref(weight, self._gone), weight._version, weight.detach().float())
        return self.copy[2]

    def _gone(self, ref) -> None:
        if self.copy is not None and self.copy[0] is ref:
            self.copy = None


class _Dispatch:
    """Stands in for trl's function: `apply` sends the calls `LogProbsOnCPU` covers there, the rest to trl."""

    def __init__(self, real, weights: HeadWeights):
        self.real, self.weights = real, weights

    def apply(self, hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
              logit_scale=1.0, outputs=("log_probs",)):
        if not covered(hidden, weight, bias, final_logit_softcapping, outputs):
            return self.real.apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping,
                                   logit_scale, outputs)
        return LogProbsOnCPU.apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping,
                                   logit_scale, outputs, self.weights.fp32(weight))


@contextlib.contextmanager
def lm_head_on_cpu(weights: HeadWeights | None = None):
    """While inside, trl's LM-head log-probabilities run through `LogProbsOnCPU` where it covers
    them; trl's function is back in place when the block ends. `weights` keeps the head's fp32
    copy from one block to the next (the harness's trainer enters one block per loss)."""
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:
        yield
        return
    real = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if real is None or isinstance(real, _Dispatch):  # absent in this trl, or already inside
        yield
        return
    trl_utils._ChunkedLogProbFunction = _Dispatch(real, weights or HeadWeights())
    try:
        yield
    finally:
        trl_utils._ChunkedLogProbFunction = real
