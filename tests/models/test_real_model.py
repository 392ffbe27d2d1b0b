"""The real embedded SmolLM2-135M-Instruct: batching is invisible in outputs and log-likelihoods."""

from __future__ import annotations

import pytest

from harness.models import GenerationConfig

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "What is 12 times 11?",
    "Name three primary colors.",
    "Explain gravity in one sentence.",
    "Hi!",
    "Translate 'good morning' into Spanish.",
    "Give one tip for writing clean Python code.",
    "Summarise in five words: the meeting moved from Monday to Tuesday afternoon because the room was booked.",
    "Is 17 a prime number? Answer yes or no.",
    "Reply with only a JSON object with keys name and age for Alice, 30.",
    "List two benefits of exercise.",
    "What colour is the sky on a clear day?",
    "Write a one-line slogan for a coffee shop.",
    "Who wrote Romeo and Juliet?",
    "How many legs does a spider have?",
    "My order arrived broken. Write a short apology as the support agent.",
    "What is the boiling point of water in Celsius?",
]


def test_real_batched_greedy_equals_one_by_one(real_backend):
    reqs = [[{"role": "user", "content": p}] for p in PROMPTS]
    batched = real_backend.generate(reqs, GenerationConfig(max_new_tokens=24, batch_size=len(reqs)))
    single = real_backend.generate(reqs, GenerationConfig(max_new_tokens=24, batch_size=1))
    assert [c.text for c in batched] == [c.text for c in single]
    # and the model is the model, not noise: known answers in most of the outputs (one may flip
    # with the numerics: bf16 on an AVX512-BF16 CPU without AMX answers France with a song)
    known = {0: "Paris", 3: "Red", 5: "Hello", 14: "Shakespeare", 17: "100"}
    assert sum(word in batched[i].text for i, word in known.items()) >= 4, [batched[i].text for i in known]


def test_real_loglikelihood_batch_equals_batch_one(real_backend):
    q = [{"role": "user", "content": "Where would you keep ice cream so it stays frozen?"}]
    pairs = [(q, c) for c in ("In the freezer.", "In the oven.", "On a bookshelf.", "In the mailbox.")]
    pairs += [([{"role": "user", "content": p}], "Yes.") for p in PROMPTS[:8]]
    a = real_backend.loglikelihood(pairs, batch_size=len(pairs))
    b = real_backend.loglikelihood(pairs, batch_size=1)
    assert [x.logprob for x in a] == pytest.approx([x.logprob for x in b], abs=1e-4)
    # the model knows where ice cream goes
    assert max(range(4), key=lambda i: a[i].logprob) == 0


def test_real_lora_changes_outputs_and_disabling_restores(tmp_path):
    from harness.models import HFBackend, resolve
    from tests.conftest import make_adapter

    backend = HFBackend.from_spec("smollm2-135m-instruct")
    reqs = [[{"role": "user", "content": p}] for p in PROMPTS[:6]]
    cfg = GenerationConfig(max_new_tokens=16, batch_size=6)
    base = [c.text for c in backend.generate(reqs, cfg)]
    backend.load_adapter(make_adapter(resolve("smollm2-135m-instruct").path, tmp_path / "lora", "lora"))
    tuned = [c.text for c in backend.generate(reqs, cfg)]
    assert tuned != base
    backend.set_adapter(None)
    assert [c.text for c in backend.generate(reqs, cfg)] == base
