"""The LM head's log-probabilities on a CPU: bitwise trl's own function, less work."""

from __future__ import annotations

import pytest
import torch

OUTPUTS = ("log_probs", "entropy", "is_top1")


def _run(fn, hidden, weight, targets, *, chunk=2048, temperature=1.0, scale=1.0, outputs=OUTPUTS, autocast=True,
         entropy_grad=False, extra=()):
    h = hidden.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        lp, ent, _, _, top = fn.apply(h, weight, None, targets, temperature, chunk, None, scale, outputs, *extra)
    loss = -lp.sum() / len(targets) + (ent.sum() * 0.1 if entropy_grad else 0)
    loss.backward()
    return [lp.detach(), None if ent is None else ent.detach(), top, h.grad]


def _case(tokens, hidden=48, vocab=5000, dtype=torch.bfloat16, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(vocab, hidden, generator=g) * 0.2).to(dtype)
    return torch.randn(tokens, hidden, generator=g), weight, torch.randint(0, vocab, (tokens,), generator=g)


@pytest.mark.parametrize("kw", [
    {},  # bf16 autocast, three vocabulary tiles (the last one short)
    {"temperature": 0.7, "scale": 0.5},  # both factors applied, in trl's order
    {"autocast": False, "dtype": torch.float32},  # fp32 throughout
    {"autocast": False, "dtype": torch.float32, "temperature": 0.7, "scale": 0.5},
    {"entropy_grad": True},  # the entropy's gradient too: trl's own fold
    {"outputs": ("log_probs",)},
    {"tokens": 4200},  # more tokens than trl's 4096-token chunk
])
def test_log_probs_on_cpu_are_trls_bit_for_bit(kw):
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction

    from harness.train.lm_head import HeadWeights, LogProbsOnCPU

    kw = dict(kw)
    hidden, weight, targets = _case(kw.pop("tokens", 300), dtype=kw.pop("dtype", torch.bfloat16))
    want = _run(ChunkedLogProbFunction, hidden, weight, targets, **kw)
    fp32 = HeadWeights().fp32(weight)
    for extra in ((), (fp32,)):  # the weight converted per tile, and the run's fp32 copy
        got = _run(LogProbsOnCPU, hidden, weight, targets, extra=extra, **kw)
        for name, a, b in zip(("log_probs", "entropy", "is_top1", "grad"), got, want):
            assert (a is None) == (b is None), name
            if a is not None:
                assert a.dtype == b.dtype and torch.equal(a, b), name


def test_accuracy_counts_only_the_first_maximum():
    # is_top1: the target is the first maximum of the whole vocabulary, as trl counts it (a tie with
    # an earlier token, in the same tile or an earlier one, is not a top-1 prediction)
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction

    from harness.train.lm_head import LogProbsOnCPU

    vocab, hidden = 5000, 4
    weight = torch.zeros(vocab, hidden, dtype=torch.bfloat16)
    weight[:, 0] = -1.0
    for i in (10, 20, 3000, 4500):  # equal maxima at 10, 20 (first tile), 3000 (second), 4500 (third)
        weight[i, 0] = 2.0
    h = torch.zeros(6, hidden)
    h[:, 0] = 1.0
    targets = torch.tensor([10, 20, 3000, 4500, 7, 2999])
    want = _run(ChunkedLogProbFunction, h, weight, targets)[2]
    got = _run(LogProbsOnCPU, h, weight, targets)[2]
    assert got.tolist() == want.tolist() == [True, False, False, False, False, False]


def test_head_weights_keep_one_copy_until_the_weight_changes():
    from harness.train.lm_head import HeadWeights

    weights = HeadWeights()
    w = torch.randn(30, 8).to(torch.bfloat16)
    first = weights.fp32(w)
    assert first.dtype == torch.float32 and torch.equal(first, w.float())
    assert weights.fp32(w) is first  # kept
    with torch.no_grad():
        w.mul_(2)  # changed in place: a new copy with the new values
    again = weights.fp32(w)
    assert again is not first and torch.equal(again, w.float())
    other = w.clone()  # equal values, another tensor: a copy of its own
    assert weights.fp32(other) is not again
    del other, w
    import gc

    gc.collect()
    assert weights.copy is None  # the weight gone, its copy goes with it
    assert weights.fp32(torch.randn(3, 8)) is None  # an fp32 weight is used as it is


def test_the_trainers_loss_uses_it_and_trl_gets_its_function_back(tiny_cfg, monkeypatch):
    # inside the harness's compute_loss trl's module-level function is the harness's dispatcher; the
    # loss and the adapter's gradients are bitwise those of trl's own function on the same batch
    import trl.trainer.utils as trl_utils

    from harness.train import lm_head
    from harness.train.config import load_train_config
    from harness.train.trainers import answer_tokens_only, prepare, shared_prefix_once

    trainer = prepare(load_train_config(tiny_cfg("lora", precision="bf16"))).trainer
    real = trl_utils._ChunkedLogProbFunction
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.eval()
    adapter = [p for p in model.parameters() if p.requires_grad]
    seen = []
    original_apply = lm_head.LogProbsOnCPU.apply

    def loss_and_grads(loss_fn):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn()
        loss.backward()
        return loss.detach().clone(), [p.grad.clone() for p in adapter]

    def counting(*a):
        seen.append(type(trl_utils._ChunkedLogProbFunction).__name__)
        return original_apply(*a)

    with monkeypatch.context() as patch:  # only this patch undone here, the inherited apply back
        patch.setattr(lm_head.LogProbsOnCPU, "apply", counting)
        harness = loss_and_grads(lambda: trainer.compute_loss(model, dict(batch)))
    assert seen == ["_Dispatch"]
    assert trl_utils._ChunkedLogProbFunction is real  # back when the loss is done

    def trls_own():  # the same context but trl's function
        with answer_tokens_only(), shared_prefix_once(model):
            from trl import SFTTrainer
            return SFTTrainer.compute_loss(trainer, model, dict(batch))

    trl = loss_and_grads(trls_own)
    assert torch.equal(harness[0], trl[0])
    assert len(adapter) > 0
    for a, b in zip(harness[1], trl[1]):
        assert torch.equal(a, b)
