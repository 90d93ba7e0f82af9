import pytest
import torch

from course_lib import attention, blocks, data, models, norms
from course_lib.train import TrainConfig, train


def test_layernorm_and_rmsnorm_equal_pytorch_with_the_same_parameters():
    x = torch.randn(3, 5, 16, dtype=torch.float64) * 3 + 1
    ours, ref = norms.LayerNorm(16).double(), torch.nn.LayerNorm(16).double()
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())  # same parameter names
    torch.testing.assert_close(ours(x), ref(x))
    ours, ref = norms.RMSNorm(16).double(), torch.nn.RMSNorm(16, eps=1e-6).double()
    with torch.no_grad():
        ours.weight.normal_()
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x), ref(x))
    with pytest.raises(ValueError, match="norm: expected one of"):
        norms.make_norm("batch", 4)


def test_written_out_norms_equal_the_modules():
    x = torch.randn(3, 5, 16, dtype=torch.float64) * 3 + 1
    ln, rms = norms.LayerNorm(16).double(), norms.RMSNorm(16).double()
    with torch.no_grad():
        ln.weight.normal_(), ln.bias.normal_(), rms.weight.normal_()
    torch.testing.assert_close(norms.layer_norm(x, ln.weight, ln.bias, ln.eps), ln(x))
    torch.testing.assert_close(norms.rms_norm(x, rms.weight, rms.eps), rms(x))


def test_deepnorm_constants():
    alpha, beta = blocks.deepnorm_constants(6)
    assert alpha == pytest.approx(12**0.25) and beta == pytest.approx(48**-0.25)


def _reference(block, x, mask):
    """Each placement written out directly from its formula, with the block's own sublayers."""

    def attn(h):
        return block.attn(h, mask=mask)[0]

    n1, n2, ffn = block.norm1, block.norm2, block.ffn
    if block.placement == "post":
        h = n1(x + attn(x))
        return n2(h + ffn(h))
    if block.placement == "pre":
        h = x + attn(n1(x))
        return h + ffn(n2(h))
    if block.placement == "sandwich":
        h = x + block.norm1_out(attn(n1(x)))
        return h + block.norm2_out(ffn(n2(h)))
    a = block.alpha
    h = n1(a * x + attn(x))
    return n2(a * h + ffn(h))


@pytest.mark.parametrize("placement", blocks.PLACEMENTS)
@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_every_placement_matches_its_formula_and_trains(placement, norm):
    torch.manual_seed(0)
    block = blocks.TransformerBlock(16, 4, 32, placement=placement, norm=norm, deepnorm_alpha=1.7).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    mask = attention.causal_mask(5)
    out = block(x, mask)
    assert out.shape == x.shape
    torch.testing.assert_close(out, _reference(block, x, mask))
    out.pow(2).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in block.parameters())


def test_deepnorm_init_scales_ffn_value_and_output():
    torch.manual_seed(0)
    block = blocks.TransformerBlock(64, 4, 256, placement="deepnorm")
    block.init_deepnorm(beta=0.1)
    xavier_std = (2 / (64 + 256)) ** 0.5
    assert block.ffn.up.weight.std().item() == pytest.approx(0.1 * xavier_std, rel=0.1)
    assert block.attn.q_proj.weight.std().item() == pytest.approx((2 / 128) ** 0.5, rel=0.1)


def test_block_rejects_unknown_placement():
    with pytest.raises(ValueError, match="placement: expected one of"):
        blocks.TransformerBlock(8, 2, 16, placement="middle")


