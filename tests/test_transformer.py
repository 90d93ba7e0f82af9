import itertools

import pytest
import torch
import torch.nn.functional as F

from course_lib import attention, blocks
from course_lib import transformer as tr
from course_lib.positions import sinusoidal_encoding

SRC_V, TGT_V = 11, 9


def _model(placement="post", activation="relu", seed=0, **overrides):
    torch.manual_seed(seed)
    kwargs = dict(d_model=16, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=32, max_len=16)
    kwargs.update(overrides)
    config = tr.Seq2SeqConfig(SRC_V, TGT_V, placement=placement, activation=activation, **kwargs)
    model = tr.Seq2SeqTransformer(config)
    with torch.no_grad():  # norms away from (1, 0), so that copying a wrong norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, SRC_V, (3, 7), generator=g)
    tgt_in = torch.randint(3, TGT_V, (3, 5), generator=g)
    lengths = torch.tensor([7, 4, 2])
    src = src.masked_fill(~attention.padding_mask(lengths, 7)[:, 0, 0], 0)  # PAD = 0 after the end
    return src, tgt_in, attention.padding_mask(lengths, 7)


@pytest.mark.parametrize(("placement", "activation"), [("post", "relu"), ("pre", "gelu"), ("pre", "relu")])
@pytest.mark.parametrize("training", [False, True])
def test_parity_with_torch_nn_transformer(placement, activation, training):
    model = _model(placement, activation).train(training)  # dropout 0: train mode is deterministic
    src, tgt_in, pad = _batch()
    ref = tr.to_torch_transformer(model)
    assert isinstance(ref, torch.nn.Transformer) and ref.training == training
    assert (ref.encoder.norm is None) == (placement == "post")
    masks = tr.torch_transformer_masks(pad, tgt_in.shape[1])
    assert torch.equal(masks["src_key_padding_mask"], src == 0)  # PyTorch: True = padding
    assert torch.equal(masks["tgt_mask"], torch.ones(5, 5, dtype=torch.bool).triu(1))  # True = future
    x_src, x_tgt = model.embed_source(src), model.embed_target(tgt_in)
    with torch.no_grad():  # eval + no_grad: PyTorch's encoder takes its fused fast path
        memory = model.encode(src, pad)
        states, _ = model.decode_states(tgt_in, memory, pad)
        memory_ref = ref.encoder(x_src, src_key_padding_mask=masks["src_key_padding_mask"])
        states_ref = ref(x_src, x_tgt, **masks)
    torch.testing.assert_close(memory, memory_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(states, states_ref, atol=1e-5, rtol=1e-5)
    assert states.abs().mean() > 0.1  # not trivially zero


def test_shapes_and_cross_attention_weights():
    model = _model("pre").eval()
    src, tgt_in, pad = _batch()
    logits, weights = model(src, tgt_in, pad, need_weights=True)
    assert logits.shape == (3, 5, TGT_V)
    assert model(src, tgt_in, pad)[1] is None
    assert len(weights) == 2 and all(w.shape == (3, 4, 5, 7) for w in weights)
    for w in weights:
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 5))
        assert torch.all(w.masked_select(~pad.expand_as(w)) == 0)  # padded source tokens get no weight
    torch.testing.assert_close(model.decode(tgt_in, model.encode(src, pad), pad), logits)
    assert model.encode(src, pad).shape == (3, 7, 16)


def test_embeddings_are_scaled_and_positioned():
    model = _model()
    src = torch.tensor([[3, 4, 5]])
    expected = model.src_embedding(src) * 4.0 + sinusoidal_encoding(16, 16)[:3]  # sqrt(16) = 4
    torch.testing.assert_close(model.embed_source(src), expected)
    rms = model.embed_source(torch.arange(SRC_V)[None]).sub(model.positions[:SRC_V]).pow(2).mean().sqrt()
    assert 0.7 < rms.item() < 1.3  # tokens start at unit RMS, as in the paper's code


