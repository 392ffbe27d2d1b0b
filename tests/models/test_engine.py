"""The batch-invariant engine on the tiny model: a request's output is the same bitwise whatever
shares its batch (bf16 included), fp32 agrees with transformers' generate(), log-likelihoods
agree with the whole-sequence path while each context runs once, stop strings, fallback."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from harness.models import GenerationConfig, HFBackend
from harness.models.engine import Engine, supports
from harness.models.kernels import (
    Group,
    Part,
    Step,
    additive_mask,
    aligned_attention,
    greedy,
    grouped_attention,
    key_length,
    linear_in_blocks,
)

SYSTEM = {"role": "system", "content": "You are terse. Answer in one short line."}
REQS = [
    [SYSTEM, {"role": "user", "content": "What is the capital of France?"}],
    [SYSTEM, {"role": "user", "content": "Write a haiku about rain falling on a quiet city at night, please."}],
    [{"role": "user", "content": "Hi"}],
    [SYSTEM, {"role": "user", "content": "Name three colors."}],
    [{"role": "user", "content": "Explain, in some detail, how a bicycle gear works and why it helps going uphill."}],
    [SYSTEM, {"role": "user", "content": "2+2?"}],
    [{"role": "user", "content": "Translate 'good morning' into Spanish and French."}],
    [SYSTEM, {"role": "user", "content": "Give one tip for clean code."}],
]


def texts(cs):
    return [c.text for c in cs]


@pytest.fixture(scope="module")
def bf16(tiny_model_dir):
    return HFBackend.from_spec(str(tiny_model_dir), dtype="bfloat16")


@pytest.fixture(scope="module")
def fp32(tiny_model_dir):
    return HFBackend.from_spec(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def fp32_generate(tiny_model_dir):
    return HFBackend.from_spec(str(tiny_model_dir), dtype="float32", engine="generate")


def test_the_engine_runs_the_tiny_llama(bf16, fp32_generate):
    assert supports(bf16.model) is None
    assert bf16.identity["engine"].startswith("harness-grouped/") and bf16.identity["dtype"] == "bfloat16"
    assert fp32_generate.identity["engine"] == "transformers-generate"


def test_bf16_rows_do_not_depend_on_their_batch(bf16):
    cfg = GenerationConfig(max_new_tokens=12)
    together = texts(bf16.generate(REQS, cfg))
    alone = [bf16.generate([r], cfg)[0].text for r in REQS]
    odd, even = texts(bf16.generate(REQS[1::2], cfg)), texts(bf16.generate(REQS[0::2], cfg))
    halves = [even[i // 2] if i % 2 == 0 else odd[i // 2] for i in range(len(REQS))]
    in_waves = texts(bf16.generate(REQS, GenerationConfig(max_new_tokens=12, batch_size=3)))
    assert together == alone == halves == in_waves
    assert len(set(together)) > 3  # the prompts give different outputs: the comparison can fail


def test_fp32_engine_agrees_with_transformers_generate(fp32, fp32_generate):
    cfg = GenerationConfig(max_new_tokens=12)
    engine, hf = fp32.generate(REQS, cfg), fp32_generate.generate(REQS, cfg)
    assert texts(engine) == texts(hf)
    assert [c.completion_tokens for c in engine] == [c.completion_tokens for c in hf]
    assert [c.finish_reason for c in engine] == [c.finish_reason for c in hf]


def test_lora_rows_do_not_depend_on_their_batch_and_disabling_restores(tiny_model_dir, tmp_path):
    from tests.conftest import make_adapter

    backend = HFBackend.from_spec(str(tiny_model_dir), dtype="bfloat16")
    cfg = GenerationConfig(max_new_tokens=10)
    base = texts(backend.generate(REQS, cfg))
    backend.load_adapter(make_adapter(tiny_model_dir, tmp_path / "lora", "lora"))
    tuned = texts(backend.generate(REQS, cfg))
    assert tuned != base
    assert [backend.generate([r], cfg)[0].text for r in REQS] == tuned
    backend.set_adapter(None)
    assert texts(backend.generate(REQS, cfg)) == base


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_fused_lora_gives_peft_s_numbers(tiny_model_dir, tmp_path, monkeypatch, dtype):
    # the engine stacks each LoRA's A under the base weight (one product for both): the outputs of
    # peft's own forward, and its log-likelihoods (bitwise in bf16; fp32 products of another width
    # round differently, ~1e-7 relative)
    import harness.models.engine as engine_module
    from harness.models.kernels import FusedLora
    from tests.conftest import make_adapter

    backend = HFBackend.from_spec(str(tiny_model_dir), dtype=dtype)
    backend.load_adapter(make_adapter(tiny_model_dir, tmp_path / "lora", "lora"))
    cfg = GenerationConfig(max_new_tokens=10)
    pairs = [(REQS[0], "Paris."), (REQS[0], "Rome, I think."), (REQS[2], "Hello!")]

    def run():
        return texts(backend.generate(REQS, cfg)), backend.loglikelihood(pairs)

    fused = run()
    eng = backend._grouped()
    assert len(eng._fused) == 2 * 3 and all(isinstance(f, FusedLora) for f in eng._fused.values())  # 2 layers x 3 modules
    monkeypatch.setattr(engine_module, "lora_adapter", lambda m: None)  # peft's forward for every LoRA layer
    backend._engine = None
    plain = run()
    assert not backend._grouped()._fused
    assert fused[0] == plain[0] and len(set(fused[0])) > 3
    if dtype == "bfloat16":
        assert [r.logprob for r in fused[1]] == [r.logprob for r in plain[1]]
    else:
        assert [r.logprob for r in fused[1]] == pytest.approx([r.logprob for r in plain[1]], rel=1e-6, abs=0)
    assert [r.is_greedy for r in fused[1]] == [r.is_greedy for r in plain[1]]
    monkeypatch.undo()
    backend._engine = None
    assert run() == fused  # the engine built again: fused again
    # a changed adapter weight is picked up (the stacked weight is built again)
    lora_b = next(p for n, p in backend.model.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        lora_b.mul_(0)
    changed = texts(backend.generate(REQS, cfg))
    assert changed != fused[0]
    monkeypatch.setattr(engine_module, "lora_adapter", lambda m: None)
    backend._engine = None
    assert texts(backend.generate(REQS, cfg)) == changed


def test_the_shared_prefix_is_the_chat_template_head(fp32):
    ids = [fp32.encode(m) for m in REQS[:2]]
    p = [fp32.prefix_length(m, e) for m, e in zip(REQS[:2], ids)]
    assert p[0] == p[1] > 0 and ids[0][: p[0]] == ids[1][: p[1]]
    head = fp32.tokenizer.decode(ids[0][: p[0]])
    assert SYSTEM["content"] in head and "capital" not in head
    assert fp32.prefix_length([{"role": "user", "content": ""}], [1, 2, 3]) == 0


def test_loglikelihood_equals_whole_sequences_and_runs_each_context_once(fp32, fp32_generate):
    q = [SYSTEM, {"role": "user", "content": "Where would you keep ice cream so it stays frozen?"}]
    pairs = [(q, c) for c in ("In the freezer.", "In the oven.", "On a bookshelf, next to the old atlas.", " A")]
    pairs += [([{"role": "user", "content": p}], c) for p in ("Hi", "Is 17 prime?") for c in ("Yes.", " no", "Maybe, I think.")]
    calls = []
    eng = fp32._grouped()
    real = eng._prefill

    def counting(g, seqs, region, pad_id, keep_all=False):
        calls.append(len(seqs))
        return real(g, seqs, region, pad_id, keep_all)

    eng._prefill = counting
    try:
        got = fp32.loglikelihood(pairs)
    finally:
        eng._prefill = real
    want = fp32_generate.loglikelihood(pairs)
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in want], abs=1e-4)
    assert [r.is_greedy for r in got] == [r.is_greedy for r in want]
    assert [r.n_tokens for r in got] == [r.n_tokens for r in want]
    # stage one: the three distinct contexts; then continuation tokens after the first
    assert sum(calls[:1]) <= 3 and sum(calls) < 2 * len(pairs)


def test_bf16_loglikelihood_does_not_depend_on_its_batch(bf16):
    q = [SYSTEM, {"role": "user", "content": "Pick one."}]
    pairs = [(q, c) for c in ("red", "green apples", "a blue whale")] + [([{"role": "user", "content": "Hi"}], "Hello there")]
    together = [r.logprob for r in bf16.loglikelihood(pairs)]
    alone = [bf16.loglikelihood([p])[0].logprob for p in pairs]
    assert together == alone


@pytest.mark.parametrize("which", ["fp32", "fp32_generate"])
def test_stop_strings_end_generation_and_are_left_out(which, request):
    backend = request.getfixturevalue(which)
    full = backend.generate(REQS, GenerationConfig(max_new_tokens=16))
    long = next(c for c in full if len(c.text) > 12)
    stop = long.text[6:9]
    cut = backend.generate(REQS, GenerationConfig(max_new_tokens=16, stop=(stop,)))
    for f, c in zip(full, cut):
        want = f.text[: f.text.find(stop)] if stop in f.text else f.text
        assert c.text == want
        assert c.completion_tokens <= f.completion_tokens
        if stop in f.text:
            assert c.finish_reason == "stop" and c.completion_tokens < f.completion_tokens or f.text.endswith(stop)
    assert GenerationConfig(stop=(stop,)).cache_key() != GenerationConfig().cache_key()


@torch.no_grad()
def test_linear_blocks_equal_linear_and_rows_are_independent_in_bf16():
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 40)
    x = torch.randn(300, 96)
    got = linear_in_blocks(lin, [64, False], {}, x)
    torch.testing.assert_close(got, torch.nn.functional.linear(x, lin.weight, lin.bias), atol=1e-5, rtol=1e-5)
    lin = lin.to(torch.bfloat16)
    xb = x.to(torch.bfloat16)
    ref = torch.stack([linear_in_blocks(lin, [64, False], {}, xb[i:i + 1])[0] for i in range(70)])
    for m in (2, 63, 64, 65, 300):
        assert torch.equal(linear_in_blocks(lin, [64, False], {}, xb[:m])[: min(m, 70)], ref[: min(m, 70)]), m


def _attend(q, k, v, rows: int, real: int) -> torch.Tensor:
    """`rows` copies of one decode row through grouped_attention: `real` filled slots of k/v,
    the rest up to the padded key length masked."""
    length, dim = k.shape[2], q.shape[-1]
    valid = torch.zeros(rows, length, dtype=torch.bool)
    valid[:, :real] = True
    group = Group(keys=[k.repeat(rows, 1, 1, 1)], values=[v.repeat(rows, 1, 1, 1)], valid=valid, filled=real - 1,
                  positions=torch.full((rows,), real - 1), members=list(range(rows)))
    step = Step([Part(slice(0, rows), group, real - 1, slice(None), additive_mask(valid[:, None, None, :], q.dtype))])
    out, _ = grouped_attention(SimpleNamespace(layer_idx=0), q.repeat(rows, 1, 1, 1), k[:, :, real - 1:real].repeat(rows, 1, 1, 1),
                               v[:, :, real - 1:real].repeat(rows, 1, 1, 1), None, scaling=dim ** -0.5, harness_step=step)
    return out


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


# (seed, keys) of rows that came out differently on the second thread before the padding: the first
# seen in the demo, the others found among 20,000 seeded rows at 150-199 keys (6 of them)
THREAD_SENSITIVE = [(1621, 171), (226, 152), (20, 168), (105, 176), (347, 189), (89, 197), (383, 199)]


@torch.no_grad()
@pytest.mark.parametrize("seed,real", THREAD_SENSITIVE)
def test_attention_rows_do_not_depend_on_the_thread_they_run_on(two_threads, seed, real):
    """torch's CPU flash attention gave a row one bf16 ulp more or less on its second thread than
    on its first (torch 2.13, 2 threads; first seen as a demo case whose text changed between its
    batch and batch 1): each thread's scratch was aligned differently. These seeded rows are ones
    where it did (3 query heads per key/value head): the same row twice in one call, one copy per
    thread, and alone. The engine pads queries and keys so that every thread's scratch aligns."""
    g = torch.Generator().manual_seed(seed)
    kv, heads, dim = 3, 9, 64
    q = (torch.randn(1, heads, 1, dim, generator=g) * 3).bfloat16()
    k = (torch.randn(1, kv, real, dim, generator=g) * 3).bfloat16()
    v = torch.randn(1, kv, real, dim, generator=g).bfloat16()
    pad = key_length(real) - real
    k, v = (torch.cat([x, x.new_zeros(1, kv, pad, dim)], 2) for x in (k, v))
    alone, two = _attend(q, k, v, 1, real), _attend(q, k, v, 2, real)
    assert torch.get_num_threads() == 2
    assert torch.equal(two[0], two[1])
    assert torch.equal(two[0], alone[0])


