import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from course_lib import attention as att
from course_lib import ddp_demo, models
from course_lib import efficiency as eff


def qkv(B=2, H=3, T=5, S=5, D=4, Dv=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, H, T, D, generator=g, dtype=dtype),
        torch.randn(B, H, S, D, generator=g, dtype=dtype),
        torch.randn(B, H, S, Dv, generator=g, dtype=dtype),
    )


# --- online-softmax attention ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding", "random"])
def test_online_softmax_equals_pytorch(seed, mask_kind):
    g = torch.Generator().manual_seed(seed)
    B, H = torch.randint(1, 4, (2,), generator=g).tolist()
    T, S = torch.randint(1, 40, (2,), generator=g).tolist()
    if mask_kind == "causal":
        S = T
    D, Dv = torch.randint(1, 9, (2,), generator=g).tolist()
    q, k, v = qkv(B, H, T, S, D, Dv, seed=seed)
    mask = {
        "none": None,
        "causal": att.causal_mask(T),
        "padding": att.padding_mask(torch.randint(0, S + 1, (B,), generator=g), S),  # a row may be empty
        "random": torch.rand(B, 1, T, S, generator=g) < 0.3,  # some rows have no allowed key
    }[mask_kind]
    block, query_block = torch.randint(1, 17, (2,), generator=g).tolist()  # rarely divide T or S
    out = eff.online_softmax_attention(q, k, v, mask, block_size=block, query_block_size=query_block)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(eff.online_softmax_attention(q, k, v, mask, block_size=block), expected)


def test_online_softmax_fully_masked_rows_are_zero_and_gradients_match():
    q, k, v = (x.requires_grad_() for x in qkv(T=7, S=11))
    mask = torch.rand(7, 11, generator=torch.Generator().manual_seed(1)) < 0.5
    mask[2] = False  # query 2 may attend to nothing
    mask[4, :5] = False  # query 4 only to keys of the later blocks
    out = eff.online_softmax_attention(q, k, v, mask, block_size=3, query_block_size=2)
    assert not out.isnan().any() and (out[:, :, 2] == 0).all()
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected.square().sum(), (q, k, v))
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_online_softmax_survives_scores_that_overflow_exp():
    q, k, v = qkv(T=4, S=9, dtype=torch.float32)
    q = q * 200  # scores in the thousands: exp() of an unshifted score is inf
    out = eff.online_softmax_attention(q, k, v, block_size=2)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


def test_online_softmax_never_holds_the_score_matrix():
    T, block = 1024, 64
    q, k, v = qkv(1, 2, T, T, 16, 16, dtype=torch.float32)
    scores = eff.attention_scores_bytes(1, 2, T, T)  # 8 MiB
    naive = eff.peak_memory_bytes(lambda: att.scaled_dot_product_attention(q, k, v))
    blocked = eff.peak_memory_bytes(
        lambda: eff.online_softmax_attention(q, k, v, block_size=block, query_block_size=block)
    )
    assert naive >= 2 * scores  # the scores and the softmax weights
    assert blocked < scores / 8  # measured: ~0.5 MiB (the output, q and a few 64 x 64 blocks)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (
            (torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)),
            {},
            ValueError,
            "q: expected a 4-D tensor",
        ),
        (qkv(S=6)[:2] + (qkv(S=5)[2],), {}, ValueError, r"q, k, v: expected \(B, H, T, D\)"),
        ((qkv()[0], qkv(H=2)[1], qkv(H=2)[2]), {}, ValueError, r"q, k, v: expected \(B, H, T, D\)"),
        (qkv(), {"mask": torch.ones(5, 5)}, TypeError, "mask: expected dtype torch.bool"),
        (qkv(H=2), {"mask": torch.ones(2, 5, 5, dtype=torch.bool)}, ValueError, "mask: a 3-D mask"),
        (qkv(), {"mask": torch.ones(4, 5, dtype=torch.bool)}, ValueError, "mask: expected a shape that"),
        (qkv(), {"block_size": 0}, ValueError, "block_size: expected a positive int, got 0"),
        (qkv(), {"query_block_size": 1.5}, TypeError, "query_block_size: expected a positive int"),
        ((qkv()[0].long(),) + qkv()[1:], {}, TypeError, "q: expected dtype"),
    ],
)
def test_online_softmax_rejects_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        eff.online_softmax_attention(*args, **kwargs)


# --- memory ------------------------------------------------------------------------------