def test_tied_weights_are_one_tensor():
    torch.manual_seed(0)
    config = tr.Seq2SeqConfig(SRC_V, TGT_V, d_model=16, n_heads=2, d_ff=32, tie_weights=True)
    tied, untied = (
        tr.Seq2SeqTransformer(config),
        tr.Seq2SeqTransformer(tr.Seq2SeqConfig(SRC_V, TGT_V, 16, 2, d_ff=32)),
    )
    assert tied.head.weight is tied.tgt_embedding.weight
    assert untied.head.weight is not untied.tgt_embedding.weight
    count = sum(p.numel() for p in tied.parameters())
    assert count == sum(p.numel() for p in untied.parameters()) - TGT_V * 16
    src, tgt_in, pad = _batch()
    optimizer = torch.optim.SGD(tied.parameters(), lr=0.1)
    tied(src, tgt_in, pad)[0].logsumexp(-1).mean().backward()
    optimizer.step()
    assert torch.equal(tied.head.weight, tied.tgt_embedding.weight)  # still the same after a step


def test_a_padded_source_token_changes_nothing():
    model = _model("post").eval()
    src, tgt_in, pad = _batch()
    logits, _ = model(src, tgt_in, pad)
    memory = model.encode(src, pad)
    other = src.masked_fill(~pad[:, 0, 0], 5)  # other ids at the padded positions
    torch.testing.assert_close(model(other, tgt_in, pad)[0], logits, atol=0, rtol=0)
    alone = model.encode(src[2:3, :2])  # the third source without its padding
    torch.testing.assert_close(alone[0], memory[2, :2], atol=1e-6, rtol=1e-5)
    # without the mask the padding does change the output: the test above can fail
    assert not torch.allclose(model(other, tgt_in)[0], model(src, tgt_in)[0])


def test_a_future_target_token_changes_nothing_earlier():
    model = _model("pre").eval()
    src, tgt_in, pad = _batch()
    logits, _ = model(src, tgt_in, pad)
    changed = tgt_in.clone()
    changed[:, 3] = (changed[:, 3] + 1) % TGT_V
    new, _ = model(src, changed, pad)
    torch.testing.assert_close(new[:, :3], logits[:, :3], atol=0, rtol=0)
    assert not torch.allclose(new[:, 3:], logits[:, 3:])


def test_sequence_log_prob_is_the_sum_of_the_logits_log_softmax():
    model = _model("post")
    src, _, pad = _batch()
    tgt = torch.tensor([[1, 3, 4, 2, 5, 6], [1, 5, 2, 2, 7, 7], [1, 6, 7, 8, 3, 4]])  # BOS = 1, EOS = 2
    logits, _ = model.eval()(src, tgt[:, :-1], pad)
    per_token = logits.log_softmax(-1).gather(-1, tgt[:, 1:, None])[..., 0]  # (B, 5)
    torch.testing.assert_close(tr.sequence_log_prob(model, src, tgt, pad), per_token.sum(1))
    scored = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    torch.testing.assert_close(tr.sequence_log_prob(model, src, tgt, pad, eos=2), (per_token * scored).sum(1))


def test_greedy_decode_takes_the_argmax_and_stops_at_eos():
    model = _model("pre", seed=3).train()
    src, _, pad = _batch()
    tokens = tr.greedy_decode(model, src, bos=1, eos=2, max_len=6, src_pad_mask=pad)
    assert model.training  # the mode is restored
    assert tokens.shape[0] == 3 and 2 <= tokens.shape[1] <= 7 and torch.all(tokens[:, 0] == 1)
    logits, _ = model.eval()(src, tokens[:, :-1], pad)
    for b in range(3):
        row = tokens[b, 1:].tolist()
        end = row.index(2) + 1 if 2 in row else len(row)
        assert torch.equal(logits[b, :end].argmax(-1), tokens[b, 1 : end + 1])  # each step the argmax
        assert all(t == 2 for t in row[end:])  # EOS after the end
    assert tokens.shape[1] == 7 or torch.all((tokens == 2).any(1))


