import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import attention, positions
from course_lib.objectives import glm_example


def test_sinusoidal_values_follow_the_paper():
    pe = positions.sinusoidal_encoding(50, 8)
    p, i = 7, 1  # PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)
    assert pe[p, 2 * i].item() == pytest.approx(math.sin(p / 10000 ** (2 * i / 8)), abs=1e-6)
    assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(p / 10000 ** (2 * i / 8)), abs=1e-6)
    assert pe[0, 0::2].abs().max() == 0 and (pe[0, 1::2] == 1).all()
    with pytest.raises(ValueError, match="d_model: expected an even number"):
        positions.sinusoidal_encoding(4, 7)


def test_sinusoidal_offset_is_a_linear_map():
    pe = positions.sinusoidal_encoding(64, 8).double()
    k = 5
    inv_freq = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    rotation = torch.zeros(8, 8, dtype=torch.float64)
    for j, w in enumerate(inv_freq):
        c, s = math.cos(k * w), math.sin(k * w)
        rotation[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = torch.tensor([[c, -s], [s, c]])  # (sin, cos) rows
    torch.testing.assert_close(pe[:-k] @ rotation, pe[k:], atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.integers(0, 50), st.integers(0, 2**16))
def test_rope_score_depends_only_on_the_offset(m, n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(1, 16, generator=g, dtype=torch.float64),
        torch.randn(1, 16, generator=g, dtype=torch.float64),
    )

    def score(a, b):
        return (positions.apply_rope(q, torch.tensor([a])) * positions.apply_rope(k, torch.tensor([b]))).sum()

    torch.testing.assert_close(score(m, n), score(m + shift, n + shift))


def test_rope_preserves_norms_and_position_zero():
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64)
    rotated = positions.apply_rope(x, torch.arange(10))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[..., 0, :], x[..., 0, :])


def test_rotate_half_and_interleaved_conventions_agree_up_to_a_permutation():
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    pos = torch.arange(6)
    perm = positions.interleaved_to_half(8)
    assert perm.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    torch.testing.assert_close(
        positions.apply_rope(x[..., perm], pos), positions.apply_rope_interleaved(x, pos)[..., perm]
    )


def test_rope_scaling_and_module():
    x = torch.randn(1, 5, 8)
    torch.testing.assert_close(
        positions.apply_rope(x, torch.arange(5) * 2, scale=2.0), positions.apply_rope(x, torch.arange(5))
    )
    module = positions.RotaryEmbedding(8, base=500.0, scale=1.5)
    torch.testing.assert_close(
        module(x, torch.arange(5)), positions.apply_rope(x, torch.arange(5), 500.0, 1.5)
    )
    assert "inv_freq" not in module.state_dict()  # derived, not saved
    slowest = positions.rope_inv_freq(8)[-1]
    ntk = positions.rope_inv_freq(8, positions.ntk_scaled_base(10000.0, 4.0, 8))
    torch.testing.assert_close(ntk[-1], slowest / 4)  # NTK: the slowest pair slowed by the scale
    assert ntk[0] == 1.0  # the fastest pair unchanged
    with pytest.raises(ValueError, match=r"positions: expected shape \(5,\)"):
        positions.apply_rope(x, torch.arange(4))
    with pytest.raises(ValueError, match=r"positions: expected shape \(5,\)"):
        positions.apply_rope_interleaved(x, torch.arange(4))
    with pytest.raises(ValueError, match=r"x: expected shape \(..., T, D\), got \(8,\)"):
        positions.apply_rope(torch.randn(8), torch.arange(1))


