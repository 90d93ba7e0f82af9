"""``glm.GLM`` and ``glm.fill_blanks`` (Du et al. 2022): the GLM mask's semantics, the 2D positions,
padding, a tiny model that overfits one example and then fills its blanks, and bad input.

Hugging Face ``transformers`` has no GLM of this kind (its ``Glm`` models are GLM-4 decoders),
so there is no parity test; the attention path is the course's, tested in ``test_attention.py``.
"""

import pytest
import torch

from course_lib.attention import KVCache
from course_lib.glm import GLM, GLMConfig, fill_blanks
from course_lib.objectives import glm_batch, glm_example, glm_spans

V, MASK, START, END, PAD = 30, 27, 28, 29, 0  # ordinary tokens are 1..26
TOKENS = torch.tensor([5, 9, 14, 3, 22, 7, 11, 18, 2, 25, 6, 13, 20, 4, 16, 8, 24, 1, 10, 19])
SPANS = [(12, 15), (3, 5), (17, 18)]  # in Part B's (shuffled) order


def tiny_glm(seed: int = 0, **kwargs) -> GLM:
    torch.manual_seed(seed)
    config = GLMConfig(V, max_len=32, max_span_len=8, d_model=32, n_layers=2, n_heads=2, d_ff=64, **kwargs)
    return GLM(config).eval()


def run(model: GLM, example: dict, input_ids: torch.Tensor | None = None) -> torch.Tensor:
    ids = example["input_ids"] if input_ids is None else input_ids
    logits, _ = model(ids[None], example["position_ids"][None], example["attention_mask"])
    return logits[0]  # (L, V)


@torch.no_grad()
def test_part_a_is_bidirectional_and_part_b_causal():
    model = tiny_glm()
    example = glm_example(TOKENS, SPANS, MASK, START, END)
    n_a, n = example["prefix_len"].item(), example["input_ids"].shape[0]
    base = run(model, example)
    # Change one Part B token: Part A and the Part B positions before it do not move; it and
    # the later ones do.
    changed = example["input_ids"].clone()
    j = n_a + 4
    changed[j] = 1 if changed[j] != 1 else 2
    after = run(model, example, changed)
    torch.testing.assert_close(after[:j], base[:j], rtol=0, atol=1e-6)
    assert (after[j:] - base[j:]).abs().amax(dim=-1).min() > 1e-4
    # Change a late Part A token: every position moves, the earlier Part A ones included.
    changed = example["input_ids"].clone()
    changed[n_a - 1] = 1 if changed[n_a - 1] != 1 else 2
    after = run(model, example, changed)
    assert (after - base).abs().amax(dim=-1).min() > 1e-4
    assert after.shape == (n, V)


@torch.no_grad()
def test_both_position_rows_reach_the_output():
    model = tiny_glm()
    example = glm_example(TOKENS, SPANS, MASK, START, END)
    base = run(model, example)
    for row in (0, 1):
        moved = dict(example, position_ids=example["position_ids"].clone())
        moved["position_ids"][row] += 1
        assert (run(model, moved) - base).abs().max() > 1e-3
    # The output head is the token embedding (tied): one matrix.
    assert model.head.weight is model.token_embedding.weight


@torch.no_grad()
def test_a_padded_batch_gives_each_example_its_own_logits():
    model = tiny_glm()
    short = glm_example(TOKENS[:9], [(2, 4)], MASK, START, END)
    long = glm_example(TOKENS, SPANS, MASK, START, END)
    batch = glm_batch([short, long], pad_id=PAD)
    logits, loss = model(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["labels"])
    assert torch.isfinite(logits).all()
    for b, example in enumerate((short, long)):
        n = example["input_ids"].shape[0]
        torch.testing.assert_close(logits[b, :n], run(model, example), rtol=1e-5, atol=1e-5)
    # The loss is the mean over the Part B labels of both examples.
    picked = batch["labels"] != -100
    expected = torch.nn.functional.cross_entropy(logits[picked], batch["labels"][picked])
    torch.testing.assert_close(loss, expected)


