"""The exercise checkers: right answers pass with one line, wrong ones fail with "expected ..., got ...".

Besides one right and one wrong answer per checker, every checker is fed plausible wrong answers
(``None``, a dict, a tensor of the wrong shape, values on the ``meta`` device, ...) that must end
as an ``AssertionError``, never as an error inside the checker, and must leave the global random
state as it was.
"""

import functools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import course_lib
from course_lib import blocks, checks, positions


def build_vocabulary(text):
    return sorted(set(text))


def batch_at(tokens, starts, block_size):
    windows = starts[:, None] + torch.arange(block_size)  # (B, T)
    return tokens[windows], tokens[windows + 1]


def unigram_loss(ids):
    probs = torch.bincount(ids)[ids].double() / len(ids)
    return -probs.log().mean().item()


def unigram_loss_in_bits(ids):
    probs = torch.bincount(ids)[ids].double() / len(ids)
    return -probs.log2().mean().item()


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def linear_backward(dout, X, W):
    X_rows, dout_rows = X.reshape(-1, X.shape[-1]), dout.reshape(-1, dout.shape[-1])
    return dout @ W.T, X_rows.T @ dout_rows, dout_rows.sum(axis=0)


def linear_backward_per_sequence(dout, X, W):  # right for (N, C); on (B, T, C), one dW per sequence
    return dout @ W.T, X.swapaxes(-1, -2) @ dout, dout.sum(axis=0)


def batch_cross_entropy(logits, y):
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean())


def naive_log_softmax(z):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.log(np.exp(z) / np.exp(z).sum(-1, keepdims=True))


def log_softmax_global_max(z):  # subtracts the largest logit of the whole batch, not each row's
    shifted = z - z.max()
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy_of_softmax(logits, y):  # the log of a stable softmax: a probability that underflowed
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return float(-np.log(probs[np.arange(len(y)), y]).mean())


def count_state_dict(model):  # counts buffers, and a tied weight under each of its names
    return sum(value.numel() for value in model.state_dict().values())


def count_per_layer(model):  # each layer's own parameters: a weight two layers share counts twice
    return sum(p.numel() for layer in model.modules() for p in layer.parameters(recurse=False))


def sliding_window_mask(n, window):
    query, key = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (key <= query) & (key > query - window)


def masked_softmax(scores, mask):
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)


