import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import attention as att


def qkv(B=2, H=3, Tq=5, Tk=5, D=4, Dv=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(B, H, Tq, D, generator=g, dtype=dtype),
        torch.randn(B, H, Tk, D, generator=g, dtype=dtype),
        torch.randn(B, H, Tk, Dv, generator=g, dtype=dtype),
    )


# --- scaled dot-product attention ----------------------------------------------------------


@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding", "prefix"])
def test_sdpa_equals_pytorch(mask_kind):
    q, k, v = qkv(Tq=6, Tk=6, Dv=7)
    mask = {
        "none": None,
        "causal": att.causal_mask(6),
        "padding": att.padding_mask(torch.tensor([6, 3]), 6),  # (B, 1, 1, Tk)
        "prefix": att.prefix_lm_mask(6, 2),
    }[mask_kind]
    out, weights = att.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert weights.shape == (2, 3, 6, 6)
    torch.testing.assert_close(att.fused_attention(q, k, v, mask), out)


def test_sdpa_with_score_bias_equals_pytorch_additive_mask():
    q, k, v = qkv()
    bias = -torch.arange(5.0, dtype=torch.float64).view(1, 1, 1, 5)
    mask = att.causal_mask(5)
    out, _ = att.scaled_dot_product_attention(q, k, v, mask, score_bias=bias)
    additive = bias.masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=additive))
    torch.testing.assert_close(att.fused_attention(q, k, v, mask, score_bias=bias), out)


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = qkv(B=1, H=1, Tq=3, Tk=3)
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out, weights = att.scaled_dot_product_attention(q, k, v, mask)
    assert not out.isnan().any() and not weights.isnan().any()
    assert (weights[..., 1, :] == 0).all() and (out[..., 1, :] == 0).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.testing.assert_close(att.fused_attention(q, k, v, mask), out)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**16))
def test_weights_sum_to_one_on_allowed_keys_and_zero_elsewhere(tq, tk, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (
        torch.randn(2, tq, 3, generator=g),
        torch.randn(2, tk, 3, generator=g),
        torch.randn(2, tk, 2, generator=g),
    )
    mask = torch.rand(2, tq, tk, generator=g) > 0.4
    _, weights = att.scaled_dot_product_attention(q, k, v, mask)
    assert (weights[~mask] == 0).all()
    sums = weights.sum(-1)
    has_key = mask.any(-1)
    torch.testing.assert_close(sums[has_key], torch.ones_like(sums[has_key]))
    assert (sums[~has_key] == 0).all()


def test_sdpa_rejects_bad_input():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="q and k: expected the same last dimension, got 4 and 3"):
        att.scaled_dot_product_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match="same number of positions, got 5 and 4"):
        att.scaled_dot_product_attention(q, k, v[..., :4, :])
    with pytest.raises(TypeError, match="mask: expected dtype torch.bool, got torch.float32"):
        att.scaled_dot_product_attention(q, k, v, torch.ones(5, 5))
    with pytest.raises(
        ValueError, match=r"broadcasts to the scores \(2, 3, 5, 5\) without changing it, got \(4, 4\)"
    ):
        att.scaled_dot_product_attention(q, k, v, att.causal_mask(4))
    with pytest.raises(TypeError, match="q: expected dtype"):
        att.scaled_dot_product_attention(q.long(), k, v)
    with pytest.raises(
        ValueError, match=r"broadcasts to the scores \(2, 3, 5, 5\) without changing it, got \(4, 4\)"
    ):
        att.fused_attention(q, k, v, att.causal_mask(4))
    with pytest.raises(ValueError, match="q and k: expected the same last dimension"):
        att.fused_attention(q, k[..., :3], v)


# --- masks ----------------------------------------------------------------------------------


def test_masks():
    assert att.causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert att.prefix_lm_mask(4, 2).tolist() == [
        [True, True, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
    ]
    assert torch.equal(att.prefix_lm_mask(4, 0), att.causal_mask(4))
    assert att.prefix_lm_mask(3, 3).all()
    pad = att.padding_mask(torch.tensor([2, 3]), 3)
    assert pad.shape == (2, 1, 1, 3) and pad[:, 0, 0].tolist() == [[True, True, False], [True, True, True]]
    assert (pad & att.causal_mask(3)).shape == (2, 1, 3, 3)
    with pytest.raises(ValueError, match="prefix_len: expected 0..n=4, got 5"):
        att.prefix_lm_mask(4, 5)
    with pytest.raises(TypeError, match="prefix_len: expected an int, got float 1.5"):
        att.prefix_lm_mask(4, 1.5)
    with pytest.raises(TypeError, match="n: expected a positive int, got float 4.0"):
        att.causal_mask(4.0)
    with pytest.raises(ValueError, match=r"lengths: expected values in 0..n=3, got \[4\]"):
        att.padding_mask(torch.tensor([4]), 3)


def test_repeat_kv_uses_contiguous_groups():
    x = torch.arange(2).view(1, 2, 1, 1)  # K/V heads k0, k1
    assert att.repeat_kv(x, 3).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="n_rep: expected a positive int, got 0"):
        att.repeat_kv(x, 0)
    with pytest.raises(ValueError, match=r"x: expected a 4-D tensor, got shape \(2, 1, 1\)"):
        att.repeat_kv(x[0], 2)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 9), st.data())