@torch.no_grad()
def test_prefill_attention_rows_agree_across_threads(two_threads):
    """The prefill path (13 queries, padded to 16; 101 real keys, padded to 104): the same row
    three times in one call, spread over both threads, equals the row alone. A guard only: these
    inputs agree unpadded too (no prefill row that differed between threads is known)."""
    g = torch.Generator().manual_seed(7)
    n, real, kv, heads, dim = 13, 101, 3, 9, 64
    length = key_length(real)
    q = (torch.randn(1, heads, n, dim, generator=g) * 3).bfloat16()
    k = (torch.randn(1, kv, length, dim, generator=g) * 3).bfloat16()
    v = torch.randn(1, kv, length, dim, generator=g).bfloat16()
    qi, ki = torch.arange(real - n, real), torch.arange(length)
    allowed = (ki[None, :] <= qi[:, None]) & (ki[None, :] < real)
    mask = additive_mask(allowed, torch.bfloat16)[None, None]
    alone = aligned_attention(q, k, v, mask, dim ** -0.5)
    three = aligned_attention(q.repeat(3, 1, 1, 1), k.repeat(3, 1, 1, 1), v.repeat(3, 1, 1, 1), mask.repeat(3, 1, 1, 1), dim ** -0.5)
    assert alone.shape == (1, heads, n, dim)
    assert all(torch.equal(three[r], alone[0]) for r in range(3))


