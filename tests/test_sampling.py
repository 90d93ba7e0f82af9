"""Notebook 11's library pieces: the sampling filters (parity with Hugging Face's logits warpers),
sampling from a TinyLM with and without the KV cache. (Perplexity and the bigram baseline live in
``objectives``: tests/test_objectives.py.)"""

import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from course_lib import efficiency, models, sampling

V = 50


def random_logits(seed=0):
    """Six rows of random logits ``(6, V)``; rows 2 and 3 are rounded to one decimal, so they hold
    many ties, and row 4 has a five-way tie at the top."""
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(6, V, generator=g)
    logits[2:4] = logits[2:4].round(decimals=1)
    logits[4, :5] = logits[4].max()
    return logits


def tiny_lm(position="learned", seed=0):
    torch.manual_seed(seed)
    config = models.TinyLMConfig(30, d_model=16, n_heads=4, d_ff=32, max_len=64, position=position)
    return models.TinyLM(config)


def hf_chain(logits, temperature, top_k, top_p):
    """What Hugging Face's generate applies, in its order: temperature, top-k, top-p."""
    scores = TemperatureLogitsWarper(float(temperature))(None, logits)
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores.softmax(dim=-1)


# --- the filters against Hugging Face -------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filters_match_hugging_face_warpers(seed):
    logits = random_logits(seed)
    assert (logits[2:4].unsqueeze(-1) == logits[2:4].unsqueeze(-2)).sum() > 2 * V  # ties are there
    for temperature in (0.3, 1.0, 1.7):
        expected = TemperatureLogitsWarper(temperature)(None, logits)
        assert torch.equal(sampling.apply_temperature(logits, temperature), expected)
    for k in (1, 2, 5, 17, V, V + 10):
        assert torch.equal(sampling.top_k_filter(logits, k), TopKLogitsWarper(k)(None, logits)), k
    for p in (1e-6, 0.1, 0.5, 0.9, 0.99, 1.0):
        for keep in (1, 3):
            expected = TopPLogitsWarper(p, min_tokens_to_keep=keep)(None, logits)
            assert torch.equal(sampling.top_p_filter(logits, p, min_tokens_to_keep=keep), expected), (p, keep)


def test_filters_keep_the_right_tokens_by_hand():
    logits = torch.tensor([1.0, 3.0, 3.0, 2.0])
    inf = float("-inf")
    # top-k keeps every token tied with the k-th largest
    assert sampling.top_k_filter(logits, 1).tolist() == [inf, 3.0, 3.0, inf]
    assert sampling.top_k_filter(logits, 2).tolist() == [inf, 3.0, 3.0, inf]
    assert sampling.top_k_filter(logits, 3).tolist() == [inf, 3.0, 3.0, 2.0]
    # probabilities 0.5, 0.3, 0.15, 0.05: p = 0.75 needs the first two, p = 0.85 the first three
    logits = torch.tensor([0.15, 0.5, 0.05, 0.3]).log()
    assert sampling.top_p_filter(logits, 0.75).isfinite().tolist() == [False, True, False, True]
    assert sampling.top_p_filter(logits, 0.85).isfinite().tolist() == [True, True, False, True]
    assert sampling.top_p_filter(logits, 0.01).isfinite().tolist() == [False, True, False, False]
    assert sampling.top_p_filter(logits, 0.01, min_tokens_to_keep=3).isfinite().sum() == 3
    torch.testing.assert_close(sampling.apply_temperature(logits, 0.5), 2 * logits)


def test_filters_work_row_by_row_on_any_leading_shape():
    flat = random_logits(3)
    logits = flat.reshape(2, 3, V)
    for filtered, expected in (
        (sampling.top_k_filter(logits, 4), sampling.top_k_filter(flat, 4)),
        (sampling.top_p_filter(logits, 0.7), sampling.top_p_filter(flat, 0.7)),
        (
            sampling.sampling_distribution(logits, 0.8, 10, 0.9),
            sampling.sampling_distribution(flat, 0.8, 10, 0.9),
        ),
    ):
        assert filtered.shape == (2, 3, V)
        assert torch.equal(filtered.reshape(6, V), expected)
    one_row = sampling.top_p_filter(logits[0, 0], 0.7)  # a single (V,) row too
    assert torch.equal(one_row, sampling.top_p_filter(flat[:1], 0.7)[0])


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, None, None), (0.7, None, None), (1.3, 10, None), (0.9, None, 0.8), (0.6, 20, 0.5), (2.0, 3, 0.99)],
)
def test_sampling_distribution_is_hugging_face_order(temperature, top_k, top_p):
    logits = random_logits(4)
    probs = sampling.sampling_distribution(logits, temperature, top_k, top_p)
    torch.testing.assert_close(probs, hf_chain(logits, temperature, top_k, top_p), rtol=0, atol=1e-7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    if top_k is not None:  # at most top_k tokens, plus ties (rows 2-4 have them)
        assert ((probs[[0, 1, 5]] > 0).sum(-1) <= top_k).all()


def test_sampling_distribution_of_half_precision_logits_is_float32():
    logits = random_logits(5).to(torch.bfloat16)
    probs = sampling.sampling_distribution(logits, top_k=5)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))


CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}  # 0.999 quantiles by degrees of freedom


def test_draws_follow_the_sampling_distribution():
    """20,000 draws through ``sampling.sample``: a chi-square test on the kept tokens, and the
    removed tokens never drawn."""
    model = tiny_lm(seed=3).eval()
    prompt = torch.tensor([[4, 11, 7]])
    with torch.no_grad():
        logits = model(prompt)[0][0, -1]  # (V,)
    probs = sampling.sampling_distribution(logits, temperature=0.8, top_k=6, top_p=0.9)
    kept = probs > 0
    assert 2 <= kept.sum() <= 6
    n = 20_000
    g = torch.Generator().manual_seed(0)
    tokens = sampling.sample(model, prompt.expand(n, -1), 1, temperature=0.8, top_k=6, top_p=0.9, generator=g)
    assert tokens.shape == (n, 4) and torch.equal(tokens[:, :3], prompt.expand(n, -1))
    counts = torch.bincount(tokens[:, -1], minlength=len(logits)).double()
    assert counts[~kept].sum() == 0
    expected = n * probs[kept].double()
    chi_square = ((counts[kept] - expected) ** 2 / expected).sum().item()
    assert chi_square < CHI2_999[int(kept.sum()) - 1]
    torch.testing.assert_close(counts / n, probs.double(), rtol=0, atol=0.015)


# --- sampling from a TinyLM ------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["learned", "rope", "alibi"])
def test_greedy_sampling_is_argmax_decoding(position):
    model = tiny_lm(position)
    prompt = torch.randint(30, (3, 4), generator=torch.Generator().manual_seed(1))
    tokens = sampling.sample(model, prompt, 12, greedy=True)
    assert tokens.shape == (3, 16) and torch.equal(tokens[:, :4], prompt)
    assert torch.equal(tokens, efficiency.generate(model, prompt, 12, use_cache=True))
    with torch.no_grad():
        for t in range(4, 16):
            assert torch.equal(model(tokens[:, :t])[0][:, -1].argmax(-1), tokens[:, t])
    # top-k with k = 1 and a tiny nucleus leave only the argmax to draw
    assert torch.equal(sampling.sample(model, prompt, 12, top_k=1), tokens)
    assert torch.equal(sampling.sample(model, prompt, 12, top_p=1e-6), tokens)
    assert torch.equal(sampling.sample(model, prompt, 12, temperature=0.5, greedy=True), tokens)


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_sampling_is_reproducible_and_the_cache_changes_nothing(position):
    model = tiny_lm(position).train()
    prompt = torch.randint(30, (4, 3), generator=torch.Generator().manual_seed(2))
    kwargs = {"temperature": 1.5, "top_k": 20, "top_p": 0.95}

    def run(seed, use_cache):
        g = torch.Generator().manual_seed(seed)
        return sampling.sample(model, prompt, 30, generator=g, use_cache=use_cache, **kwargs)

    first = run(0, use_cache=True)
    assert torch.equal(first, run(0, use_cache=True))
    assert torch.equal(first, run(0, use_cache=False))
    assert not torch.equal(first, run(1, use_cache=True))  # another seed, other tokens
    assert not torch.equal(first, sampling.sample(model, prompt, 30, greedy=True))
    assert model.training  # restored


def test_each_step_draws_one_multinomial_sample_from_the_distribution():
    model = tiny_lm().eval()
    prompt = torch.randint(30, (5, 6), generator=torch.Generator().manual_seed(3))
    tokens = sampling.sample(
        model, prompt, 1, temperature=0.9, top_k=8, generator=torch.Generator().manual_seed(7)
    )
    with torch.no_grad():
        probs = sampling.sampling_distribution(model(prompt)[0][:, -1], 0.9, 8)
    expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(7))
    assert torch.equal(tokens[:, -1:], expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sampling_on_the_gpu_gives_the_cpu_tokens():
    model = tiny_lm().double()  # float64: GPU and CPU probabilities differ only by rounding
    prompt = torch.randint(30, (3, 4), generator=torch.Generator().manual_seed(4))
    kwargs = {"temperature": 1.2, "top_k": 15, "top_p": 0.9}
    cpu = sampling.sample(model, prompt, 20, generator=torch.Generator().manual_seed(0), **kwargs)
    gpu = sampling.sample(
        model.cuda(), prompt.cuda(), 20, generator=torch.Generator().manual_seed(0), **kwargs
    )
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)