def test_prefix_lm_mask_is_bidirectional_on_the_prefix_and_causal_after(n, data):
    prefix_len = data.draw(st.integers(0, n))
    mask = att.prefix_lm_mask(n, prefix_len)
    for i in range(n):
        for j in range(n):
            assert mask[i, j] == (j < prefix_len or j <= i)
    assert torch.equal(mask | att.causal_mask(n), mask)  # never less than causal


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=1, max_size=5), st.integers(8, 10))
def test_padding_mask_allows_exactly_the_first_length_keys(lengths, n):
    mask = att.padding_mask(torch.tensor(lengths), n)
    assert mask.shape == (len(lengths), 1, 1, n)
    assert mask.sum(-1).flatten().tolist() == lengths
    assert all(mask[b, 0, 0, :length].all() for b, length in enumerate(lengths))


def test_padding_mask_applies_to_each_sample_when_batch_equals_heads():
    """B == H: the old (B, 1, S) shape applied sample b's padding to head b of every sample."""
    q, k, v = qkv(B=3, H=3, Tq=4, Tk=6)
    lengths = torch.tensor([6, 2, 4])
    out, _ = att.scaled_dot_product_attention(q, k, v, att.padding_mask(lengths, 6))
    for b, length in enumerate(lengths.tolist()):  # each sample alone, its padded keys removed
        alone, _ = att.scaled_dot_product_attention(q[b], k[b, :, :length], v[b, :, :length])
        torch.testing.assert_close(out[b], alone)
    torch.testing.assert_close(att.fused_attention(q, k, v, att.padding_mask(lengths, 6)), out)
    old_shape = att.padding_mask(lengths, 6)[:, 0]  # (B, 1, S)
    for fn in (att.scaled_dot_product_attention, att.fused_attention):
        with pytest.raises(ValueError, match="a 3-D mask on 4-D scores .* is ambiguous"):
            fn(q, k, v, old_shape)


def test_a_mask_that_would_enlarge_the_scores_is_refused():
    q, k, v = (t[0] for t in qkv())  # 3-D: (H, T, D)
    mask = att.padding_mask(torch.tensor([5, 3]), 5)  # (B, 1, 1, S) would make the output 4-D
    for fn in (att.scaled_dot_product_attention, att.fused_attention):
        with pytest.raises(ValueError, match=r"scores \(3, 5, 5\) without changing it, got \(2, 1, 1, 5\)"):
            fn(q, k, v, mask)


def test_a_mask_or_bias_on_another_device_is_named():
    q, k, v = qkv()
    for fn in (att.scaled_dot_product_attention, att.fused_attention):
        with pytest.raises(ValueError, match="mask: expected a tensor on cpu .*, got one on meta"):
            fn(q, k, v, att.causal_mask(5, device="meta"))
        with pytest.raises(ValueError, match="score_bias: expected a tensor on cpu .*, got one on meta"):
            fn(q, k, v, score_bias=torch.zeros(5, 5, device="meta"))