def test_attention_refuses_keys_the_engine_did_not_pad():
    q, k = torch.zeros(1, 9, 1, 64), torch.zeros(1, 3, 171, 64)
    with pytest.raises(ValueError, match="multiple of 4"):
        aligned_attention(q, k, k, torch.zeros(1, 1, 1, 171), 0.125)


def test_a_request_timed_alone_runs_with_products_sized_to_it(bf16):
    """`timed` (a latency sample) uses an engine whose products are as they come, never the
    batch-invariant engine's blocks; the backend's identity (cache keys) stays the batch-invariant one."""
    cfg = GenerationConfig(max_new_tokens=8, batch_size=1)
    name = bf16.identity["engine"]
    [timed] = bf16.generate([REQS[0]], dataclasses.replace(cfg, timed=True))
    assert timed.completion_tokens > 0 and timed.latency_s > 0
    assert bf16._timing_engine is not None and "rows as they come" in bf16._timing_engine.name
    assert bf16._timing_engine is not bf16._grouped() and bf16.identity["engine"] == name and "rows 512/64" in name
    assert bf16._timing_engine._packed is bf16._grouped()._packed  # the reordered weights are shared, not copied
    # outside the latency pass nothing changes: batches run on the fixed-block engine
    assert bf16.generate([REQS[0]], cfg)[0].text == bf16.generate(REQS[:3], GenerationConfig(max_new_tokens=8))[0].text


