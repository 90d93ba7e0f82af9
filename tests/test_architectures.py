"""Notebook 09's library pieces: the shared attention-layout check, sliding-window masks, the
parallel (GPT-J / PaLM) block, parameter and FLOP counts from a config, and the mask figures."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from course_lib import attention as att  # noqa: E402
from course_lib import blocks, plots  # noqa: E402
from course_lib._validate import check_heads  # noqa: E402
from course_lib.gpt import GPTConfig  # noqa: E402
from course_lib.llama import GeGLU, LlamaConfig  # noqa: E402
from course_lib.models import TinyLMConfig  # noqa: E402
from course_lib.transformer import Seq2SeqConfig  # noqa: E402

# --- one check of the attention layout for every config -------------------------------------------


def test_check_heads_returns_the_head_dim_and_names_each_rule():
    assert check_heads(64, 8) == 8
    assert check_heads(96, 12, 4, rope=True) == 8
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=4"):
        check_heads(10, 4)
    with pytest.raises(ValueError, match="n_heads=8 must be divisible by n_kv_heads=3"):
        check_heads(64, 8, 3)
    with pytest.raises(ValueError, match=r"head_dim = d_model / n_heads must be even, got 12 / 4 = 3"):
        check_heads(12, 4, rope=True)
    with pytest.raises(TypeError, match="n_kv_heads: expected a positive int"):
        check_heads(64, 8, 2.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TinyLMConfig(vocab_size=10, d_model=32, n_heads=8, n_kv_heads=3),
        lambda: LlamaConfig(vocab_size=10, d_model=32, n_layers=1, n_heads=8, n_kv_heads=3, d_ff=8),
        lambda: att.MultiHeadAttention(32, 8, 3),
    ],
)
def test_every_config_refuses_kv_heads_that_do_not_divide_the_heads(make):
    with pytest.raises(ValueError, match="n_heads=8 must be divisible by n_kv_heads=3"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: TinyLMConfig(vocab_size=10, d_model=30, n_heads=4),
        lambda: GPTConfig(vocab_size=10, n_positions=8, d_model=30, n_layers=1, n_heads=4),
        lambda: LlamaConfig(vocab_size=10, d_model=30, n_layers=1, n_heads=4, d_ff=8),
        lambda: Seq2SeqConfig(src_vocab_size=10, tgt_vocab_size=10, d_model=30, n_heads=4),
    ],
)
def test_every_config_refuses_heads_that_do_not_divide_d_model(make):
    with pytest.raises(ValueError, match="d_model=30 must be divisible by n_heads=4"):
        make()


# --- sliding-window masks -------------------------------------------------------------------------


def test_sliding_window_mask_keeps_the_last_window_keys():
    assert att.sliding_window_mask(5, 2).int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    assert torch.equal(att.sliding_window_mask(4, 4), att.causal_mask(4))
    assert torch.equal(att.sliding_window_mask(4, 9), att.causal_mask(4))
    assert torch.equal(att.sliding_window_mask(4, 1), torch.eye(4, dtype=torch.bool))
    assert att.sliding_window_mask(3, 2, device="meta").device.type == "meta"
    with pytest.raises(ValueError, match="window: expected a positive int, got 0"):
        att.sliding_window_mask(4, 0)
    with pytest.raises(TypeError, match="window: expected a positive int"):
        att.sliding_window_mask(4, 2.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6))
def test_sliding_window_rows_hold_min_of_window_and_position_keys(n, window):
    mask = att.sliding_window_mask(n, window)
    assert not (mask & ~att.causal_mask(n)).any()  # never the future
    assert mask.sum(dim=1).tolist() == [min(window, i + 1) for i in range(n)]


def test_stacked_sliding_windows_reach_back_layers_times_window_minus_one():
    n, window = 40, 4
    step = att.sliding_window_mask(n, window).long()
    reach = step
    for layers in range(1, 6):  # which inputs can position i depend on after `layers` layers
        assert reach[n - 1].nonzero().min().item() == n - 1 - layers * (window - 1)
        reach = ((reach @ step) > 0).long()


# --- the parallel block ----------------------------------------------------------------------------


@pytest.mark.parametrize("shared_norm", [True, False])
def test_parallel_block_equals_its_formula(shared_norm):
    torch.manual_seed(0)
    block = blocks.ParallelBlock(16, 4, 32, shared_norm=shared_norm)
    for p in block.parameters():  # norms away from (1, 0), so sharing them or not matters
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5, 16)
    mask = att.causal_mask(5)
    by_hand = x + block.attn(block.norm1(x), mask=mask)[0] + block.ffn(block.norm2(x))
    torch.testing.assert_close(block(x, mask), by_hand)
    assert (block.norm1 is block.norm2) == shared_norm
    serial = blocks.TransformerBlock(16, 4, 32)
    serial.load_state_dict(block.state_dict(), strict=False)
    assert not torch.allclose(serial(x, mask), block(x, mask))  # not the serial Pre-LN block
    calls = []
    block.norm1.register_forward_hook(lambda *_: calls.append("norm1"))
    block(x, mask)
    assert calls == ["norm1"]  # once per forward, also when norm2 is the same module


def test_parallel_block_with_a_gated_ffn_and_rms_norm_counts_one_norm():
    block = blocks.ParallelBlock(16, 4, 24, norm="rms", n_kv_heads=2, bias=False, ffn=GeGLU(16, 24))
    assert sum(p.numel() for p in block.parameters()) == 2 * 16 * 16 + 2 * 16 * 8 + 3 * 16 * 24 + 16
    with pytest.raises(TypeError, match="shared_norm: expected a bool"):
        blocks.ParallelBlock(16, 4, 24, shared_norm=1)


# --- mask figures --------------------------------------------------------------------------------


def test_mask_matrix_and_arrows_draw_one_cell_or_arrow_per_allowed_pair():
    tokens = list("abcd")
    mask = att.prefix_lm_mask(4, 2)
    ax = plots.mask_matrix(mask, tokens, title="prefix")
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert (ax.images[0].get_array() == mask.numpy()).all()
    ax = plots.mask_arrows(mask, tokens)
    arrows = [child for child in ax.get_children() if type(child).__name__ == "Annotation"]
    assert len(arrows) == int(mask.sum())  # one per allowed pair
    red = [a for a in arrows if a.arrow_patch.get_edgecolor()[0] > 0.7]
    assert len(red) == 1  # the one future key allowed: query a -> key b in the prefix
    cross = plots.mask_arrows(torch.ones(2, 3, dtype=torch.bool), ["x", "y"], ["p", "q", "r"])
    labels = [t.get_text() for t in cross.texts if type(t).__name__ == "Text"]
    assert sorted(labels) == ["p", "q", "r", "x", "y"]
    assert len(cross.texts) == 5 + 6  # the labels and one arrow per pair
    square = torch.ones(2, 2, dtype=torch.bool)
    for is_cross, n_red in ((False, 1), (True, 0)):  # the same labels: only `cross` decides
        ax = plots.mask_arrows(square, ["x", "y"], ["x", "y"], cross=is_cross)
        arrows = [child for child in ax.get_children() if type(child).__name__ == "Annotation"]
        assert sum(a.arrow_patch.get_edgecolor()[0] > 0.7 for a in arrows) == n_red
    with pytest.raises(TypeError, match="cross: expected a bool"):
        plots.mask_arrows(square, ["x", "y"], cross=1)
    with pytest.raises(ValueError, match="key_tokens: expected 3 labels, got 2"):
        plots.mask_arrows(torch.ones(2, 3, dtype=torch.bool), ["x", "y"], ["p", "q"])
    with pytest.raises(ValueError, match="2-D boolean"):
        plots.mask_matrix(torch.ones(2, 2))
    plt.close("all")
