"""The HF backend on the tiny model: batching never changes results, adapters switch cleanly."""

from __future__ import annotations

import pytest

from harness.models import GenerationConfig

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "2+2=?",
    "Name three colors of the rainbow, please, in order.",
    "Explain gravity in one sentence.",
    "Hi",
    "Translate 'cat' to Spanish.",
    "What is Python? Answer briefly and give one example of where it is used in industry today.",
    "Summarise: the meeting moved to Tuesday.",
    "Is 17 prime?",
]


def chat(p):
    return [{"role": "user", "content": p}]


REQS = [chat(p) for p in PROMPTS]


def texts(completions):
    return [c.text for c in completions]


def test_batched_generation_equals_one_by_one(tiny_backend):
    cfg = GenerationConfig(max_new_tokens=12)
    batched = tiny_backend.generate(REQS, GenerationConfig(max_new_tokens=12, batch_size=len(REQS)))
    single = tiny_backend.generate(REQS, GenerationConfig(max_new_tokens=12, batch_size=1))
    assert texts(batched) == texts(single)
    # the random model does not emit one constant string: the comparison above means something
    assert len(set(texts(batched))) > 3
    assert [c.prompt_tokens for c in batched] == [len(tiny_backend.encode(r)) for r in REQS]
    assert all(0 < c.completion_tokens <= cfg.max_new_tokens for c in batched)


def test_results_come_back_in_input_order(tiny_backend):
    cfg = GenerationConfig(max_new_tokens=8, batch_size=3)
    forward = tiny_backend.generate(REQS, cfg)
    backward = tiny_backend.generate(REQS[::-1], cfg)
    assert texts(forward) == texts(backward)[::-1]


def test_loglikelihood_batch_equals_batch_one(tiny_backend):
    pairs = [(REQS[0], "Paris"), (REQS[0], "London is the answer"), (REQS[2], "4"), (REQS[5], "Hello there, friend!")]
    a = tiny_backend.loglikelihood(pairs, batch_size=4)
    b = tiny_backend.loglikelihood(pairs, batch_size=1)
    for x, y in zip(a, b):
        assert x.logprob == pytest.approx(y.logprob, abs=1e-4)
        assert x.is_greedy == y.is_greedy
        assert x.logprob < 0
    assert a[0].n_tokens >= 1 and a[1].n_tokens > a[0].n_tokens


def test_loglikelihood_greedy_flag_matches_generation(tiny_backend):
    [c] = tiny_backend.generate([REQS[3]], GenerationConfig(max_new_tokens=3))
    if len(tiny_backend.tokenizer(c.text, add_special_tokens=False)["input_ids"]) != c.completion_tokens:
        pytest.skip("the generated text does not re-tokenise to the same tokens")
    [greedy] = tiny_backend.loglikelihood([(REQS[3], c.text)])
    [other] = tiny_backend.loglikelihood([(REQS[3], c.text + " zebra")])
    assert greedy.is_greedy
    assert not other.is_greedy or other.logprob < greedy.logprob


def test_auto_batch_size_follows_memory_budget(tiny_backend):
    small = tiny_backend.auto_batch_size(512, budget=2 * 1024**2)
    large = tiny_backend.auto_batch_size(512, budget=4 * 1024**3)
    assert 1 <= small < large <= 32


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    from tests.conftest import make_adapter

    root = tmp_path_factory.mktemp("adapters")
    return {
        "lora": make_adapter(tiny_model_dir, root / "lora", "lora", seed=1),
        "lora2": make_adapter(tiny_model_dir, root / "lora2", "lora", seed=2),
    }


def test_an_active_adapter_puts_peft_s_version_in_the_identity(tiny_model_dir, adapters):
    """peft's code runs an adapter (0.21 and 0.22 generate different text for one prefix
    adapter): its version is in an adapter's cache keys and compared by the gate; the base's
    identity is the same with or without adapters loaded."""
    import peft

    from harness.evals.results import identity_differences
    from harness.models import HFBackend

    backend = HFBackend.from_spec(str(tiny_model_dir))
    bare = backend.identity
    backend.load_adapter(adapters["lora"])
    tuned = backend.identity
    assert tuned["peft"] == peft.__version__ and tuned == {**bare, "peft": peft.__version__}
    backend.set_adapter(None)
    assert backend.identity == bare
    assert identity_differences(tuned, {**tuned, "peft": "0.21.2"}) == ["peft"]
    assert identity_differences(tuned, bare) == []  # base against candidate: not a difference