def test_alibi_slopes_for_8_and_12_heads():
    torch.testing.assert_close(positions.alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    eight, sixteen = [2.0**-i for i in range(1, 9)], [2.0 ** (-i / 2) for i in range(1, 17)]
    torch.testing.assert_close(positions.alibi_slopes(12), torch.tensor(eight + sixteen[0::2][:4]))
    assert positions.alibi_slopes(12)[8:].tolist() == pytest.approx([2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5])


def test_alibi_bias_and_the_causal_only_shortcut():
    bias = positions.alibi_bias(2, 4)
    slopes = positions.alibi_slopes(2)
    assert bias.shape == (2, 4, 4) and (bias.diagonal(dim1=-2, dim2=-1) == 0).all()
    assert bias[1, 3, 0] == -slopes[1] * 3
    shortcut = slopes[:, None, None] * torch.arange(4)  # the reference code's slope * j, per row
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.randn(2, 4, 3)
    causal = attention.causal_mask(4)
    ours, _ = attention.scaled_dot_product_attention(q, k, v, causal, score_bias=bias)
    theirs, _ = attention.scaled_dot_product_attention(q, k, v, causal, score_bias=shortcut)
    torch.testing.assert_close(ours, theirs)  # same under a causal mask (a constant per row)
    ours, _ = attention.scaled_dot_product_attention(q, k, v, score_bias=bias)
    theirs, _ = attention.scaled_dot_product_attention(q, k, v, score_bias=shortcut)
    assert not torch.allclose(ours, theirs)  # not without it
    slope = positions.alibi_slopes(1)[0].item()  # 2^-8
    decoding = positions.alibi_bias(1, 2, n_keys=5)[0]  # the last 2 of 5 positions as queries
    expected = torch.tensor([[3.0, 2, 1, 0, 1], [4, 3, 2, 1, 0]]) * -slope
    torch.testing.assert_close(decoding, expected)


def test_rope_rejects_a_scale_or_base_that_makes_no_sense():
    x = torch.randn(1, 5, 8)
    for scale in (0.0, -2.0):
        with pytest.raises(ValueError, match=f"scale: expected a number > 0 .*, got {scale}"):
            positions.apply_rope(x, torch.arange(5), scale=scale)
        with pytest.raises(ValueError, match=f"scale: expected a number > 0 .*, got {scale}"):
            positions.RotaryEmbedding(8, scale=scale)
    with pytest.raises(ValueError, match="base: expected a number > 1, got 1.0"):
        positions.RotaryEmbedding(8, base=1.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(..., T, head_dim=8\), got \(1, 5, 6\)"):
        positions.RotaryEmbedding(8)(torch.randn(1, 5, 6), torch.arange(5))


def test_ntk_scaled_base_needs_at_least_two_pairs():
    with pytest.raises(ValueError, match="head_dim: expected an even number >= 4 .*, got 2"):
        positions.ntk_scaled_base(10000.0, 4.0, 2)
    with pytest.raises(ValueError, match="scale: expected a number > 0"):
        positions.ntk_scaled_base(10000.0, 0.0, 8)
    assert positions.ntk_scaled_base(10000.0, 4.0, 4) == pytest.approx(10000.0 * 4.0**2)


def test_alibi_bias_needs_at_least_as_many_keys_as_queries():
    with pytest.raises(ValueError, match="n_keys: expected n_keys >= n .*, got n=5, n_keys=3"):
        positions.alibi_bias(2, 5, n_keys=3)


def test_every_table_builder_takes_a_device():
    meta = torch.device("meta")
    for table in (
        positions.sinusoidal_encoding(4, 8, device=meta),
        positions.rope_inv_freq(8, device=meta),
        positions.interleaved_to_half(8, device=meta),
        positions.alibi_slopes(4, device=meta),
        positions.alibi_bias(4, 3, 5, device=meta),
        attention.causal_mask(3, device=meta),
        attention.prefix_lm_mask(3, 1, device=meta),
    ):
        assert table.device == meta
    torch.testing.assert_close(
        positions.alibi_bias(4, 3, 5, device="cpu"), positions.alibi_bias(4, 3, 5)
    )  # same values wherever they are made


def test_rotation_speeds_stay_float32_in_a_bfloat16_module():
    """``.bfloat16()`` used to cast the speeds: ~0.05 rad off at position 500."""
    rope = positions.RotaryEmbedding(8).bfloat16()
    x = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
    at = torch.arange(500, 504)
    reference = positions.apply_rope(x.double(), at)
    torch.testing.assert_close(rope(x.bfloat16(), at).double(), reference, atol=2e-2, rtol=0)


def test_float64_inputs_get_float64_speeds():
    x = torch.randn(1, 3, 8, dtype=torch.float64)
    at = torch.arange(10**6, 10**6 + 3)
    theta = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    angles = at.double()[:, None] * theta
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    expected = x * cos + positions.rotate_half(x) * sin
    torch.testing.assert_close(positions.apply_rope(x, at), expected, atol=1e-9, rtol=0)
    torch.testing.assert_close(positions.RotaryEmbedding(8)(x, at), expected, atol=1e-9, rtol=0)


def chatglm_rope_2d(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """ChatGLM-6B's ``position_encoding_2d``, written out as its code does (``RotaryEmbedding`` of
    dimension ``D/2``, ``emb = cat(freqs, freqs)``, ``apply_rotary_pos_emb_index`` per half)."""
    half = x.shape[-1] // 2
    inv_freq = 1.0 / base ** (torch.arange(0, half, 2, dtype=torch.float64) / half)
    freqs = torch.arange(int(positions.max()) + 1, dtype=torch.float64)[:, None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    out = []
    for part, rows in zip(x.chunk(2, dim=-1), positions, strict=True):
        cos, sin = emb.cos()[rows], emb.sin()[rows]  # (T, D/2), looked up like F.embedding
        left, right = part.chunk(2, dim=-1)
        out.append(part * cos + torch.cat([-right, left], dim=-1) * sin)
    return torch.cat(out, dim=-1)


def test_apply_rope_2d_matches_chatglm_and_sees_only_offsets():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 10, 16, generator=g, dtype=torch.float64)  # (B, H, T, D)
    example = glm_example(torch.arange(1, 7), [(4, 6), (2, 3)], 7, 8, 9)
    pos = example["position_ids"]  # (2, 10), the paper's example
    torch.testing.assert_close(positions.apply_rope_2d(x, pos), chatglm_rope_2d(x, pos), rtol=0, atol=1e-12)
    # A query-key score depends on the two offsets only: shift both rows, the scores stay.
    q, k = x[0, 0], x[1, 0]
    scores = positions.apply_rope_2d(q, pos) @ positions.apply_rope_2d(k, pos).T
    shifted = pos + torch.tensor([[7], [3]])
    torch.testing.assert_close(
        positions.apply_rope_2d(q, shifted) @ positions.apply_rope_2d(k, shifted).T, scores
    )
    # ...and each row matters: a rotation by row 1 alone changes them.
    moved = pos.clone()
    moved[1, -1] += 1
    assert (positions.apply_rope_2d(q, moved) @ positions.apply_rope_2d(k, pos).T - scores).abs().max() > 1e-3
    with pytest.raises(ValueError, match="multiple of 4"):
        positions.apply_rope_2d(torch.randn(10, 6), pos)
    with pytest.raises(ValueError, match=r"\(2, T\)"):
        positions.apply_rope_2d(x, pos[:1])
