"""Exercise checkers: one friendly line on success, a helpful ``AssertionError`` otherwise.

Each exercise asks for a function; its checker calls that function on cases the learner has not
seen and compares with a reference (a PyTorch built-in where one exists). A function whose body
is still ``raise NotImplementedError()`` (the student version) gets ``ExerciseNotDone``, an
``AssertionError`` that says which function to write.

The package is one module per notebook (``ch00_orientation`` ... ``ch10_bert``) over a
shared core (``_core``: calling the learner's function, turning answers into CPU values, comparing
expected with got). ``checks.check_<name>`` loads only its own chapter's module, on first use, so
that notebook 00 does not import the attention or position code it has not taught yet.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from course_lib.checks._core import (
    ExerciseNotDone,
    as_float64,
    as_number,
    as_sequence,
    as_tensor,
    attempt,
    expect,
    expect_close,
    expect_equal,
    expect_number,
    passed,
    seeded_randn,
    to_cpu,
)

if TYPE_CHECKING:  # for editors and type checkers; at run time each chapter loads on first use
    from course_lib.checks.ch00_orientation import (
        check_batch_at,
        check_build_vocabulary,
        check_count_parameters,
        check_unigram_loss,
    )
    from course_lib.checks.ch01_forward_backward import (
        check_batch_cross_entropy,
        check_linear_backward,
        check_log_softmax,
    )
    from course_lib.checks.ch02_attention import (
        check_additive_attention,
        check_masked_softmax,
        check_sliding_window_mask,
    )
    from course_lib.checks.ch03_self_attention import (
        check_causal_self_attention,
        check_lookup,
        check_padded_causal_mask,
    )
    from course_lib.checks.ch04_multi_head_attention import (
        check_count_attention_parameters,
        check_decode_step,
        check_grouped_query_attention,
    )
    from course_lib.checks.ch05_positional_encoding import (
        check_alibi_slopes,
        check_permute_for_rotate_half,
        check_t5_relative_bias,
    )
    from course_lib.checks.ch06_normalization import (
        check_deepnorm_encoder_decoder,
        check_fold_norm_into_linear,
        check_layer_norm_backward,
    )
    from course_lib.checks.ch07_transformer import (
        check_beam_step,
        check_cross_attention,
        check_pre_ln_decoder_layer,
        check_shift_right,
    )
    from course_lib.checks.ch08_parallelism_and_efficiency import (
        check_ddp_loss_scales,
        check_merge_softmax_parts,
        check_training_days,
    )
    from course_lib.checks.ch09_architectures import (
        check_block_parameters,
        check_swiglu_width,
        check_switch_routing,
    )
    from course_lib.checks.ch10_bert import (
        check_mean_pool,
        check_mlm_outcomes,
        check_whole_word_mask,
    )

# Each checker and the chapter module that defines it (the order of the syllabus).
CHAPTER_OF: dict[str, str] = {
    "check_build_vocabulary": "ch00_orientation",
    "check_batch_at": "ch00_orientation",
    "check_unigram_loss": "ch00_orientation",
    "check_count_parameters": "ch00_orientation",
    "check_log_softmax": "ch01_forward_backward",
    "check_linear_backward": "ch01_forward_backward",
    "check_batch_cross_entropy": "ch01_forward_backward",
    "check_sliding_window_mask": "ch02_attention",
    "check_masked_softmax": "ch02_attention",
    "check_additive_attention": "ch02_attention",
    "check_padded_causal_mask": "ch03_self_attention",
    "check_causal_self_attention": "ch03_self_attention",
    "check_lookup": "ch03_self_attention",
    "check_count_attention_parameters": "ch04_multi_head_attention",
    "check_decode_step": "ch04_multi_head_attention",
    "check_grouped_query_attention": "ch04_multi_head_attention",
    "check_alibi_slopes": "ch05_positional_encoding",
    "check_permute_for_rotate_half": "ch05_positional_encoding",
    "check_t5_relative_bias": "ch05_positional_encoding",
    "check_deepnorm_encoder_decoder": "ch06_normalization",
    "check_fold_norm_into_linear": "ch06_normalization",
    "check_layer_norm_backward": "ch06_normalization",
    "check_shift_right": "ch07_transformer",
    "check_cross_attention": "ch07_transformer",
    "check_beam_step": "ch07_transformer",
    "check_pre_ln_decoder_layer": "ch07_transformer",
    "check_training_days": "ch08_parallelism_and_efficiency",
    "check_merge_softmax_parts": "ch08_parallelism_and_efficiency",
    "check_ddp_loss_scales": "ch08_parallelism_and_efficiency",
    "check_block_parameters": "ch09_architectures",
    "check_swiglu_width": "ch09_architectures",
    "check_switch_routing": "ch09_architectures",
    "check_mlm_outcomes": "ch10_bert",
    "check_mean_pool": "ch10_bert",
    "check_whole_word_mask": "ch10_bert",
}

__all__ = [
    # the shared core
    "ExerciseNotDone",
    "as_float64",
    "as_number",
    "as_sequence",
    "as_tensor",
    "attempt",
    "expect",
    "expect_close",
    "expect_equal",
    "expect_number",
    "passed",
    "seeded_randn",
    "to_cpu",
    # 00 · Orientation
    "check_build_vocabulary",
    "check_batch_at",
    "check_unigram_loss",
    "check_count_parameters",
    # 01 · Forward and backward propagation
    "check_log_softmax",
    "check_linear_backward",
    "check_batch_cross_entropy",
    # 02 · Attention
    "check_sliding_window_mask",
    "check_masked_softmax",
    "check_additive_attention",
    # 03 · Self-attention
    "check_padded_causal_mask",
    "check_causal_self_attention",
    "check_lookup",
    # 04 · Multi-head attention
    "check_count_attention_parameters",
    "check_decode_step",
    "check_grouped_query_attention",
    # 05 · Positional encoding
    "check_alibi_slopes",
    "check_permute_for_rotate_half",
    "check_t5_relative_bias",
    # 06 · Normalization
    "check_deepnorm_encoder_decoder",
    "check_fold_norm_into_linear",
    "check_layer_norm_backward",
    # 07 · The Transformer
    "check_shift_right",
    "check_cross_attention",
    "check_beam_step",
    "check_pre_ln_decoder_layer",
    # 08 · Parallelism and efficiency
    "check_training_days",
    "check_merge_softmax_parts",
    "check_ddp_loss_scales",
    # 09 · Architectures of large models
    "check_block_parameters",
    "check_swiglu_width",
    "check_switch_routing",
    # 10 · BERT
    "check_mlm_outcomes",
    "check_mean_pool",
    "check_whole_word_mask",
]


def __getattr__(name: str) -> Any:
    """Load a checker's chapter module on first use (PEP 562), then keep the checker here."""
    chapter = CHAPTER_OF.get(name)
    if chapter is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    checker = getattr(importlib.import_module(f"{__name__}.{chapter}"), name)
    globals()[name] = checker
    return checker


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