def test_bfloat16_queries_with_a_float32_bias_on_both_paths():
    q, k, v = (t.bfloat16() for t in qkv())
    bias = -torch.arange(5.0).view(1, 1, 1, 5)  # float32, as alibi_bias makes it
    mask = att.causal_mask(5)
    out, weights = att.scaled_dot_product_attention(q, k, v, mask, score_bias=bias)
    assert out.dtype == weights.dtype == torch.bfloat16
    torch.testing.assert_close(att.fused_attention(q, k, v, mask, score_bias=bias), out, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("n_kv_heads", [1, 2, 6])
def test_fused_attention_shares_kv_heads_like_repeat_kv(n_kv_heads):
    q, _, _ = qkv(H=6)
    _, k, v = qkv(H=n_kv_heads)
    mask = att.causal_mask(5)
    n_rep = 6 // n_kv_heads
    expected, _ = att.scaled_dot_product_attention(q, att.repeat_kv(k, n_rep), att.repeat_kv(v, n_rep), mask)
    torch.testing.assert_close(att.fused_attention(q, k, v, mask), expected)


# --- multi-head attention ---------------------------------------------------------------------


def to_torch_mha(ours: att.MultiHeadAttention) -> torch.nn.MultiheadAttention:
    d_model = ours.out_proj.in_features
    ref = torch.nn.MultiheadAttention(d_model, ours.n_heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref


def make_mha(d_model=16, n_heads=4, n_kv_heads=None, bias=True):
    torch.manual_seed(0)
    return att.MultiHeadAttention(d_model, n_heads, n_kv_heads, bias=bias).double().eval()


def test_self_attention_equals_nn_multihead_attention():
    ours = make_mha()
    ref = to_torch_mha(ours)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = att.causal_mask(5)
    out, weights = ours(x, mask=mask, need_weights=True)
    ref_out, ref_weights = ref(x, x, x, attn_mask=~mask, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)
    torch.testing.assert_close(ours(x, mask=mask)[0], ref_out)  # the fused path too


def test_cross_attention_with_padding_equals_nn_multihead_attention():
    ours = make_mha()
    ref = to_torch_mha(ours)
    x, memory = torch.randn(2, 3, 16, dtype=torch.float64), torch.randn(2, 6, 16, dtype=torch.float64)
    lengths = torch.tensor([6, 4])
    out, _ = ours(x, memory, mask=att.padding_mask(lengths, 6))
    key_padding = torch.arange(6)[None, :] >= lengths[:, None]  # PyTorch: True = ignore
    torch.testing.assert_close(out, ref(x, memory, memory, key_padding_mask=key_padding)[0])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.sampled_from([4, 2, 1]), st.integers(0, 2**16))
def test_causal_output_at_t_ignores_tokens_after_t(t, n_kv_heads, seed):
    ours = make_mha(n_kv_heads=n_kv_heads)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 8, 16, generator=g, dtype=torch.float64)
    changed = x.clone()
    changed[:, t:] = torch.randn(1, 8 - t, 16, generator=g, dtype=torch.float64)
    mask = att.causal_mask(8)
    for need_weights in (False, True):
        a, _ = ours(x, mask=mask, need_weights=need_weights)
        b, _ = ours(changed, mask=mask, need_weights=need_weights)
        torch.testing.assert_close(a[:, :t], b[:, :t])
        assert not torch.allclose(a[:, t:], b[:, t:])


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_gqa_equals_mha_with_tied_kv_heads(n_kv_heads):
    gqa = make_mha(n_heads=4, n_kv_heads=n_kv_heads)
    mha = make_mha(n_heads=4)
    n_rep, D = 4 // n_kv_heads, 4
    with torch.no_grad():
        mha.q_proj.load_state_dict(gqa.q_proj.state_dict())
        mha.out_proj.load_state_dict(gqa.out_proj.state_dict())
        for name in ("k_proj", "v_proj"):  # head j of MHA copies K/V head j // n_rep
            source, target = getattr(gqa, name), getattr(mha, name)
            target.weight.copy_(
                source.weight.view(n_kv_heads, D, 16).repeat_interleave(n_rep, 0).reshape(16, 16)
            )
            target.bias.copy_(source.bias.view(n_kv_heads, D).repeat_interleave(n_rep, 0).reshape(16))
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = att.causal_mask(5)
    torch.testing.assert_close(gqa(x, mask=mask)[0], mha(x, mask=mask)[0])
    torch.testing.assert_close(gqa(x, mask=mask, need_weights=True)[0], mha(x, mask=mask)[0])


def test_kv_projection_sizes_and_parameter_counts():
    counts = {h: sum(p.numel() for p in make_mha(64, 8, h).parameters()) for h in (8, 2, 1)}
    assert make_mha(64, 8, 2).k_proj.weight.shape == (16, 64)
    assert counts == {
        8: 4 * (64 * 64 + 64),
        2: 2 * (64 * 64 + 64) + 2 * (64 * 16 + 16),
        1: 2 * 4160 + 2 * (64 * 8 + 8),
    }


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_kv_cache_decoding_equals_the_full_causal_pass(n_kv_heads):
    ours = make_mha(n_kv_heads=n_kv_heads)
    x = torch.randn(2, 7, 16, dtype=torch.float64)

    def rotate(t, positions):  # a stand-in position hook: rotates pairs by position-dependent angles
        angle = positions.to(t.dtype)[:, None] * 0.3
        a, b = t[..., ::2], t[..., 1::2]
        return torch.stack(
            [a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()], -1
        ).flatten(-2)

    full, _ = ours(x, mask=att.causal_mask(7), rotary=rotate)
    cache = att.KVCache()
    prefill, _ = ours(x[:, :3], mask=att.causal_mask(3), rotary=rotate, cache=cache)
    steps = [ours(x[:, t : t + 1], rotary=rotate, cache=cache)[0] for t in range(3, 7)]
    torch.testing.assert_close(torch.cat([prefill, *steps], dim=1), full)
    assert cache.length == 7 and cache.k.shape == (2, n_kv_heads, 7, 4)