def test_adapter_changes_outputs_and_disabling_restores_base(tiny_model_dir, adapters):
    from harness.models import HFBackend

    backend = HFBackend.from_spec(str(tiny_model_dir))
    cfg = GenerationConfig(max_new_tokens=10)
    base = texts(backend.generate(REQS, cfg))
    base_ll = backend.loglikelihood([(REQS[0], "Paris")])[0].logprob

    first = backend.load_adapter(adapters["lora"])
    tuned = texts(backend.generate(REQS, cfg))
    assert tuned != base
    second = backend.load_adapter(adapters["lora2"])
    tuned2 = texts(backend.generate(REQS, cfg))
    assert tuned2 != tuned and tuned2 != base

    backend.set_adapter(first)
    assert texts(backend.generate(REQS, cfg)) == tuned
    assert len(backend.adapter_hash) == 64

    backend.set_adapter(None)
    assert texts(backend.generate(REQS, cfg)) == base
    assert backend.loglikelihood([(REQS[0], "Paris")])[0].logprob == base_ll
    assert backend.adapter_hash is None
    backend.set_adapter(second)
    assert texts(backend.generate(REQS, cfg)) == tuned2
    # loading an adapter that is already loaded makes it active again (the pipeline's candidate
    # stage loads the adapter its checkpoint selection loaded and then switched off)
    backend.set_adapter(None)
    assert backend.load_adapter(adapters["lora"]) == first and backend.active_adapter == first
    assert texts(backend.generate(REQS, cfg)) == tuned


def test_prompt_tuning_batches_equal_one_by_one(tiny_model_dir, tmp_path):
    """Prompt tuning shifts with left padding; the backend groups equal lengths instead."""
    from harness.models import HFBackend
    from tests.conftest import make_adapter

    backend = HFBackend.from_spec(str(tiny_model_dir))
    cfg = GenerationConfig(max_new_tokens=8)
    base = texts(backend.generate(REQS, cfg))
    backend.load_adapter(make_adapter(tiny_model_dir, tmp_path / "pt", "prompt_tuning"))
    batched = texts(backend.generate(REQS, GenerationConfig(max_new_tokens=8, batch_size=8)))
    single = texts(backend.generate(REQS, GenerationConfig(max_new_tokens=8, batch_size=1)))
    assert batched == single
    assert batched != base
    ll_b = backend.loglikelihood([(r, "yes") for r in REQS], batch_size=8)
    ll_1 = backend.loglikelihood([(r, "yes") for r in REQS], batch_size=1)
    assert [x.logprob for x in ll_b] == pytest.approx([x.logprob for x in ll_1], abs=1e-4)


def test_adapter_folder_without_safetensors_is_refused(tiny_backend, tmp_path):
    from harness.errors import ModelSpecError

    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelSpecError, match="safetensors only"):
        tiny_backend.load_adapter(tmp_path)


def test_plan_batches_splits_off_long_prompts_and_keeps_every_index():
    from harness.models.batching import plan_batches

    lengths = [369, 329, 289, 266, 259, 254, 252, 246] + [172, 158, 155, 150, 147, 143, 139, 127] * 3
    plan = plan_batches(lengths, 32, 80)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    assert len(plan) == 2 and {lengths[i] for i in plan[0]} == set(lengths[:8])  # the long ones pad only each other
    # similar lengths: one full batch; a batch never exceeds the cap
    assert len(plan_batches([50, 48, 47, 45] * 8, 32, 48)) == 1
    assert all(len(b) <= 5 for b in plan_batches(lengths, 5, 80))
    # on a GPU a decode step's fixed cost dominates: one batch
    assert len(plan_batches(lengths, 32, 80, on_gpu=True)) == 1