def test_peak_memory_is_the_most_held_at_once():
    def one_after_the_other():
        a = torch.ones(2**18)  # 1 MiB
        del a
        b = torch.ones(2**19)  # 2 MiB
        del b

    def together():
        return torch.ones(2**18), torch.ones(2**19)

    assert eff.peak_memory_bytes(one_after_the_other) == 2**21
    assert eff.peak_memory_bytes(together) == 3 * 2**20
    assert eff.peak_memory_bytes(lambda: None) == 0
    with pytest.raises(ValueError, match="device: the profiler records allocations on 'cpu' and 'cuda'"):
        eff.peak_memory_bytes(lambda: None, "meta")


def test_peak_memory_prints_nothing_and_restores_stderr():
    # The profiler's C++ library writes "profiler_start/stop" lines to file descriptor 2, which a
    # notebook would show; peak_memory_bytes silences them and must give descriptor 2 back after.
    code = (
        "import os, torch\n"
        "from course_lib import efficiency as eff\n"
        "assert eff.peak_memory_bytes(lambda: torch.ones(256)) == 1024\n"
        "try:\n"
        "    eff.peak_memory_bytes(lambda: 1 / 0)\n"
        "except ZeroDivisionError:\n"
        "    pass\n"
        "os.write(2, b'stderr is back\\n')\n"
    )
    root = Path(eff.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stderr == "stderr is back\n"


def test_attention_scores_bytes():
    assert eff.attention_scores_bytes(2, 3, 5, 7) == 2 * 3 * 5 * 7 * 4
    assert eff.attention_scores_bytes(1, 1, 8, 8, torch.bfloat16) == 128
    with pytest.raises(ValueError, match="n_keys: expected a positive int, got 0"):
        eff.attention_scores_bytes(1, 1, 1, 0)
    with pytest.raises(TypeError, match="dtype: expected a torch.dtype"):
        eff.attention_scores_bytes(1, 1, 1, 1, "float32")


# --- cached generation -------------------------------------------------------------------------


def tiny_lm(position="learned", **kwargs):
    torch.manual_seed(0)
    config = models.TinyLMConfig(30, d_model=16, n_heads=4, d_ff=32, max_len=40, position=position, **kwargs)
    return models.TinyLM(config)


@pytest.mark.parametrize("position", models.POSITIONS)
def test_cached_forward_equals_the_full_pass(position):
    model = tiny_lm(position, n_kv_heads=2).eval()
    idx = torch.randint(30, (2, 12))
    full, _ = model(idx)
    caches = [att.KVCache() for _ in model.blocks]
    pieces = [model(idx[:, :5], caches=caches)[0]]  # a prompt of 5, then 3, then one at a time
    pieces.append(model(idx[:, 5:8], caches=caches)[0])
    pieces += [model(idx[:, t : t + 1], caches=caches)[0] for t in range(8, 12)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)
    assert [cache.length for cache in caches] == [12, 12]


@pytest.mark.parametrize("position", models.POSITIONS)
def test_cached_generation_gives_the_same_tokens(position):
    model = tiny_lm(position)
    model.train()
    prompt = torch.randint(30, (3, 4))
    uncached = eff.generate(model, prompt, 20, use_cache=False)
    cached = eff.generate(model, prompt, 20, use_cache=True)
    assert uncached.shape == (3, 24) and torch.equal(uncached[:, :4], prompt)
    assert torch.equal(cached, uncached)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():  # greedy: each new token is the argmax after the tokens before it
        for t in range(4, 24):
            assert torch.equal(model(uncached[:, :t])[0][:, -1].argmax(-1), uncached[:, t])


def test_tiny_lm_checks_its_caches():
    model = tiny_lm("learned")
    idx = torch.randint(30, (1, 3))
    with pytest.raises(ValueError, match=r"caches: expected one KVCache per block \(2\), got 1"):
        model(idx, caches=[att.KVCache()])
    with pytest.raises(TypeError, match=r"caches: expected a list of KVCache, one per block, got \['dict'"):
        model(idx, caches=[{}, {}])
    caches = [att.KVCache(), att.KVCache()]
    model.blocks[0](torch.randn(1, 2, 16), att.causal_mask(2), cache=caches[0])
    with pytest.raises(ValueError, match=r"caches: expected caches of one length, got lengths \[0, 2\]"):
        model(idx, caches=caches)
    caches = [att.KVCache(), att.KVCache()]
    model(torch.randint(30, (1, 39)), caches=caches)
    with pytest.raises(ValueError, match="max_len=40, got 3 tokens after 39 cached ones"):
        model(idx, caches=caches)


def test_generate_rejects_bad_input():
    model = tiny_lm()
    prompt = torch.randint(30, (1, 3))
    with pytest.raises(TypeError, match="model: expected a TinyLM"):
        eff.generate(torch.nn.Linear(2, 2), prompt, 3, use_cache=True)
    with pytest.raises(TypeError, match="prompt: expected dtype"):
        eff.generate(model, prompt.float(), 3, use_cache=True)
    with pytest.raises(ValueError, match="prompt: expected at least one token"):
        eff.generate(model, prompt[:, :0], 3, use_cache=True)
    with pytest.raises(ValueError, match="n_new: expected a positive int, got 0"):
        eff.generate(model, prompt, 0, use_cache=True)
    with pytest.raises(TypeError, match="use_cache: expected a bool"):
        eff.generate(model, prompt, 3, use_cache="yes")


# --- the recurrent layer and timing -----------------------------------------------------------


def test_stepwise_gru_equals_pytorch_gru():
    ours = eff.StepwiseGRU(6)
    reference = torch.nn.GRU(6, 6, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(ours.cell.weight_ih)
        reference.weight_hh_l0.copy_(ours.cell.weight_hh)
        reference.bias_ih_l0.copy_(ours.cell.bias_ih)
        reference.bias_hh_l0.copy_(ours.cell.bias_hh)
    x = torch.randn(2, 9, 6)
    torch.testing.assert_close(ours(x), reference(x)[0])
    with pytest.raises(ValueError, match="x: expected a 3-D tensor"):
        ours(torch.randn(9, 6))


def test_time_fn_is_the_median_after_warmup():
    durations = iter([0.3, 0.02, 0.3, 0.02, 0.02])  # the warmup call, then one slow call of 4

    def fn():
        time.sleep(next(durations))

    assert 0.02 <= eff.time_fn(fn, repeats=4, warmup=1) < 0.1
    with pytest.raises(ValueError, match="repeats: expected a positive int, got 0"):
        eff.time_fn(fn, repeats=0)
    with pytest.raises(TypeError, match="warmup: expected an int >= 0"):
        eff.time_fn(fn, warmup=0.5)


# --- FLOPs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"n_kv_heads": 1, "n_layers": 3}, {"d_model": 24, "n_heads": 3, "d_ff": 40, "position": "rope"}],
)
def test_flop_formula_equals_the_flop_counter(kwargs):
    torch.manual_seed(0)
    config = models.TinyLMConfig(**{"vocab_size": 50, "d_model": 32, "n_heads": 4, "d_ff": 64, **kwargs})
    model = models.TinyLM(config)
    B, T = 3, 20
    idx = torch.randint(50, (B, T))
    counted = eff.count_flops(lambda: model(idx))
    assert counted == B * T * eff.transformer_flops_per_token(config, T)
    training = eff.count_flops(lambda: model(idx, idx)[1].backward())  # the backward pass: 2 x forward
    assert training == B * T * eff.transformer_flops_per_token(config, T, training=True)
    matmul_weights = sum(
        module.weight.numel() for module in model.blocks.modules() if isinstance(module, torch.nn.Linear)
    )
    assert eff.non_embedding_params(config) == matmul_weights


def test_count_flops_and_matmul_throughput():
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    assert eff.count_flops(lambda: a @ b) == 2 * 5 * 7 * 3
    assert eff.matmul_flops_per_second(64, repeats=2) > 1e6
    with pytest.raises(TypeError, match="config: expected a TinyLMConfig"):
        eff.transformer_flops_per_token({"d_model": 8}, 4)
    with pytest.raises(ValueError, match="seq_len: expected a positive int"):
        eff.transformer_flops_per_token(tiny_lm().config, 0)


# --- data parallelism ----------------------------------------------------------------------------


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is unavailable",
)
def test_ddp_on_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    path = ddp_demo.launch(tmp_path, n_processes=2)  # ~10 s, mostly two processes importing torch
    ddp_model, metadata = ddp_demo.load_result(path)
    assert metadata == {"world_size": 2, "backend": "gloo", "steps": ddp_demo.STEPS}
    one = ddp_demo.train_one_process()
    assert max_difference(ddp_model, one) < 1e-9  # float64; seeds 0-7: below 1e-13
    assert max_difference(one, ddp_demo.make_model()) > 0.05  # training moved them: 0.11-0.16
    shard_only = ddp_demo.make_model()  # what a rank would learn without averaging the gradients
    ddp_demo.fit(shard_only, ddp_demo.shard(ddp_demo.global_batch(), 0, 2))
    assert max_difference(shard_only, one) > 0.01  # seeds 0-7: 0.08-0.14


def test_ddp_shards_must_be_equal():
    x, y = ddp_demo.global_batch()
    assert [s.shape for s in ddp_demo.shard((x, y), 1, 4)] == [(2, ddp_demo.SEQ_LEN)] * 2
    torch.testing.assert_close(ddp_demo.shard((x, y), 1, 4)[0], x[2:4])
    with pytest.raises(ValueError, match="world_size: expected a divisor of GLOBAL_BATCH=8"):
        ddp_demo.shard((x, y), 0, 3)