def test_dropout_only_while_training():
    torch.manual_seed(0)
    ours = att.MultiHeadAttention(16, 4, dropout=0.5).double()
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    ours.eval()
    torch.testing.assert_close(ours(x)[0], ours(x)[0])
    ours.train()
    assert not torch.allclose(ours(x)[0], ours(x)[0])


def test_mha_rejects_bad_configuration_and_input():
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=4"):
        att.MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="n_heads=4 must be divisible by n_kv_heads=3"):
        att.MultiHeadAttention(16, 4, n_kv_heads=3)
    ours = make_mha()
    with pytest.raises(ValueError, match=r"x: expected a 3-D tensor, got shape \(5, 16\)"):
        ours(torch.randn(5, 16, dtype=torch.float64))
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="a KV cache is for self-attention"):
        ours(x, x, cache=att.KVCache())
    with pytest.raises(ValueError, match="broadcasts to the scores"):
        ours(x, mask=att.causal_mask(4))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, d_model=16\), got \(1, 5, 8\)"):
        ours(x[..., :8])
    with pytest.raises(ValueError, match=r"context: expected shape \(B, T, d_model=16\), got \(1, 5, 12\)"):
        ours(x, x[..., :12])
    with pytest.raises(ValueError, match="dropout: expected a number in \\[0, 1\\), got 1.5"):
        att.MultiHeadAttention(16, 4, dropout=1.5)
    with pytest.raises(TypeError, match="dropout: expected a number, got str"):
        att.MultiHeadAttention(16, 4, dropout="0.1")


def test_rope_in_cross_attention_is_refused():
    ours = make_mha()
    x, memory = torch.randn(1, 3, 16, dtype=torch.float64), torch.randn(1, 6, 16, dtype=torch.float64)
    with pytest.raises(
        ValueError, match="rotary: RoPE encodes the distance .* Use rotary only in self-attention"
    ):
        ours(x, memory, rotary=lambda t, positions: t)


def test_kv_cache_append_checks_shapes():
    cache = att.KVCache()
    k = torch.randn(2, 2, 3, 4)
    with pytest.raises(ValueError, match=r"k and v: expected the same \(B, Hkv, T_new\)"):
        cache.append(k, torch.randn(2, 1, 3, 4))
    cache.append(k, k.clone())
    with pytest.raises(
        ValueError, match=r"k: expected \(B, Hkv, T_new, D\) = \(2, 2, T_new, 4\) .* got \(2, 3, 1, 4\)"
    ):
        cache.append(torch.randn(2, 3, 1, 4), torch.randn(2, 3, 1, 4))
    with pytest.raises(ValueError, match=r"v: expected .* = \(2, 2, T_new, 4\) .* got \(2, 2, 1, 5\)"):
        cache.append(torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 5))
    with pytest.raises(ValueError, match="k: expected a 4-D tensor"):
        cache.append(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    assert cache.length == 3


@pytest.mark.parametrize("need_weights", [False, True])
def test_kv_cache_decoding_with_an_alibi_bias(need_weights):
    from course_lib.positions import alibi_bias

    ours = make_mha(n_kv_heads=2)
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    bias = alibi_bias(4, 7).double()  # (H, T, S)
    full, full_weights = ours(x, mask=att.causal_mask(7), score_bias=bias, need_weights=True)
    cache = att.KVCache()
    prefill, _ = ours(x[:, :3], mask=att.causal_mask(3), score_bias=bias[:, :3, :3], cache=cache)
    outs, last_weights = [prefill], None
    for t in range(3, 7):  # the new query is the last of t + 1 positions
        out, last_weights = ours(
            x[:, t : t + 1],
            score_bias=alibi_bias(4, 1, t + 1).double(),
            cache=cache,
            need_weights=need_weights,
        )
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=1), full)
    if need_weights:
        torch.testing.assert_close(last_weights[:, :, 0], full_weights[:, :, -1])
    else:
        assert last_weights is None