@torch.no_grad()
def test_products_as_they_come_equal_linear():
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 40)
    x = torch.randn(3, 7, 96)
    torch.testing.assert_close(linear_in_blocks(lin, [0, False], {}, x), torch.nn.functional.linear(x, lin.weight, lin.bias))


def test_greedy_takes_the_first_maximum_like_argmax():
    torch.manual_seed(0)
    x = (torch.randn(40, 5000) * 2).round().to(torch.bfloat16)  # many ties
    for n in (1, 7, 40):
        assert torch.equal(greedy(x[:n]), x[:n].float().argmax(-1))


def test_a_model_the_engine_does_not_know_falls_back_to_generate(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.models import load_tokenizer, resolve

    tok = load_tokenizer(resolve("smollm2-135m-instruct").path)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=1, n_head=2,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    tok.save_pretrained(tmp_path / "gpt2")
    backend = HFBackend.from_spec(str(tmp_path / "gpt2"), dtype="float32")
    assert "gpt2" in supports(backend.model)
    assert backend.identity["engine"] == "transformers-generate"
    [c] = backend.generate([REQS[0]], GenerationConfig(max_new_tokens=4))
    assert c.completion_tokens >= 1


def test_engine_name_carries_the_settings_that_change_rounding(fp32):
    a, b = Engine(fp32.model, decode_rows=64), Engine(fp32.model, decode_rows=32)
    assert a.name != b.name and "64" in a.name
