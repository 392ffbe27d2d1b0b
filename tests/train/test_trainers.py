"""The trl trainer as the harness configures it."""

from __future__ import annotations

import pytest
import torch


def test_answer_only_scoring_keeps_loss_and_gradients(tiny_cfg):
    # on a CPU trl scored every position through the LM head and masked the prompt afterwards;
    # the harness makes it score only labelled positions: the same loss and gradients, less work
    import trl.trainer.utils as trl_utils

    from harness.train.config import load_train_config
    from harness.train.trainers import prepare

    from trl import SFTTrainer

    trainer = prepare(load_train_config(tiny_cfg("lora"))).trainer
    original = trl_utils._use_triton
    assert not getattr(original, "harness_compact", False)  # trl's own function, outside the trainer's loss
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # prompts masked, answers kept
    model = trainer.model
    model.eval()  # no LoRA dropout: three passes over the same batch must see the same network

    def loss_and_grads():
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    def reference():  # plain logits, cross-entropy over the labelled positions
        model.zero_grad()
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1].float()
        labels = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                 ignore_index=-100, reduction="sum") / (labels != -100).sum()
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    def every_position_loss_and_grads():  # trl's own compute_loss, without the harness's context
        model.zero_grad()
        loss = SFTTrainer.compute_loss(trainer, model, dict(batch))
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    from harness.train.trainers import answer_tokens_only

    with answer_tokens_only():
        assert trl_utils._use_triton(torch.device("cpu")) and trl_utils._use_triton.harness_compact
    assert trl_utils._use_triton is original  # restored when the block ends
    ref = reference()
    compact = loss_and_grads()
    assert trl_utils._use_triton is original  # and after the trainer's loss
    every_position = every_position_loss_and_grads()
    assert compact[0] == pytest.approx(every_position[0], rel=1e-5)
    assert len(compact[1]) == len(every_position[1]) > 0
    assert compact[0] == pytest.approx(ref[0], rel=1e-5)
    for r, a, b in zip(ref[1], compact[1], every_position[1]):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_length_batches_mix_kinds_over_the_run_with_little_padding():
    from harness.train.trainers import LengthBatches

    lengths = [40] * 100 + [200] * 300 + [420] * 19  # short chat requests, triage records, long tickets
    sampler = LengthBatches(lengths, batch_size=4, seed=0)
    order = sampler.order(0)
    assert sorted(order) == list(range(len(lengths))) and len(sampler) == len(lengths)
    assert order == LengthBatches(lengths, 4, 0).order(0) and order != sampler.order(1)  # seeded, new order per epoch
    batches = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert len(batches[-1]) == len(lengths) % 4  # the one short batch comes last
    # little padding: most batches hold one length only
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded / sum(lengths) < 1.1
    # every stretch of the run sees short records: none of the 4 quarters lacks them, none hoards them
    quarter = len(batches) // 4
    shorts = [sum(lengths[i] == 40 for b in batches[q * quarter:(q + 1) * quarter] for i in b) for q in range(4)]
    assert all(10 <= s <= 40 for s in shorts), shorts


def test_group_by_length_trainer_uses_length_batches(tiny_cfg):
    from harness.train.config import load_train_config
    from harness.train.trainers import LengthBatches, prepare

    trainer = prepare(load_train_config(tiny_cfg("lora", group_by_length=True, batch_size=2))).trainer
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthBatches)
    first = next(iter(trainer.get_train_dataloader()))
    expected = [trainer.train_dataset[i]["input_ids"] for i in sampler.order(0)[:2]]
    assert first["input_ids"].shape[0] == 2
    for row, ids in zip(first["input_ids"].tolist(), expected):
        assert row[: len(ids)] == list(ids)


