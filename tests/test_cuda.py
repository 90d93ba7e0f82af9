"""What differs on a CUDA GPU: the fused kernels, bf16, moving models and checkpoints between devices.

Skipped without a CUDA GPU; the GPU kit (``../shared/device/``) runs them.
"""

import pytest
import torch

from course_lib import attention as att
from course_lib import models, positions
from course_lib.train import load_checkpoint, save_checkpoint

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _no_tf32():
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def _qkv(n_kv_heads: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)  # drawn on the CPU, then moved: the same numbers everywhere
    q = torch.randn(2, 4, 6, 16, generator=g)
    k, v = (torch.randn(2, n_kv_heads, 6, 16, generator=g) for _ in range(2))
    return (t.to(CUDA, dtype) for t in (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("mask_kind", ["causal", "padding", "alibi"])
def test_fused_attention_equals_the_exact_path_on_cuda(dtype, n_kv_heads, mask_kind):
    q, k, v = _qkv(n_kv_heads, dtype)
    mask, bias = att.causal_mask(6, device=CUDA), None
    if mask_kind == "padding":
        mask = mask & att.padding_mask(torch.tensor([6, 3], device=CUDA), 6)
    if mask_kind == "alibi":
        bias = positions.alibi_bias(4, 6, device=CUDA)  # float32 even for bf16 queries
    n_rep = 4 // n_kv_heads
    exact, _ = att.scaled_dot_product_attention(
        q, att.repeat_kv(k, n_rep), att.repeat_kv(v, n_rep), mask, score_bias=bias
    )
    fused = att.fused_attention(q, k, v, mask, score_bias=bias)
    assert fused.dtype == exact.dtype == dtype
    tolerance = {"atol": 3e-2, "rtol": 3e-2} if dtype == torch.bfloat16 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(fused, exact, **tolerance)


def test_a_fully_masked_row_gives_zeros_on_cuda():
    q, k, v = _qkv(4, torch.float32)
    mask = att.causal_mask(6, device=CUDA).clone()
    mask[2] = False
    exact, weights = att.scaled_dot_product_attention(q, k, v, mask)
    fused = att.fused_attention(q, k, v, mask)
    for out in (exact, fused):
        assert not out.isnan().any() and (out[..., 2, :] == 0).all()
    assert (weights[..., 2, :] == 0).all()


def test_a_cpu_mask_with_cuda_queries_is_named():
    q, k, v = _qkv(4, torch.float32)
    with pytest.raises(ValueError, match="mask: expected a tensor on cuda:0 .*, got one on cpu"):
        att.fused_attention(q, k, v, att.causal_mask(6))


@pytest.mark.parametrize("position", models.POSITIONS)
def test_tiny_lm_gives_the_same_logits_on_cpu_and_cuda(position):
    torch.manual_seed(0)
    config = models.TinyLMConfig(
        30, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64, max_len=32, position=position
    )
    model = models.TinyLM(config).eval()
    idx = torch.randint(30, (2, 16), generator=torch.Generator().manual_seed(1))
    on_cpu, _ = model(idx)
    on_cuda, _ = model.to(CUDA)(idx.to(CUDA))
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-5, rtol=1e-5)


def test_a_checkpoint_saved_on_cuda_loads_on_the_cpu(tmp_path):
    torch.manual_seed(0)
    config = models.TinyLMConfig(30, d_model=32, n_heads=4, d_ff=64, max_len=32, position="rope")
    model = models.TinyLM(config).to(CUDA).eval()
    path = save_checkpoint(model, tmp_path / "cuda.safetensors", {"device": "cuda"})
    restored = models.TinyLM(config).eval()  # on the CPU
    assert load_checkpoint(restored, path) == {"device": "cuda"}
    idx = torch.randint(30, (1, 10))
    torch.testing.assert_close(restored(idx)[0], model(idx.to(CUDA))[0].cpu(), atol=1e-5, rtol=1e-5)
