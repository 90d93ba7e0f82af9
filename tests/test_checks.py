"""The exercise checkers: right answers pass with one line, wrong ones fail with "expected ..., got ...".

Besides one right and one wrong answer per checker, every checker is fed plausible wrong answers
(``None``, a dict, a tensor of the wrong shape, values on the ``meta`` device, ...) that must end
as an ``AssertionError``, never as an error inside the checker, and must leave the global random
state as it was.
"""

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import course_lib
from course_lib import attention, blocks, checks, norms, positions


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


def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value):  # the notebook's signature
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_value


def kv_cache_bytes_without_v(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value):
    return n_layers * n_kv_heads * head_dim * seq_len * bytes_per_value


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
    (checks.check_kv_cache_bytes, kv_cache_bytes, kv_cache_bytes_without_v),
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
    checks.check_layer_norm(lambda x, w, b, eps: norms.layer_norm(x.requires_grad_(), w, b, eps))
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
    checks.check_shift_targets(lambda ids: [ids[:-1], ids[1:]])
    checks.check_linear_backward(lambda *a: list(linear_backward(*a)))
    checks.check_deepnorm_constants(lambda n: list(blocks.deepnorm_constants(n)))
    checks.check_attend(lambda *a: list(attend(*a)))
    checks.check_self_attention(lambda *a: list(self_attention(*a)))
    checks.check_build_vocabulary(lambda text: tuple(sorted(set(text))))
    assert capsys.readouterr().out.count("✅ Correct:") == 6


@pytest.mark.parametrize(
    "answer",
    [
        lambda ids: {"x": ids[:-1], "y": ids[1:]},
        lambda ids: {ids[:-1], ids[1:]},
        lambda ids: (ids[:-1], ids[1:], ids),
        lambda ids: (ids[:-1],),
        lambda ids: "x, y",
    ],
    ids=["dict", "set", "three values", "one value", "string"],
)
def test_a_dict_set_or_wrong_length_is_rejected_where_a_pair_is_expected(answer):
    with pytest.raises(AssertionError, match=r"shift_targets result: expected 2 values"):
        checks.check_shift_targets(answer)


def test_a_tensor_or_numpy_scalar_is_accepted_where_a_number_is_expected(capsys):
    checks.check_count_parameters(lambda m: torch.tensor(count_parameters(m)))
    checks.check_count_parameters(lambda m: np.array(count_parameters(m)))  # a 0-d array
    checks.check_count_parameters(lambda m: np.int64(count_parameters(m)))
    checks.check_kv_cache_bytes(lambda **kw: torch.tensor(kv_cache_bytes(**kw)))
    checks.check_count_attention_parameters(lambda *a: torch.tensor([count_attention_parameters(*a)]))
    checks.check_kv_head_for(lambda j, h, kv: torch.tensor(j // (h // kv)))
    checks.check_deepnorm_constants(lambda n: torch.tensor(blocks.deepnorm_constants(n)))
    assert capsys.readouterr().out.count("✅ Correct:") == 7


def test_a_wrong_number_in_a_tensor_is_rejected_with_its_value():
    with pytest.raises(AssertionError, match=r"count_parameters\(nn.Linear\(3, 4\)\): expected 16, got 8"):
        checks.check_count_parameters(lambda m: torch.tensor(sum(p.shape[0] for p in m.parameters())))
    with pytest.raises(AssertionError, match="expected a number, got a tensor of shape"):
        checks.check_count_parameters(lambda m: torch.tensor([p.numel() for p in m.parameters()]))
    with pytest.raises(AssertionError, match="expected a number, got bool"):
        checks.check_count_parameters(lambda m: True)


def _layer_norm_without_eps(x, w, b, eps):
    mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
    return (x - mean) / var.sqrt() * w + b


def _layer_norm_std_plus_eps(x, w, b, eps):
    mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
    return (x - mean) / (var.sqrt() + eps) * w + b


def _rms_norm_without_eps(x, w, eps):
    return x / x.pow(2).mean(-1, keepdim=True).sqrt() * w


def _rms_norm_rms_plus_eps(x, w, eps):
    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w


@pytest.mark.parametrize(
    ("checker", "answer"),
    [
        (checks.check_layer_norm, _layer_norm_without_eps),
        (checks.check_layer_norm, _layer_norm_std_plus_eps),
        (checks.check_rms_norm, _rms_norm_without_eps),
        (checks.check_rms_norm, _rms_norm_rms_plus_eps),
    ],
    ids=["layer_norm without eps", "layer_norm std + eps", "rms_norm without eps", "rms_norm rms + eps"],
)
def test_an_eps_mistake_in_a_norm_is_rejected(checker, answer):
    with pytest.raises(AssertionError, match=r"_norm on .*largest difference"):
        checker(answer)


def test_kv_cache_bytes_accepts_the_course_lib_function_and_calls_by_keyword(capsys):
    checks.check_kv_cache_bytes(attention.kv_cache_bytes)
    checks.check_kv_cache_bytes(
        lambda n_layers, n_kv_heads, head_dim, seq_len=1, bytes_per_value=2, batch_size=1: (
            kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value) * batch_size
        )
    )
    assert capsys.readouterr().out.count("✅ Correct:") == 2
    call = r"kv_cache_bytes\(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=1, bytes_per_value=2\)"
    with pytest.raises(AssertionError, match=call + ": expected 524288, got 262144"):
        checks.check_kv_cache_bytes(kv_cache_bytes_without_v)
    with pytest.raises(AssertionError, match="expected a function that can be called as"):
        checks.check_kv_cache_bytes(lambda L, H, D, T, b: 2 * L * H * D * T * b)


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
