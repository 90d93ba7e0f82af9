import numpy as np
import pytest
import torch

from course_lib import blocks, checks, norms, positions


def build_vocabulary(text):
    return sorted(set(text))


def shift_targets(ids):
    return ids[:-1], ids[1:]


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def linear_backward(dout, X, W):
    return dout @ W.T, X.T @ dout, dout.sum(axis=0)


def batch_cross_entropy(logits, y):
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean())


def naive_log_softmax(z):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.log(np.exp(z) / np.exp(z).sum(-1, keepdims=True))


def causal_mask(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


def masked_softmax(scores, mask):
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)


def attend(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    weights = torch.softmax(scores, -1) if mask is None else masked_softmax(scores, mask)
    return weights @ v, weights


def unscaled_attend(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    weights = torch.softmax(scores, -1) if mask is None else masked_softmax(scores, mask)
    return weights @ v, weights


def self_attention(X, W_q, W_k, W_v, mask=None):
    return attend(X @ W_q, X @ W_k, X @ W_v, mask)


def causal_self_attention(X, W_q, W_k, W_v):
    return self_attention(X, W_q, W_k, W_v, torch.ones(X.shape[-2], X.shape[-2], dtype=torch.bool).tril())


def lookup(keys, values, queries):
    return values.gather(1, (queries[:, :, None] == keys[:, None, :]).float().argmax(-1))


def count_attention_parameters(d_model, n_heads, n_kv_heads, bias):
    kv_width = n_kv_heads * (d_model // n_heads)
    return 2 * d_model * d_model + 2 * d_model * kv_width + ((2 * d_model + 2 * kv_width) if bias else 0)


RIGHT_AND_WRONG = [
    (checks.check_build_vocabulary, build_vocabulary, lambda text: sorted(set(text), reverse=True)),
    (checks.check_shift_targets, shift_targets, lambda ids: (ids[1:], ids[:-1])),
    (checks.check_count_parameters, count_parameters, lambda m: sum(p.shape[0] for p in m.parameters())),
    (checks.check_log_softmax, log_softmax, naive_log_softmax),
    (checks.check_linear_backward, linear_backward, lambda d, X, W: (d @ W.T, X.T @ d, d.mean(axis=0))),
    (checks.check_batch_cross_entropy, batch_cross_entropy, lambda z, y: float(-log_softmax(z)[:, y].mean())),
    (checks.check_causal_mask, causal_mask, lambda n: torch.ones(n, n, dtype=torch.bool).triu()),
    (checks.check_masked_softmax, masked_softmax, lambda s, m: torch.softmax(s.masked_fill(~m, -1e9), -1)),
    (checks.check_attend, attend, unscaled_attend),
    (checks.check_self_attention, self_attention, lambda X, Wq, Wk, Wv: attend(X @ Wq, X @ Wq, X @ Wv)),
    (checks.check_causal_self_attention, causal_self_attention, self_attention),
    (checks.check_lookup, lookup, lambda keys, values, queries: values[:, : queries.shape[1]]),
    (checks.check_kv_head_for, lambda j, h, kv: j // (h // kv), lambda j, h, kv: j % kv),
    (
        checks.check_kv_cache_bytes,
        lambda L, H, D, T, b: 2 * L * H * D * T * b,
        lambda L, H, D, T, b: L * H * D * T * b,
    ),
    (checks.check_count_attention_parameters, count_attention_parameters, lambda d, h, kv, bias: 4 * d * d),
    (
        checks.check_sinusoidal_encoding,
        positions.sinusoidal_encoding,
        lambda n, d: positions.sinusoidal_encoding(n, d).flip(-1),
    ),
    (
        checks.check_alibi_slopes,
        positions.alibi_slopes,
        lambda n: torch.tensor([2.0 ** (-8 * i / n) for i in range(1, n + 1)]),
    ),
    (checks.check_apply_rope, positions.apply_rope, positions.apply_rope_interleaved),
    (checks.check_layer_norm, norms.layer_norm, lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) * w + b),
    (checks.check_rms_norm, norms.rms_norm, lambda x, w, eps: x / x.norm(dim=-1, keepdim=True) * w),
    (
        checks.check_deepnorm_constants,
        blocks.deepnorm_constants,
        lambda n: ((8 * n) ** 0.25, (2 * n) ** -0.25),
    ),
]


@pytest.mark.parametrize(("checker", "right", "wrong"), RIGHT_AND_WRONG)
def test_checker_accepts_a_right_answer_with_one_line(checker, right, wrong, capsys):
    checker(right)
    out = capsys.readouterr().out
    assert out.startswith("✅ Correct:") and out.count("\n") == 1


@pytest.mark.parametrize(("checker", "right", "wrong"), RIGHT_AND_WRONG)
def test_checker_rejects_a_wrong_answer_saying_what_was_expected(checker, right, wrong):
    with pytest.raises(AssertionError, match="expected") as info:
        checker(wrong)
    assert not isinstance(info.value, checks.ExerciseNotDone)


@pytest.mark.parametrize(("checker", "right", "wrong"), RIGHT_AND_WRONG)
def test_checker_reports_an_unwritten_answer(checker, right, wrong):
    def my_answer(*args):
        raise NotImplementedError()

    with pytest.raises(checks.ExerciseNotDone, match="`my_answer` is not written yet"):
        checker(my_answer)


def test_expect_close_reports_shape_before_values():
    with pytest.raises(AssertionError, match=r"x shape: expected \(2, 2\), got \(4,\)"):
        checks.expect_close("x", np.ones(4), torch.ones(2, 2))
    with pytest.raises(AssertionError, match="x: expected finite values, got NaN or inf"):
        checks.expect_close("x", np.array([np.nan]), torch.ones(1))
    with pytest.raises(AssertionError, match="largest difference of 0.5"):
        checks.expect_close("x", np.array([1.5]), torch.ones(1))
    with pytest.raises(AssertionError, match="expected a function"):
        checks.attempt(42)