@pytest.mark.parametrize("attention", ["auto", "eager"])
def test_shared_prefix_runs_once_with_the_same_loss_and_gradients(tiny_cfg, tmp_path, attention):
    # records that start with one system prompt: the backbone runs it for one row and the rest of
    # every row against its keys and values; loss and gradients equal the unshared pass's, with
    # the model's own attention (sdpa) and with eager attention (train.attention)
    import json

    from trl import SFTTrainer

    from harness.train.config import load_train_config
    from harness.train.trainers import answer_tokens_only, prepare, shared_prefix_length, shared_prefix_once

    system = "You are a careful assistant for the Nimbus support desk. Answer in one short sentence, in English."
    data = tmp_path / "system.jsonl"
    asks = [("What colour is the sky?", "Blue."), ("Name the colour of grass, please.", "Green, mostly."),
            ("Which colour is snow?", "White."), ("And the sea on a sunny day, what colour is it?", "Blue.")]
    data.write_text("".join(json.dumps({"messages": [{"role": "system", "content": system}, {"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n" for q, a in asks))
    trainer = prepare(load_train_config(tiny_cfg("lora", train_data=str(data), batch_size=4, attention=attention))).trainer
    assert trainer.model.config._attn_implementation == ("sdpa" if attention == "auto" else attention)
    batch = next(iter(trainer.get_train_dataloader()))
    shared = shared_prefix_length(batch["input_ids"], batch["attention_mask"])
    assert shared >= 16 and batch["input_ids"].shape[0] == 4
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths: the suffix pass sees padding
    model = trainer.model
    model.eval()
    backbone = model.get_base_model().model
    calls = []
    real_forward = type(backbone).forward

    def counting(self, *a, **k):
        calls.append(k.get("input_ids").shape if k.get("input_ids") is not None else None)
        return real_forward(self, *a, **k)

    def loss_and_grads(share: bool):
        model.zero_grad()
        calls.clear()
        if share:
            loss = trainer.compute_loss(model, dict(batch))
        else:
            with answer_tokens_only():
                loss = SFTTrainer.compute_loss(trainer, model, dict(batch))
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad], list(calls)

    import unittest.mock

    with unittest.mock.patch.object(type(backbone), "forward", counting):
        plain = loss_and_grads(False)
        once = loss_and_grads(True)
    length = batch["input_ids"].shape[1]
    assert plain[2] == [torch.Size([4, length])]
    assert once[2] == [torch.Size([1, shared]), torch.Size([4, length - shared])]  # the prefix once, then the rest
    assert once[0] == pytest.approx(plain[0], rel=1e-5)
    assert len(once[1]) == len(plain[1]) > 0
    for a, b in zip(once[1], plain[1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert "forward" not in vars(backbone)  # the instance's own forward is gone when the block ends
    # nothing shared, one row, or gradient checkpointing: the plain pass
    assert shared_prefix_length(batch["input_ids"][:1], batch["attention_mask"][:1]) == 0
    ids = batch["input_ids"].clone()
    ids[1, 0] = ids[0, 0] + 1
    assert shared_prefix_length(ids, batch["attention_mask"]) == 0
    model.get_base_model().gradient_checkpointing_enable()
    with unittest.mock.patch.object(type(backbone), "forward", counting), shared_prefix_once(model):
        calls.clear()
        model(**{k: v for k, v in batch.items() if k != "labels"})
    assert calls == [torch.Size([4, length])]


def test_frozen_weights_stored_in_the_autocast_dtype_keep_loss_and_gradients_bitwise(tiny_cfg):
    # autocast casts a frozen fp32 weight at every call; stored in bf16 it is used as it is, with
    # exactly the values the cast made: the same loss and gradients, bit for bit
    from harness.train.config import load_train_config
    from harness.train.trainers import frozen_weights_in_autocast_dtype, prepare

    trainer = prepare(load_train_config(tiny_cfg("lora", precision="bf16"))).trainer
    assert trainer.args.bf16
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.eval()
    base_layers = [m for n, m in model.named_modules() if n.endswith("base_layer")]
    adapter = [p for p in model.parameters() if p.requires_grad]
    before = [m.weight for m in base_layers]
    embeddings = model.get_input_embeddings().weight

    def loss_and_grads():
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        return loss.detach().clone(), [p.grad.clone() for p in adapter]

    cast_each_call = loss_and_grads()
    with frozen_weights_in_autocast_dtype(trainer) as stored:
        assert stored >= len(base_layers) > 0
        assert all(m.weight.dtype == torch.bfloat16 and not m.weight.requires_grad for m in base_layers)
        assert all(p.dtype == torch.float32 for p in adapter)  # the adapter trains in fp32 as before
        assert model.get_input_embeddings().weight is embeddings and embeddings.dtype == torch.float32
        head = model.get_output_embeddings()  # tied: a bf16 copy of its own while inside, the lookup unchanged
        assert head.weight is not embeddings and head.weight.dtype == torch.bfloat16
        assert torch.equal(head.weight, embeddings.to(torch.bfloat16))
        stored_once = loss_and_grads()
    assert torch.equal(stored_once[0], cast_each_call[0])
    assert len(stored_once[1]) == len(cast_each_call[1]) > 0
    for a, b in zip(stored_once[1], cast_each_call[1]):
        assert torch.equal(a, b)
    assert all(m.weight is w for m, w in zip(base_layers, before))  # the loaded fp32 weights are back
    assert model.get_output_embeddings().weight is embeddings  # tied again
    fp32 = prepare(load_train_config(tiny_cfg("lora", name="fp32", precision="fp32"))).trainer
    with frozen_weights_in_autocast_dtype(fp32) as stored:
        assert stored == 0  # no autocast, nothing stored differently


def test_bf16_training_runs_on_frozen_weights_stored_in_bf16(tiny_cfg):
    # the trainer's loop runs its model under autocast: a step sees the frozen weights in bf16,
    # trains, and the run ends with the weights it loaded
    from transformers import TrainerCallback

    from harness.train import train

    seen = []

    class Look(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kw):
            seen.append({p.dtype for n, p in model.named_parameters() if n.endswith("base_layer.weight")})

    result = train(tiny_cfg("lora", precision="bf16"), callbacks=[Look()], show_progress=False)
    assert seen and all(dtypes == {torch.bfloat16} for dtypes in seen)
    losses = [h["loss"] for h in result.loss_history if "loss" in h]
    assert losses and all(loss == loss and loss < 100 for loss in losses)  # finite
    assert result.manifest["precision"] == "bf16"