def attend(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    weights = torch.softmax(scores, -1) if mask is None else masked_softmax(scores, mask)
    return weights @ v, weights


def additive_attention(q, k, v, W_q, W_k, w, mask=None):
    scores = torch.tanh((q @ W_q)[..., :, None, :] + (k @ W_k)[..., None, :, :]) @ w
    weights = torch.softmax(scores, -1) if mask is None else masked_softmax(scores, mask)
    return weights @ v, weights


def separable_additive_attention(q, k, v, W_q, W_k, w, mask=None):  # tanh of each part, then the sum
    scores = (torch.tanh(q @ W_q) @ w)[..., :, None] + (torch.tanh(k @ W_k) @ w)[..., None, :]
    weights = torch.softmax(scores, -1) if mask is None else masked_softmax(scores, mask)
    return weights @ v, weights


def self_attention(X, W_q, W_k, W_v, mask=None):
    return attend(X @ W_q, X @ W_k, X @ W_v, mask)


def causal_self_attention(X, W_q, W_k, W_v):
    return self_attention(X, W_q, W_k, W_v, torch.ones(X.shape[-2], X.shape[-2], dtype=torch.bool).tril())


def padded_causal_mask(lengths, T):
    t, s = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return ((s <= t) & (s < lengths[:, None, None]))[:, None]  # (B, 1, T, T)


def padded_causal_mask_on_queries(lengths, T):  # masks the padded queries instead of the keys
    t, s = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return ((s <= t) & (t < lengths[:, None, None]))[:, None]


def lookup(keys, values, queries):
    return values.gather(1, (queries[:, :, None] == keys[:, None, :]).float().argmax(-1))


def count_attention_parameters(d_model, n_heads, n_kv_heads, bias):
    kv_width = n_kv_heads * (d_model // n_heads)
    return 2 * d_model * d_model + 2 * d_model * kv_width + ((2 * d_model + 2 * kv_width) if bias else 0)


def decode_step(q, k_new, v_new, k_cache, v_cache):
    k_cache, v_cache = torch.cat([k_cache, k_new], dim=2), torch.cat([v_cache, v_new], dim=2)
    return attend(q, k_cache, v_cache)[0], k_cache, v_cache


def decode_step_before_append(q, k_new, v_new, k_cache, v_cache):  # the new token misses itself
    out = attend(q, k_cache, v_cache)[0]
    return out, torch.cat([k_cache, k_new], dim=2), torch.cat([v_cache, v_new], dim=2)


def grouped_query_attention(q, k, v):  # each group's queries side by side against its K/V head
    B, H, T, D = q.shape
    H_kv = k.shape[1]
    return attend(q.reshape(B, H_kv, H // H_kv * T, D), k, v)[0].view(B, H, T, D)


def grouped_query_attention_einsum(q, k, v):
    B, H, T, D = q.shape
    H_kv = k.shape[1]
    q = q.view(B, H_kv, H // H_kv, T, D)
    weights = torch.softmax(torch.einsum("bkgtd,bksd->bkgts", q, k) / math.sqrt(D), dim=-1)
    return torch.einsum("bkgts,bksd->bkgtd", weights, v).reshape(B, H, T, D)


def grouped_query_attention_broadcast(q, k, v):  # torch.matmul copies k and v to broadcast them
    B, H, T, D = q.shape
    H_kv = k.shape[1]
    out = attend(q.view(B, H_kv, H // H_kv, T, D), k[:, :, None], v[:, :, None])[0]
    return out.reshape(B, H, T, D)


def grouped_query_attention_repeated(q, k, v):
    group = q.shape[1] // k.shape[1]
    return attend(q, k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1))[0]


def grouped_query_attention_tiled(q, k, v):  # repeat (tile) instead of repeat_interleave
    group = q.shape[1] // k.shape[1]
    return attend(q, k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1))[0]


def permute_for_rotate_half(W, n_heads):
    rows, C = W.shape  # rows = H * D
    return W.view(n_heads, rows // n_heads // 2, 2, C).transpose(1, 2).reshape(rows, C)


def permute_across_heads(W, n_heads):  # one permutation of all H * D rows: it mixes the heads
    return W[positions.interleaved_to_half(W.shape[0])]


def t5_relative_bias(table, T, max_distance, to_int=torch.floor):
    num_buckets, max_exact = table.shape[0], table.shape[0] // 2
    distance = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).clamp(min=0)  # (T, T): m - n
    scaled = torch.log(distance.clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + to_int(scaled * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return table[torch.where(distance < max_exact, distance, large)].permute(2, 0, 1)  # (H, T, T)


def t5_relative_bias_rounded(table, T, max_distance):  # rounds the log-spaced buckets, T5 truncates
    return t5_relative_bias(table, T, max_distance, to_int=torch.round)


def deepnorm_encoder_decoder(n_encoder_layers, n_decoder_layers):
    depth = n_encoder_layers**4 * n_decoder_layers  # Wang et al. (2022), table 1
    encoder = 0.81 * depth ** (1 / 16), 0.87 * depth ** (-1 / 16)
    return (*encoder, (3 * n_decoder_layers) ** 0.25, (12 * n_decoder_layers) ** -0.25)


def deepnorm_as_two_stacks(n_encoder_layers, n_decoder_layers):  # the one-stack formula for each part
    return (*blocks.deepnorm_constants(n_encoder_layers), *blocks.deepnorm_constants(n_decoder_layers))


def fold_norm_into_linear(norm_weight, norm_bias, W, W_bias):
    return W * norm_weight, W_bias + W @ norm_bias


def fold_norm_gain_only(norm_weight, norm_bias, W, W_bias):  # forgets what the norm's bias adds
    return W * norm_weight, W_bias


def _layer_norm_backward_with_std(x, weight, dout, std):
    C = x.shape[-1]
    x_hat = (x - x.mean(-1, keepdim=True)) / std
    d_x_hat = dout * weight
    dx = (d_x_hat - d_x_hat.mean(-1, keepdim=True) - x_hat * (d_x_hat * x_hat).mean(-1, keepdim=True)) / std
    return dx, (dout * x_hat).reshape(-1, C).sum(0), dout.reshape(-1, C).sum(0)


def layer_norm_backward(x, weight, dout, eps):
    return _layer_norm_backward_with_std(
        x, weight, dout, (x.var(-1, keepdim=True, unbiased=False) + eps).sqrt()
    )


def layer_norm_backward_direct_path_only(x, weight, dout, eps):  # forgets the paths through mean and var
    _, dweight, dbias = layer_norm_backward(x, weight, dout, eps)
    return dout * weight / (x.var(-1, keepdim=True, unbiased=False) + eps).sqrt(), dweight, dbias


def shift_right(targets, bos):
    return torch.cat([torch.full_like(targets[:, :1], bos), targets[:, :-1]], dim=1)


def shift_right_by_roll(targets, bos):  # torch.roll wraps the last target round to the front
    return torch.roll(targets, 1, dims=1)


def cross_attention(x, memory, W_q, W_k, W_v, src_pad_mask):
    return attend(x @ W_q, memory @ W_k, memory @ W_v, src_pad_mask[:, 0])


def cross_attention_without_mask(x, memory, W_q, W_k, W_v, src_pad_mask):  # attends to the padding too
    return attend(x @ W_q, memory @ W_k, memory @ W_v)


def beam_step(log_probs, scores, beam_size):
    V = log_probs.shape[1]
    new_scores, flat = (scores[:, None] + log_probs).flatten().topk(beam_size)
    return flat // V, flat % V, new_scores


def beam_step_without_running_scores(log_probs, scores, beam_size):  # ranks by the new token alone
    V = log_probs.shape[1]
    best, flat = log_probs.flatten().topk(beam_size)
    return flat // V, flat % V, scores[flat // V] + best


def pre_ln_decoder_layer(x, memory, layer, src_pad_mask):
    causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()
    x = x + layer.self_attn(layer.norm1(x), mask=causal)[0]
    x = x + layer.cross_attn(layer.norm2(x), context=memory, mask=src_pad_mask)[0]
    return x + layer.ffn(layer.norm3(x))


def pre_ln_decoder_layer_without_causal_mask(x, memory, layer, src_pad_mask):  # sees future targets
    x = x + layer.self_attn(layer.norm1(x))[0]
    x = x + layer.cross_attn(layer.norm2(x), context=memory, mask=src_pad_mask)[0]
    return x + layer.ffn(layer.norm3(x))


def training_days(n_params, n_tokens, n_devices, flops_per_second, utilization):
    return 6 * n_params * n_tokens / (n_devices * flops_per_second * utilization) / 86400


def training_days_forward_only(n_params, n_tokens, n_devices, flops_per_second, utilization):  # 2 N
    return 2 * n_params * n_tokens / (n_devices * flops_per_second * utilization) / 86400


def merge_softmax_parts(m1, ell1, o1, m2, ell2, o2):
    m = torch.maximum(m1, m2)
    w1, w2 = ell1 * torch.exp(m1 - m), ell2 * torch.exp(m2 - m)
    return m, w1 + w2, (w1 * o1 + w2 * o2) / (w1 + w2)


def merge_softmax_parts_without_rescaling(m1, ell1, o1, m2, ell2, o2):  # as if m1 == m2
    return torch.maximum(m1, m2), ell1 + ell2, (ell1 * o1 + ell2 * o2) / (ell1 + ell2)


def ddp_loss_scales(tokens_per_rank):
    counts = torch.tensor(tokens_per_rank, dtype=torch.float64)
    return len(tokens_per_rank) * counts / counts.sum()


def ddp_loss_scales_without_world_size(tokens_per_rank):  # forgets that DDP divides the sum by G
    counts = torch.tensor(tokens_per_rank, dtype=torch.float64)
    return counts / counts.sum()


def block_parameters(config):
    C, H, H_kv, d_ff = config["d_model"], config["n_heads"], config["n_kv_heads"], config["d_ff"]
    kv_width = H_kv * (C // H)
    attention = 2 * C * C + 2 * C * kv_width + (2 * C + 2 * kv_width if config["bias"] else 0)
    mlp = 2 * C * d_ff + (d_ff + C if config["bias"] else 0)
    ffn = 3 * C * d_ff if config["ffn"] == "swiglu" else mlp
    norms = 2 * (2 * C if config["norm"] == "layer" else C)
    return attention + ffn + norms


def block_parameters_without_gqa(config):  # K and V counted as C x C whatever n_kv_heads is
    return block_parameters({**config, "n_kv_heads": config["n_heads"]})


def swiglu_width(d_model, multiple_of, ffn_dim_multiplier=None):
    hidden = int(8 * d_model / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def swiglu_width_rounded_down(d_model, multiple_of, ffn_dim_multiplier=None):  # floor, not ceiling
    hidden = int(8 * d_model / 3 * (ffn_dim_multiplier or 1))
    return multiple_of * (hidden // multiple_of)


def switch_routing(logits, capacity):
    probs = torch.softmax(logits, dim=-1)
    gate, expert = probs.max(dim=-1)
    seen = torch.zeros(logits.shape[-1], dtype=torch.long)
    kept = torch.zeros(len(expert), dtype=torch.bool)
    for i, e in enumerate(expert.tolist()):
        kept[i] = seen[e] < capacity
        seen[e] += 1
    return expert, gate, kept


def switch_routing_renormalized(logits, capacity):  # the gate renormalized over one expert: always 1
    expert, gate, kept = switch_routing(logits, capacity)
    return expert, torch.ones_like(gate), kept


def mlm_outcomes(mask_prob, vocab_size):
    random = 0.1 * mask_prob / vocab_size  # the random draw may give [MASK] or the original back
    return 0.8 * mask_prob + random, 0.1 * mask_prob - 2 * random, 0.1 * mask_prob + random


def mean_pool(hidden, lengths):
    keep = (torch.arange(hidden.shape[1])[None, :] < lengths[:, None]).to(hidden.dtype)  # (B, T)
    return (hidden * keep[..., None]).sum(dim=1) / lengths[:, None].to(hidden.dtype)


def whole_word_mask(is_start, draws, mask_prob):
    chosen = torch.zeros_like(is_start)
    for b in range(is_start.shape[0]):
        for t in range(is_start.shape[1]):
            if is_start[b, t]:  # a word starts: draw for the whole word
                word_chosen = bool(draws[b, t] < mask_prob)
            chosen[b, t] = word_chosen
    return chosen


RIGHT_AND_WRONG = [
    (checks.check_build_vocabulary, build_vocabulary, lambda text: sorted(set(text), reverse=True)),
    (
        checks.check_batch_at,
        batch_at,
        lambda tokens, starts, block_size: (batch_at(tokens, starts, block_size)[0],) * 2,
    ),
    (checks.check_unigram_loss, unigram_loss, unigram_loss_in_bits),
    (checks.check_count_parameters, count_parameters, count_state_dict),
    (checks.check_log_softmax, log_softmax, naive_log_softmax),
    (checks.check_linear_backward, linear_backward, linear_backward_per_sequence),
    (checks.check_batch_cross_entropy, batch_cross_entropy, lambda z, y: float(-log_softmax(z)[:, y].mean())),
    (
        checks.check_sliding_window_mask,
        sliding_window_mask,
        lambda n, window: (torch.arange(n)[:, None] - torch.arange(n)[None, :]).abs() < window,
    ),
    (checks.check_masked_softmax, masked_softmax, lambda s, m: torch.softmax(s.masked_fill(~m, -1e9), -1)),
    (checks.check_additive_attention, additive_attention, separable_additive_attention),
    (checks.check_padded_causal_mask, padded_causal_mask, padded_causal_mask_on_queries),
    (checks.check_causal_self_attention, causal_self_attention, self_attention),
    (checks.check_lookup, lookup, lambda keys, values, queries: values[:, : queries.shape[1]]),
    (checks.check_decode_step, decode_step, decode_step_before_append),
    (checks.check_grouped_query_attention, grouped_query_attention, grouped_query_attention_tiled),
    (checks.check_count_attention_parameters, count_attention_parameters, lambda d, h, kv, bias: 4 * d * d),
    (
        checks.check_alibi_slopes,
        positions.alibi_slopes,
        lambda n: torch.tensor([2.0 ** (-8 * i / n) for i in range(1, n + 1)]),
    ),
    (checks.check_permute_for_rotate_half, permute_for_rotate_half, permute_across_heads),
    (checks.check_t5_relative_bias, t5_relative_bias, t5_relative_bias_rounded),
    (checks.check_deepnorm_encoder_decoder, deepnorm_encoder_decoder, deepnorm_as_two_stacks),
    (checks.check_fold_norm_into_linear, fold_norm_into_linear, fold_norm_gain_only),
    (checks.check_layer_norm_backward, layer_norm_backward, layer_norm_backward_direct_path_only),
    (checks.check_shift_right, shift_right, shift_right_by_roll),
    (checks.check_cross_attention, cross_attention, cross_attention_without_mask),
    (checks.check_beam_step, beam_step, beam_step_without_running_scores),
    (checks.check_pre_ln_decoder_layer, pre_ln_decoder_layer, pre_ln_decoder_layer_without_causal_mask),
    (checks.check_training_days, training_days, training_days_forward_only),
    (checks.check_merge_softmax_parts, merge_softmax_parts, merge_softmax_parts_without_rescaling),
    (checks.check_ddp_loss_scales, ddp_loss_scales, ddp_loss_scales_without_world_size),
    (checks.check_block_parameters, block_parameters, block_parameters_without_gqa),
    (checks.check_swiglu_width, swiglu_width, swiglu_width_rounded_down),
    (checks.check_switch_routing, switch_routing, switch_routing_renormalized),
    (checks.check_mlm_outcomes, mlm_outcomes, lambda p, V: (0.8 * p, 0.1 * p, 0.1 * p)),  # ignores 1/V
    (checks.check_mean_pool, mean_pool, lambda hidden, lengths: hidden.mean(dim=1)),  # averages padding
    (checks.check_whole_word_mask, whole_word_mask, lambda is_start, draws, p: draws < p),  # per piece
]
IDS = [checker.__name__ for checker, _, _ in RIGHT_AND_WRONG]
CHECKERS = [checker for checker, _, _ in RIGHT_AND_WRONG]


def test_every_checker_is_tested():
    assert sorted(IDS) == sorted(n for n in checks.__all__ if n.startswith("check_"))


@pytest.mark.parametrize(("checker", "right", "wrong"), RIGHT_AND_WRONG, ids=IDS)
def test_checker_accepts_a_right_answer_with_one_line(checker, right, wrong, capsys):
    checker(right)
    out = capsys.readouterr().out
    assert out.startswith("✅ Correct:") and out.count("\n") == 1


@pytest.mark.parametrize(("checker", "right", "wrong"), RIGHT_AND_WRONG, ids=IDS)
def test_checker_rejects_a_wrong_answer_saying_what_was_expected(checker, right, wrong):
    with pytest.raises(AssertionError, match="expected") as info:
        checker(wrong)
    assert not isinstance(info.value, checks.ExerciseNotDone)


@pytest.mark.parametrize(("checker", "right", "wrong"), RIGHT_AND_WRONG, ids=IDS)
def test_checker_reports_an_unwritten_answer(checker, right, wrong):
    def my_answer(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(checks.ExerciseNotDone, match="`my_answer` is not written yet"):
        checker(my_answer)


# --- answers on another device -------------------------------------------------------------------


def _moved(value, device):
    """``value`` with every tensor, array and number in it as a tensor on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value).to(device)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return torch.tensor(value, device=device)
    if isinstance(value, (list, tuple)) and not all(isinstance(v, str) for v in value):
        return type(value)(_moved(v, device) for v in value)
    return value


def on_device(fn, device):
    """``fn`` returning its result moved to ``device`` (``functools.wraps`` keeps its signature)."""

    @functools.wraps(fn)
    def moved(*args, **kwargs):
        return _moved(fn(*args, **kwargs), device)

    return moved


# A list of characters has no tensor form: check_build_vocabulary has nothing to move to a device.
ON_A_DEVICE = [(c, right) for c, right, _ in RIGHT_AND_WRONG if c is not checks.check_build_vocabulary]
DEVICE_IDS = [c.__name__ for c, _ in ON_A_DEVICE]


@pytest.mark.parametrize(("checker", "right"), ON_A_DEVICE, ids=DEVICE_IDS)
def test_checker_rejects_values_on_the_meta_device_clearly(checker, right):
    with pytest.raises(AssertionError, match=r"got a tensor on the meta device \(no values\)") as info:
        checker(on_device(right, "meta"))
    assert not isinstance(info.value, checks.ExerciseNotDone)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("checker", "right"), ON_A_DEVICE, ids=DEVICE_IDS)
def test_checker_accepts_a_right_answer_on_cuda(checker, right, capsys):
    checker(on_device(right, "cuda"))
    assert capsys.readouterr().out.startswith("✅ Correct:")


def test_checker_accepts_a_right_answer_with_grad(capsys):
    checks.check_layer_norm_backward(lambda *a: tuple(g.requires_grad_() for g in layer_norm_backward(*a)))
    checks.check_count_parameters(lambda m: torch.tensor(float(count_parameters(m)), requires_grad=True))
    assert capsys.readouterr().out.count("✅ Correct:") == 2


# --- plausible wrong answers ---------------------------------------------------------------------


@pytest.mark.parametrize("checker", CHECKERS, ids=IDS)
def test_a_missing_return_is_reported_as_such(checker):
    def forgot_return(*args, **kwargs):
        pass

    with pytest.raises(AssertionError, match=r"got None: did you forget `return`\?"):
        checker(forgot_return)


GARBAGE = {
    "a string": "oops",
    "an empty dict": {},
    "a dict": {"x": 1, "y": 2},
    "a set": {1, 2},
    "zero": 0,
    "a float": 1.5,
    "a 3-vector": torch.zeros(3),
    "a 2x2 array": np.zeros((2, 2)),
    "a 2x2 complex tensor": torch.zeros(2, 2, dtype=torch.complex64),
    "a list of 3 ints": [1, 2, 3],
    "a pair of Nones": (None, None),
    "a pair of 2-vectors": [torch.zeros(2), torch.ones(2)],
    "a pair of strings": ("a", "b"),
    "a meta 3-vector": torch.zeros(3, device="meta"),
    "a NaN": torch.tensor(float("nan")),
    "a ragged list": [[1.0], [1.0, 2.0]],
    "a function": print,
}


@pytest.mark.parametrize("checker", CHECKERS, ids=IDS)
@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
def test_a_wrong_type_or_shape_is_an_assertion_error_not_a_crash(checker, garbage):
    with pytest.raises(AssertionError) as info:
        checker(lambda *args, **kwargs: garbage)
    message = str(info.value)
    assert "expected" in message and "got" in message
    assert not isinstance(info.value, checks.ExerciseNotDone)


@pytest.mark.parametrize("checker", CHECKERS, ids=IDS)
def test_an_error_inside_the_learners_function_propagates_unchanged(checker):
    def buggy(*args, **kwargs):
        raise ValueError("my own bug")

    with pytest.raises(ValueError, match="my own bug"):
        checker(buggy)


def test_a_list_is_accepted_where_a_tuple_is_expected(capsys):
    checks.check_batch_at(lambda *a: list(batch_at(*a)))
    checks.check_linear_backward(lambda *a: list(linear_backward(*a)))
    checks.check_deepnorm_encoder_decoder(lambda *a: list(deepnorm_encoder_decoder(*a)))
    checks.check_additive_attention(lambda *a: list(additive_attention(*a)))
    checks.check_causal_self_attention(lambda *a: list(causal_self_attention(*a)))
    checks.check_build_vocabulary(lambda text: tuple(sorted(set(text))))
    assert capsys.readouterr().out.count("✅ Correct:") == 6


@pytest.mark.parametrize(
    "answer",
    [
        lambda *a: dict(enumerate(batch_at(*a))),
        lambda *a: set(batch_at(*a)),
        lambda *a: (*batch_at(*a), a[0]),
        lambda *a: batch_at(*a)[:1],
        lambda *a: "x, y",
    ],
    ids=["dict", "set", "three values", "one value", "string"],
)
def test_a_dict_set_or_wrong_length_is_rejected_where_a_pair_is_expected(answer):
    with pytest.raises(AssertionError, match=r"batch_at\(tokens, .*\): expected 2 values"):
        checks.check_batch_at(answer)


def test_grouped_query_attention_without_copies_passes_and_copies_fail(capsys):
    checks.check_grouped_query_attention(grouped_query_attention_einsum)
    assert capsys.readouterr().out.startswith("✅ Correct:")
    for copying in (grouped_query_attention_broadcast, grouped_query_attention_repeated):
        with pytest.raises(AssertionError, match="expected no tensor as large as K or V repeated"):
            checks.check_grouped_query_attention(copying)
    with pytest.raises(AssertionError, match="not F.scaled_dot_product_attention, got a call"):
        checks.check_grouped_query_attention(
            lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        )


def test_a_tensor_or_numpy_scalar_is_accepted_where_a_number_is_expected(capsys):
    checks.check_count_parameters(lambda m: torch.tensor(count_parameters(m)))
    checks.check_count_parameters(lambda m: np.array(count_parameters(m)))  # a 0-d array
    checks.check_count_parameters(lambda m: np.int64(count_parameters(m)))
    checks.check_unigram_loss(lambda ids: torch.tensor(unigram_loss(ids)))
    checks.check_count_attention_parameters(lambda *a: torch.tensor([count_attention_parameters(*a)]))
    checks.check_deepnorm_encoder_decoder(lambda *a: torch.tensor(deepnorm_encoder_decoder(*a)))
    assert capsys.readouterr().out.count("✅ Correct:") == 6


def test_a_wrong_number_in_a_tensor_is_rejected_with_its_value():
    with pytest.raises(AssertionError, match=r"count_parameters\(nn.Linear\(3, 4\)\): expected 16, got 8"):
        checks.check_count_parameters(lambda m: torch.tensor(sum(p.shape[0] for p in m.parameters())))
    with pytest.raises(AssertionError, match="expected a number, got a tensor of shape"):
        checks.check_count_parameters(lambda m: torch.tensor([p.numel() for p in m.parameters()]))
    with pytest.raises(AssertionError, match="expected a number, got bool"):
        checks.check_count_parameters(lambda m: True)


@pytest.mark.parametrize(
    ("checker", "answer", "message"),
    [
        (checks.check_count_parameters, count_state_dict, r"BatchNorm1d\(4\)\): expected 8, got 17"),
        (checks.check_count_parameters, count_per_layer, r"sharing one weight\): expected 40, got 80"),
        (checks.check_log_softmax, log_softmax_global_max, "log_softmax on rows far apart: expected finite"),
        (checks.check_batch_cross_entropy, cross_entropy_of_softmax, "on large logits: expected finite"),
    ],
    ids=["state dict", "tied weight counted twice", "global max", "log of softmax"],
)
def test_a_plausible_mistake_of_notebooks_00_and_01_is_rejected(checker, answer, message):
    with pytest.raises(AssertionError, match=message):
        checker(answer)


def _layer_norm_backward_without_eps(x, weight, dout, eps):
    return _layer_norm_backward_with_std(x, weight, dout, x.var(-1, keepdim=True, unbiased=False).sqrt())


def _layer_norm_backward_std_plus_eps(x, weight, dout, eps):
    return _layer_norm_backward_with_std(
        x, weight, dout, x.var(-1, keepdim=True, unbiased=False).sqrt() + eps
    )


@pytest.mark.parametrize(
    "answer",
    [_layer_norm_backward_without_eps, _layer_norm_backward_std_plus_eps],
    ids=["without eps", "std + eps"],
)
def test_an_eps_mistake_in_layer_norm_backward_is_rejected_where_eps_matters(answer):
    with pytest.raises(
        AssertionError, match=r"layer_norm_backward on a (nearly constant|row of tiny).*difference"
    ):
        checks.check_layer_norm_backward(answer)


def _random_states():
    return torch.get_rng_state(), np.random.get_state()


def _assert_same_states(before, after):
    assert torch.equal(before[0], after[0]), "torch's global random state changed"
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1])
    assert before[1][2:] == after[1][2:], "numpy's global random state changed"


@pytest.mark.parametrize(("checker", "right", "wrong"), RIGHT_AND_WRONG, ids=IDS)
def test_checker_leaves_the_global_random_state_alone(checker, right, wrong, capsys):
    before = _random_states()
    checker(right)
    _assert_same_states(before, _random_states())
    with pytest.raises(AssertionError):
        checker(wrong)
    _assert_same_states(before, _random_states())


# --- the shared core -----------------------------------------------------------------------------


def test_expect_close_reports_shape_before_values():
    with pytest.raises(AssertionError, match=r"x shape: expected \(2, 2\), got \(4,\)"):
        checks.expect_close("x", np.ones(4), torch.ones(2, 2))
    with pytest.raises(AssertionError, match="x: expected finite values, got NaN or inf"):
        checks.expect_close("x", np.array([np.nan]), torch.ones(1))
    with pytest.raises(AssertionError, match="largest difference of 0.5"):
        checks.expect_close("x", np.array([1.5]), torch.ones(1))
    with pytest.raises(AssertionError, match="expected a function"):
        checks.attempt(42)


def test_expect_close_reports_none_and_meta():
    with pytest.raises(AssertionError, match=r"x: expected a result, got None: did you forget `return`\?"):
        checks.expect_close("x", None, torch.ones(1))
    with pytest.raises(AssertionError, match=r"x: expected values, got a tensor on the meta device"):
        checks.expect_close("x", torch.ones(1, device="meta"), torch.ones(1))
    checks.expect_close("x", [torch.tensor(1.0, requires_grad=True)], torch.ones(1))


def test_expect_equal_compares_values_never_truth_values_of_tensors():
    checks.expect_equal("x", torch.tensor([1, 2]), torch.tensor([1, 2]))
    checks.expect_equal("x", [1, 2], torch.tensor([1, 2]))
    checks.expect_equal("x", np.array([1.0, 2.0]), torch.tensor([1, 2]))
    checks.expect_equal("x", torch.tensor([1, 2]), [1, 2])
    checks.expect_equal("x", torch.tensor(5), 5)
    with pytest.raises(AssertionError, match=r"x: expected \[1, 2\], got \[1, 3\]"):
        checks.expect_equal("x", torch.tensor([1, 3]), torch.tensor([1, 2]))
    with pytest.raises(AssertionError, match=r"x shape: expected \(2,\), got \(3,\)"):
        checks.expect_equal("x", torch.tensor([1, 2, 3]), torch.tensor([1, 2]))
    with pytest.raises(AssertionError, match=r"x: expected \[1, 2\], got dict"):
        checks.expect_equal("x", {1: 1, 2: 2}, [1, 2])
    with pytest.raises(AssertionError, match="x: expected a tensor or an array, got str"):
        checks.expect_equal("x", "12", torch.tensor([1, 2]))
    with pytest.raises(AssertionError, match="x: expected 5, got 6"):
        checks.expect_equal("x", np.int64(6), 5)


def test_the_wrong_answer_message_of_notebook_00_is_unchanged():
    expected = (
        "build_vocabulary('hello world'): expected [' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w'], "
        "got [' ', 'd', 'e', 'h', 'l', 'l', 'l', 'o', 'o', 'r', 'w']"
    )
    with pytest.raises(AssertionError) as info:
        checks.check_build_vocabulary(sorted)
    assert str(info.value) == expected


# --- the package ---------------------------------------------------------------------------------


def test_every_public_name_resolves_and_is_listed():
    for name in checks.__all__:
        assert callable(getattr(checks, name)), name
    assert set(checks.__all__) <= set(dir(checks))
    assert set(checks.CHAPTER_OF) == {n for n in checks.__all__ if n.startswith("check_")}
    for name in ("attempt", "expect", "expect_close", "expect_equal", "ExerciseNotDone", "passed"):
        assert name in checks.__all__
    with pytest.raises(AttributeError, match="no attribute 'check_nothing'"):
        checks.check_nothing  # noqa: B018


def test_early_chapters_do_not_import_what_later_chapters_teach():
    code = (
        "import sys\n"
        "from course_lib import checks\n"
        "checks.check_build_vocabulary, checks.check_count_parameters, checks.check_log_softmax\n"
        "late = ['attention', 'positions', 'blocks', 'norms', 'toy']\n"
        "print(sorted(m for m in late if 'course_lib.' + m in sys.modules))\n"
    )
    root = Path(course_lib.__file__).resolve().parent.parent  # the checkout under test
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