# --- validation ----------------------------------------------------------------------------------


def test_filters_reject_bad_input():
    logits = random_logits()
    with pytest.raises(TypeError, match="logits: expected a torch.Tensor, got list"):
        sampling.top_k_filter([1.0, 2.0], 1)
    with pytest.raises(TypeError, match="logits: expected dtype"):
        sampling.top_p_filter(torch.arange(5), 0.5)
    with pytest.raises(ValueError, match=r"logits: expected shape \(..., V\) with V >= 1, got \(\)"):
        sampling.apply_temperature(torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match=r"got \(3, 0\)"):
        sampling.sampling_distribution(torch.ones(3, 0))
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature: expected a finite number > 0.*greedy"):
            sampling.apply_temperature(logits, bad)
    with pytest.raises(TypeError, match="temperature: expected a number"):
        sampling.apply_temperature(logits, "hot")
    with pytest.raises(ValueError, match="k: expected a positive int, got 0"):
        sampling.top_k_filter(logits, 0)
    with pytest.raises(TypeError, match="k: expected a positive int"):
        sampling.top_k_filter(logits, 2.5)
    for bad in (0, 1.5, -0.2):
        with pytest.raises(ValueError, match=r"p: expected a number in \(0, 1\]"):
            sampling.top_p_filter(logits, bad)
    with pytest.raises(ValueError, match="min_tokens_to_keep: expected a positive int, got 0"):
        sampling.top_p_filter(logits, 0.5, min_tokens_to_keep=0)
    with pytest.raises(ValueError, match=r"top_p: expected a number in \(0, 1\]"):
        sampling.sampling_distribution(logits, top_p=2)


def test_sample_rejects_bad_input():
    model = tiny_lm()
    prompt = torch.randint(30, (2, 3))
    with pytest.raises(TypeError, match="model: expected a TinyLM"):
        sampling.sample(torch.nn.Linear(2, 2), prompt, 3)
    with pytest.raises(TypeError, match="prompt: expected dtype"):
        sampling.sample(model, prompt.float(), 3)
    with pytest.raises(ValueError, match="n_new: expected a positive int, got 0"):
        sampling.sample(model, prompt, 0)
    with pytest.raises(ValueError, match="temperature: expected a finite number > 0"):
        sampling.sample(model, prompt, 3, temperature=0.0)
    with pytest.raises(ValueError, match="top_k: expected a positive int, got 0"):
        sampling.sample(model, prompt, 3, top_k=0)
    with pytest.raises(ValueError, match=r"top_p: expected a number in \(0, 1\], got 0"):
        sampling.sample(model, prompt, 3, top_p=0)
    with pytest.raises(TypeError, match="greedy: expected a bool"):
        sampling.sample(model, prompt, 3, greedy=1)
    with pytest.raises(TypeError, match="generator: expected a torch.Generator or None, got int"):
        sampling.sample(model, prompt, 3, generator=0)
    with pytest.raises(TypeError, match="use_cache: expected a bool"):
        sampling.sample(model, prompt, 3, use_cache="yes")


def test_generate_with_checks_the_chosen_tokens():
    model = tiny_lm()
    prompt = torch.randint(30, (2, 3))
    with pytest.raises(TypeError, match="pick_next: expected a function of the logits, got int"):
        efficiency.generate_with(model, prompt, 3, 0, use_cache=True)
    with pytest.raises(
        ValueError, match=r"pick_next: expected token ids of shape \(2, 1\), got Tensor of shape \(2,\)"
    ):
        efficiency.generate_with(model, prompt, 3, lambda logits: logits.argmax(-1), use_cache=True)
    with pytest.raises(TypeError, match="pick_next: expected an int64/int32 tensor of token ids, got"):
        efficiency.generate_with(model, prompt, 3, lambda logits: logits.softmax(-1)[:, :1], use_cache=True)
    with pytest.raises(TypeError, match="pick_next: expected an int64/int32 tensor"):
        efficiency.generate_with(model, prompt, 3, lambda logits: [[0], [0]], use_cache=False)
    with pytest.raises(ValueError, match=r"pick_next: expected ids in \[0, 30\), got 30..30"):
        efficiency.generate_with(model, prompt, 3, lambda logits: torch.full((2, 1), 30), use_cache=True)
    with pytest.raises(ValueError, match=r"pick_next: expected ids in \[0, 30\), got -1..-1"):
        efficiency.generate_with(model, prompt, 3, lambda logits: torch.full((2, 1), -1), use_cache=False)
    assert model.training  # restored after the error too