def _enumerate_best(model, src, bos, eos, max_len):
    """The most likely output over every sequence that ends at EOS or runs to ``max_len``."""
    V = model.config.tgt_vocab_size
    others = [t for t in range(V) if t != eos]
    candidates = [[*body, eos] for n in range(max_len) for body in itertools.product(others, repeat=n)]
    candidates += [list(body) for body in itertools.product(others, repeat=max_len)]
    best, best_score = None, -float("inf")
    for ids in candidates:
        tgt = torch.tensor([[bos, *ids]])
        score = tr.sequence_log_prob(model, src[None], tgt).item()
        if score > best_score:
            best, best_score = [bos, *ids], score
    return best, best_score


def test_a_wide_enough_beam_is_exact_search():
    torch.manual_seed(0)
    config = tr.Seq2SeqConfig(
        SRC_V, 4, d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=16
    )
    model = tr.Seq2SeqTransformer(config)
    with torch.no_grad():
        model.head.weight.mul_(4)  # sharper, more varied next-token distributions
    for seed in range(3):
        src = torch.randint(3, SRC_V, (5,), generator=torch.Generator().manual_seed(seed))
        best, best_score = _enumerate_best(model, src, bos=0, eos=1, max_len=3)
        ids, score = tr.beam_search(model, src, bos=0, eos=1, beam_size=64, max_len=3)  # >= every hypothesis
        assert ids.tolist() == best
        assert score == pytest.approx(best_score, abs=1e-5)


def test_beam_search_against_greedy_on_random_models():
    src_len = 6
    better = 0
    for seed in range(12):
        model = _model("post" if seed % 2 else "pre", seed=seed, max_len=12)
        with torch.no_grad():
            model.head.weight.mul_(3)
        src = torch.randint(3, SRC_V, (src_len,), generator=torch.Generator().manual_seed(seed))
        greedy = tr.greedy_decode(model, src[None], bos=1, eos=2, max_len=8)
        greedy_score = tr.sequence_log_prob(model, src[None], greedy, eos=2).item()
        one, one_score = tr.beam_search(model, src, bos=1, eos=2, beam_size=1, max_len=8)
        row = greedy[0].tolist()
        assert one.tolist() == row[: row.index(2) + 1 if 2 in row else len(row)]  # beam 1 is greedy
        assert one_score == pytest.approx(greedy_score, abs=1e-5)
        ids, score = tr.beam_search(model, src, bos=1, eos=2, beam_size=4, max_len=8)
        assert score == pytest.approx(
            tr.sequence_log_prob(model, src[None], ids[None], eos=2).item(), abs=1e-5
        )
        assert score >= greedy_score - 1e-5  # holds on these models (beam search is not exact in general)
        better += score > greedy_score + 1e-5
    assert better >= 2  # seeds 5 and 10: the beam finds a sequence 0.28 and 0.95 nats more likely


def test_length_penalty_ranks_by_the_mean_log_prob():
    model = _model("post", seed=5, max_len=12)
    src = torch.tensor([4, 5, 6, 7])
    plain, plain_score = tr.beam_search(model, src, bos=1, eos=2, beam_size=3, max_len=6)
    long, long_score = tr.beam_search(model, src, bos=1, eos=2, beam_size=3, max_len=6, length_penalty=1.0)
    assert plain_score >= long_score - 1e-6
    assert long_score / (len(long) - 1) >= plain_score / (len(plain) - 1) - 1e-6


def test_feedforward_activation():
    ffn = blocks.FeedForward(4, 8, activation="relu")
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(ffn(x), ffn.down(F.relu(ffn.up(x))))
    assert "relu" in repr(ffn)
    default = blocks.FeedForward(4, 8)
    torch.testing.assert_close(default(x), default.down(F.gelu(default.up(x))))
    with pytest.raises(ValueError, match="activation: expected one of"):
        blocks.FeedForward(4, 8, activation="tanh")