@pytest.mark.parametrize("position", models.POSITIONS)
def test_tiny_lm_is_causal_for_every_position_scheme(position):
    torch.manual_seed(0)
    model = models.TinyLM(
        models.TinyLMConfig(20, d_model=16, n_heads=2, d_ff=32, max_len=32, position=position)
    )
    idx = torch.randint(20, (2, 10))
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 20
    a, _ = model(idx)
    b, _ = model(changed)
    assert a.shape == (2, 10, 20)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_tiny_lm_knows_word_order_except_without_positions():
    torch.manual_seed(0)
    idx = torch.arange(8)[None] + 2  # 8 distinct tokens
    shuffled = torch.cat(
        [idx[:, [3, 0, 6, 1, 5, 2, 4]], idx[:, 7:]], dim=1
    )  # same last token, prefix shuffled
    for position in models.POSITIONS:
        # One layer: with two, the causal mask itself leaks order (Haviv et al. 2022).
        config = models.TinyLMConfig(
            20, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=32, position=position
        )
        model = models.TinyLM(config)
        last, last_shuffled = model(idx)[0][0, -1], model(shuffled)[0][0, -1]
        order_matters = not torch.allclose(last, last_shuffled, atol=1e-5)
        assert order_matters == (position != "none"), position


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"position": "relative"}, ValueError, "position: expected one of"),
        ({"vocab_size": 0}, ValueError, "vocab_size: expected a positive int, got 0"),
        ({"norm": "batch"}, ValueError, r"norm: expected one of \('layer', 'rms'\), got 'batch'"),
        ({"dropout": 2}, ValueError, r"dropout: expected a number in \[0, 1\), got 2"),
        ({"d_model": 10, "n_heads": 4}, ValueError, "d_model=10 must be divisible by n_heads=4"),
        (
            {"d_model": 12, "n_heads": 4, "position": "rope"},
            ValueError,
            "head_dim = d_model / n_heads must be even",
        ),
        ({"rope_scale": 0.0}, ValueError, "rope_scale: expected a number > 0"),
        ({"n_layers": 2.0}, TypeError, "n_layers: expected a positive int, got float 2.0"),
    ],
)
def test_tiny_lm_config_rejects_nonsense(kwargs, error, message):
    with pytest.raises(error, match=message):
        models.TinyLMConfig(**{"vocab_size": 10, **kwargs})


def test_sinusoidal_positions_do_not_drown_the_tokens():
    """Unscaled, the unit-amplitude table outweighed N(0, 0.02) embeddings ~35:1 (RMS)."""
    torch.manual_seed(0)
    model = models.TinyLM(models.TinyLMConfig(65, d_model=64, max_len=512, position="sinusoidal"))
    ratio = model.sinusoidal.pow(2).mean().sqrt() / model.token_embedding.weight.pow(2).mean().sqrt()
    assert 0.6 < ratio.item() < 0.8  # Vaswani et al.: token RMS 1, table RMS 1/sqrt(2)


def test_tiny_lm_with_gqa_and_dropout():
    torch.manual_seed(0)
    config = models.TinyLMConfig(20, d_model=16, n_heads=4, n_kv_heads=2, d_ff=32, max_len=16, dropout=0.3)
    model = models.TinyLM(config)
    assert model.blocks[0].attn.k_proj.weight.shape == (8, 16)  # 2 K/V heads of 4 dims
    idx = torch.randint(20, (2, 10))
    assert not torch.allclose(model(idx)[0], model(idx)[0])  # dropout is on while training
    model.eval()
    torch.testing.assert_close(model(idx)[0], model(idx)[0])
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 20
    torch.testing.assert_close(model(idx)[0][:, :6], model(changed)[0][:, :6])  # still causal


def test_tiny_lm_applies_the_deepnorm_initialisation():
    torch.manual_seed(0)
    config = models.TinyLMConfig(20, d_model=64, n_layers=6, n_heads=4, d_ff=256, placement="deepnorm")
    model = models.TinyLM(config)
    alpha, beta = blocks.deepnorm_constants(6)
    for block in model.blocks:
        assert block.alpha == alpha
        xavier_v = (2 / (64 + 64)) ** 0.5
        assert block.attn.v_proj.weight.std().item() == pytest.approx(beta * xavier_v, rel=0.15)
        assert block.attn.q_proj.weight.std().item() == pytest.approx(xavier_v, rel=0.15)
    assert models.TinyLM(models.TinyLMConfig(20, d_model=64)).blocks[0].alpha == 1.0


def test_tiny_lm_errors():
    model = models.TinyLM(models.TinyLMConfig(10, d_model=16, n_heads=2, max_len=8))
    with pytest.raises(ValueError, match="learned positions go up to max_len=8, got 9 tokens"):
        model(torch.zeros(1, 9, dtype=torch.long))
    rope = models.TinyLM(models.TinyLMConfig(10, d_model=16, n_heads=2, max_len=8, position="rope"))
    assert rope(torch.zeros(1, 20, dtype=torch.long))[0].shape == (1, 20, 10)  # RoPE has no table


def test_tiny_lm_learns_characters():
    text = data.load_corpus()[:20000]
    tokenizer = data.CharTokenizer.from_text(text)
    tokens = torch.tensor(tokenizer.encode(text))
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = models.TinyLM(
        models.TinyLMConfig(tokenizer.vocab_size, d_model=32, n_heads=2, d_ff=64, position="rope")
    )
    history = train(
        model,
        lambda: data.get_batch(tokens, 16, 32, generator),
        models.lm_loss,
        TrainConfig(steps=150, lr=3e-3),
        progress=False,
    )
    assert history.train_loss[0] > 3.5 and history.train_loss[-1] < 2.7  # unigram entropy is about 3.3