def test_a_tiny_glm_overfits_one_example_then_fills_its_blanks():
    model = tiny_glm().train()
    example = glm_example(TOKENS, SPANS, MASK, START, END)
    batch = glm_batch([example], pad_id=PAD)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        _, loss = model(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05  # seeds 0-4 of tiny_glm: 0.0072-0.0078, and fill_blanks exact on all
    # The tokens under the spans are never read: give fill_blanks a text with garbage there.
    hidden = TOKENS.clone()
    for start, end in SPANS:
        hidden[start:end] = 26
    filled = fill_blanks(model, hidden, SPANS, MASK, START, END)
    assert [f.tolist() for f in filled] == [TOKENS[start:end].tolist() for start, end in SPANS]
    uncached = fill_blanks(model, hidden, SPANS, MASK, START, END, use_cache=False)
    assert [f.tolist() for f in uncached] == [f.tolist() for f in filled]
    assert model.training  # its mode is restored
    # A cap shorter than the first span stops it there, without a forward pass it would not use:
    # Part A once, then per span [START] and each generated token but the last (whose prediction,
    # [END] or past the cap, is not needed): min(length + 1, 2) calls for a cap of 2 (the old loop
    # made 3 for spans of 2 or more).
    calls = []
    hook = model.token_embedding.register_forward_hook(lambda *_: calls.append(1))
    try:
        capped = fill_blanks(model, hidden, SPANS, MASK, START, END, max_new_tokens=2)
    finally:
        hook.remove()
    assert capped[0].tolist() == TOKENS[12:14].tolist()
    assert len(calls) == 1 + sum(min(end - start + 1, 2) for start, end in SPANS)


@torch.no_grad()
def test_cached_steps_equal_the_full_glm_mask():
    model = tiny_glm(seed=1)
    example = glm_example(TOKENS, SPANS, MASK, START, END)
    ids, pos = example["input_ids"][None], example["position_ids"][None]
    n_a = example["prefix_len"].item()
    full = run(model, example)
    caches = [KVCache() for _ in model.blocks]
    steps = [model(ids[:, :n_a], pos[:, :, :n_a], caches=caches)[0]]
    for i in range(n_a, ids.shape[1]):
        steps.append(model(ids[:, i : i + 1], pos[:, :, i : i + 1], caches=caches)[0])
    torch.testing.assert_close(torch.cat(steps, dim=1)[0], full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"vocab_size": 0}, ValueError, "vocab_size"),
        ({"max_span_len": 1}, ValueError, "max_span_len"),
        ({"d_model": 30, "n_heads": 4}, ValueError, "divisible"),
        ({"n_heads": 2.0}, TypeError, "n_heads"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"layer_norm_eps": 0.0}, ValueError, "layer_norm_eps"),
    ],
)
def test_config_validation(kwargs, error, words):
    with pytest.raises(error, match=words):
        GLMConfig(**{"vocab_size": V, **kwargs})


def test_forward_and_fill_blanks_validation():
    model = tiny_glm()
    ids, pos = torch.ones(1, 5, dtype=torch.long), torch.zeros(1, 2, 5, dtype=torch.long)
    with pytest.raises(TypeError, match="GLMConfig"):
        GLM({"vocab_size": V})
    with pytest.raises(TypeError, match="input_ids"):
        model(ids.float(), pos)
    with pytest.raises(ValueError, match=r"\(B, 2, T\)"):
        model(ids, torch.zeros(1, 5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="row 1"):
        model(ids, pos + torch.tensor([0, 8])[None, :, None])
    with pytest.raises(ValueError, match="row 0"):
        model(ids, pos + torch.tensor([32, 0])[None, :, None])
    with pytest.raises(TypeError, match="attention_mask"):
        model(ids, pos, torch.ones(5, 5))
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, pos, torch.ones(1, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="labels"):
        model(ids, pos, labels=torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="caches"):
        model(ids, pos, caches=[KVCache()])
    with pytest.raises(ValueError, match="attention_mask: required with labels"):
        model(ids, pos, labels=ids)
    with pytest.raises(ValueError, match="spans: expected at least one"):
        fill_blanks(model, TOKENS, [], MASK, START, END)
    with pytest.raises(TypeError, match="GLM"):
        fill_blanks(object(), TOKENS, SPANS, MASK, START, END)
    with pytest.raises(ValueError, match="end_id"):
        fill_blanks(model, TOKENS, SPANS, MASK, START, V)
    with pytest.raises(ValueError, match="non-overlapping"):
        fill_blanks(model, TOKENS, [(1, 4), (2, 5)], MASK, START, END)
    with pytest.raises(ValueError, match="max_new_tokens"):
        fill_blanks(model, TOKENS, SPANS, MASK, START, END, max_new_tokens=7)
    with pytest.raises(TypeError, match="use_cache"):
        fill_blanks(model, TOKENS, SPANS, MASK, START, END, use_cache=1)
    with pytest.raises(ValueError, match="max_len"):
        fill_blanks(model, torch.ones(40, dtype=torch.long), [(0, 2)], MASK, START, END)


def test_spans_capped_by_glm_spans_always_fit_the_model():
    model = tiny_glm()
    c = model.config
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        tokens = torch.randint(1, 27, (24,), generator=g)
        spans = glm_spans(len(tokens), g, mask_ratio=0.3, max_span_len=c.max_span_len - 2)
        example = glm_example(tokens, spans, MASK, START, END)
        batch = glm_batch([example], pad_id=PAD)
        with torch.no_grad():
            _, loss = model(
                batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["labels"]
            )
        assert torch.isfinite(loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_glm_and_fill_blanks_on_the_gpu_equal_the_cpu():
    model = tiny_glm().double()
    example = glm_example(TOKENS, SPANS, MASK, START, END)
    cpu = run(model, example)
    cpu_filled = fill_blanks(model, TOKENS, SPANS, MASK, START, END)
    model.cuda()
    gpu = run(model, {key: value.cuda() for key, value in example.items()})
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-10)
    gpu_filled = fill_blanks(model, TOKENS, SPANS, MASK, START, END)
    assert all(f.device.type == "cuda" for f in gpu_filled)
    assert [f.tolist() for f in gpu_filled] == [f.tolist() for f in cpu_filled]