def test_validation_errors():
    with pytest.raises(ValueError, match="divisible by n_heads=3"):
        tr.Seq2SeqConfig(5, 5, d_model=16, n_heads=3)
    with pytest.raises(ValueError, match="d_model: expected an even number"):
        tr.Seq2SeqConfig(5, 5, d_model=15, n_heads=3)
    with pytest.raises(ValueError, match="placement: expected one of"):
        tr.Seq2SeqConfig(5, 5, placement="sandwich")
    with pytest.raises(ValueError, match="activation: expected one of"):
        tr.Seq2SeqConfig(5, 5, activation="tanh")
    with pytest.raises(TypeError, match="tie_weights: expected a bool"):
        tr.Seq2SeqConfig(5, 5, tie_weights=1)
    with pytest.raises(ValueError, match="tgt_vocab_size: expected a positive int, got 0"):
        tr.Seq2SeqConfig(5, 0)
    with pytest.raises(TypeError, match="config: expected a Seq2SeqConfig"):
        tr.Seq2SeqTransformer({"src_vocab_size": 5})
    model = _model(max_len=8)
    src, tgt_in, pad = _batch()
    with pytest.raises(ValueError, match=r"src_pad_mask: expected shape \(B, 1, 1, S\) = \(3, 1, 1, 7\)"):
        model(src, tgt_in, pad[:, 0, 0])
    with pytest.raises(TypeError, match="src: expected dtype"):
        model(src.float(), tgt_in)
    with pytest.raises(ValueError, match="tgt_in: expected 1..max_len=8 positions, got 9"):
        model(src, torch.ones(3, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="memory: expected shape"):
        model.decode(tgt_in, torch.zeros(2, 7, 16))
    with pytest.raises(ValueError, match="max_len: BOS \\+ 8 tokens exceed the model's max_len=8"):
        tr.greedy_decode(model, src, 1, 2, 8)
    with pytest.raises(ValueError, match="eos: expected a target id in 0..8, got 9"):
        tr.greedy_decode(model, src, 1, 9, 4)
    with pytest.raises(ValueError, match="src: expected a 1-D tensor"):
        tr.beam_search(model, src, 1, 2, 2, 4)
    with pytest.raises(ValueError, match="beam_size: expected a positive int, got 0"):
        tr.beam_search(model, src[0], 1, 2, 0, 4)
    with pytest.raises(TypeError, match="model: expected a Seq2SeqTransformer"):
        tr.to_torch_transformer(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="tgt: expected BOS and at least one token"):
        tr.sequence_log_prob(model, src, tgt_in[:, :1])


def test_draw_architecture_follows_the_config():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        config = tr.Seq2SeqConfig(47, 40, d_model=32, n_heads=2, n_encoder_layers=3, d_ff=64, placement="pre")
        texts = [t.get_text() for t in tr.draw_architecture(config).texts]
        assert "× 3" in texts and "× 2" in texts  # encoder and decoder layers
        assert texts.count("final LayerNorm") == 2  # Pre-LN: one after each stack
        assert any(
            t.startswith("LayerNorm, then cross-attention (") and "2 heads of D = 16" in t for t in texts
        )
        assert any("Linear 32 → 40\n" in t for t in texts) and not any("tied" in t for t in texts)
        ax = plt.subplots()[1]
        tied = tr.Seq2SeqConfig(10, 10, d_model=8, n_heads=2, placement="post", tie_weights=True)
        assert tr.draw_architecture(tied, ax) is ax
        texts = [t.get_text() for t in ax.texts]
        assert "final LayerNorm" not in texts and any("tied to the target embedding" in t for t in texts)
        assert any(t.endswith("+ residual, then LayerNorm") for t in texts)
        with pytest.raises(TypeError, match="expected a Seq2SeqConfig"):
            tr.draw_architecture({"d_model": 8})
    finally:
        plt.close("all")
