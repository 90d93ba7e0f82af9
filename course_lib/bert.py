"""BERT: a bidirectional Transformer encoder trained as a masked language model (notebook 10).

Devlin et al. 2019, "BERT: pre-training of deep bidirectional Transformers for language
understanding". The input is the sum of three learned embeddings, token + position + segment
(token type, sentence A or B), followed by a LayerNorm; then ``L`` Post-LN encoder layers
(``course_lib.transformer.EncoderLayer`` with GELU and LayerNorm eps 1e-12, as BERT's code);
every position attends to every other (no causal mask), padding excepted. The masked-LM head is
``Linear -> GELU -> LayerNorm``, then a projection onto the vocabulary that shares its weight
with the token embedding, plus a bias of its own (``course_lib.objectives.mlm_mask`` makes the
inputs and labels).

Shapes: ``B`` batch, ``T`` positions, ``C = d_model``, ``H`` heads, ``V`` vocabulary, ``L``
layers. Padding masks are boolean ``(B, 1, 1, T)`` with ``True`` = may attend
(``attention.padding_mask``).

``load_hf_bert_state_dict`` copies the weights of a Hugging Face BERT (``BertModel`` or
``BertForMaskedLM``) into these models: the only place that knows Hugging Face's names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validate import check_number, check_positive_int, check_probability, check_tensor
from course_lib.models import init_weights
from course_lib.norms import LayerNorm
from course_lib.objectives import IGNORE_INDEX
from course_lib.transformer import EncoderLayer

IDS = (torch.int64, torch.int32)


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int  # V, number of token ids (30522 in BERT-base's WordPiece vocabulary)
    d_model: int = 64  # C, hidden size (768 in BERT-base)
    n_layers: int = 2  # L, encoder layers (12 in BERT-base)
    n_heads: int = 4  # H, attention heads (12 in BERT-base)
    d_ff: int = 256  # feed-forward hidden width, "intermediate size" (4 * d_model in BERT)
    max_len: int = 128  # learned position embeddings (512 in BERT)
    type_vocab_size: int = 2  # segment ids: sentence A = 0, sentence B = 1
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon (PyTorch's default is 1e-5)
    dropout: float = 0.1  # on embeddings, attention weights and sublayer outputs (BERT's 0.1)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len", "type_vocab_size"):
            check_positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if not check_number(self.layer_norm_eps, "layer_norm_eps") > 0:
            raise ValueError(f"layer_norm_eps: expected a positive number, got {self.layer_norm_eps!r}")
        check_probability(self.dropout, "dropout")


class BertOutput(NamedTuple):
    """What ``BertEncoder`` returns (the names of Hugging Face's ``BaseModelOutput``)."""

    last_hidden_state: torch.Tensor  # (B, T, C)
    hidden_states: list[torch.Tensor] | None  # L + 1 tensors (B, T, C): embeddings, then each layer
    attentions: list[torch.Tensor] | None  # L tensors (B, H, T, T)


class BertEncoder(nn.Module):
    """Embeddings (token + position + segment, LayerNorm, dropout) and ``L`` Post-LN encoder layers."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config: expected a BertConfig, got {type(config).__name__}")
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.max_len, c.d_model)
        self.segment_embedding = nn.Embedding(c.type_vocab_size, c.d_model)
        self.embedding_norm = LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.embedding_dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                c.d_model,
                c.n_heads,
                c.d_ff,
                placement="post",
                dropout=c.dropout,
                activation="gelu",  # exact (erf) GELU, as Hugging Face's hidden_act "gelu"
                norm_eps=c.layer_norm_eps,
            )
            for _ in range(c.n_layers)
        )
        self.apply(init_weights)

    def _check_inputs(
        self, ids: torch.Tensor, segment_ids: torch.Tensor | None, pad_mask: torch.Tensor | None
    ) -> None:
        check_tensor(ids, "ids", ndim=2, dtypes=IDS)
        B, T = ids.shape
        if not 0 < T <= self.config.max_len:
            raise ValueError(f"ids: expected 1..max_len={self.config.max_len} positions, got {T}")
        if segment_ids is not None:
            check_tensor(segment_ids, "segment_ids", ndim=2, dtypes=IDS)
            if segment_ids.shape != ids.shape:
                raise ValueError(
                    f"segment_ids: expected the shape of ids {tuple(ids.shape)}, "
                    f"got {tuple(segment_ids.shape)}"
                )
        if pad_mask is not None:
            check_tensor(pad_mask, "pad_mask", dtypes=(torch.bool,))
            if tuple(pad_mask.shape) != (B, 1, 1, T):
                raise ValueError(
                    f"pad_mask: expected shape (B, 1, 1, T) = ({B}, 1, 1, {T}) (attention.padding_mask), "
                    f"got {tuple(pad_mask.shape)}"
                )

    def embed(self, ids: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``LayerNorm(token + position + segment)`` ``(B, T, C)``; ``segment_ids`` default to 0."""
        T = ids.shape[1]
        positions = torch.arange(T, device=ids.device)  # (T,)
        if segment_ids is None:
            segment_ids = torch.zeros_like(ids)
        x = (
            self.token_embedding(ids)
            + self.position_embedding(positions)
            + self.segment_embedding(segment_ids)
        )
        return self.embedding_dropout(self.embedding_norm(x))  # (B, T, C)

    def forward(
        self,
        ids: torch.Tensor,
        segment_ids: torch.Tensor | None = None,
        pad_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
        output_hidden_states: bool = False,
    ) -> BertOutput:
        """Contextual vectors for token ids.

        Args:
            ids: token ids ``(B, T)``.
            segment_ids: token types ``(B, T)`` (0 for sentence A, 1 for B); default all 0.
            pad_mask: ``(B, 1, 1, T)``, ``True`` on real tokens: no position attends to padding.
            need_weights: also return every layer's attention weights (slower reference path).
            output_hidden_states: also return the embeddings and every layer's output.

        Returns:
            ``BertOutput(last_hidden_state (B, T, C), hidden_states, attentions)``; the last two
            are ``None`` unless asked for.
        """
        self._check_inputs(ids, segment_ids, pad_mask)
        x = self.embed(ids, segment_ids)  # (B, T, C)
        hidden_states, attentions = [x], []
        for layer in self.layers:
            x, weights = layer.forward_with_weights(x, pad_mask, need_weights=need_weights)
            hidden_states.append(x)
            attentions.append(weights)
        return BertOutput(
            x, hidden_states if output_hidden_states else None, attentions if need_weights else None
        )


class MLMHead(nn.Module):
    """``Linear -> GELU -> LayerNorm``, then logits ``h @ E^T + bias`` with ``E`` the token embedding."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.norm = LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, token_embedding: torch.Tensor) -> torch.Tensor:
        """``hidden (B, T, C)`` and the embedding matrix ``(V, C)`` -> logits ``(B, T, V)``."""
        h = self.norm(F.gelu(self.dense(hidden)))  # (B, T, C)
        return F.linear(h, token_embedding, self.bias)  # (B, T, C) @ (C, V) -> (B, T, V)


class BertForMaskedLM(nn.Module):
    """``BertEncoder`` and the masked-LM head, whose output projection is the token embedding."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = BertEncoder(config)
        self.mlm_head = MLMHead(config)
        self.mlm_head.apply(init_weights)

    def forward(
        self,
        ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        segment_ids: torch.Tensor | None = None,
        pad_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, V)`` for every position, and the loss when ``labels`` are given.

        ``labels (B, T)``: the original token where one is predicted, ``-100`` elsewhere (as
        ``objectives.mlm_mask`` returns); the loss is the mean cross-entropy over the predicted
        positions (``nan`` if there are none).
        """
        hidden = self.encoder(ids, segment_ids, pad_mask).last_hidden_state  # (B, T, C)
        logits = self.mlm_head(hidden, self.encoder.token_embedding.weight)  # (B, T, V)
        if labels is None:
            return logits, None
        check_tensor(labels, "labels", dtypes=IDS)
        if labels.shape != ids.shape:
            raise ValueError(
                f"labels: expected the shape of ids {tuple(ids.shape)}, got {tuple(labels.shape)}"
            )
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten().long(), ignore_index=IGNORE_INDEX)
        return logits, loss


def mlm_loss(model: BertForMaskedLM, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The loss function for ``course_lib.train.train``.

    ``batch`` is ``(inputs, labels)`` or ``(inputs, labels, pad_mask)``, as ``objectives.mlm_mask``
    and ``attention.padding_mask`` make them; positions labelled ``-100`` are ignored.
    """
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError("batch: expected (inputs, labels) or (inputs, labels, pad_mask)")
    inputs, labels, *rest = batch
    return model(inputs, labels, pad_mask=rest[0] if rest else None)[1]


# --- Hugging Face weights ------------------------------------------------------------------------

_HF_LAYER_NAMES = {  # Hugging Face's name inside encoder.layer.N -> ours inside layers.N
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "norm1",  # after attention + residual
    "intermediate.dense": "ffn.up",
    "output.dense": "ffn.down",
    "output.LayerNorm": "norm2",  # after the feed-forward + residual
}
_HF_OTHER_NAMES = {  # module names outside the layers
    "embeddings.word_embeddings": "encoder.token_embedding",
    "embeddings.position_embeddings": "encoder.position_embedding",
    "embeddings.token_type_embeddings": "encoder.segment_embedding",
    "embeddings.LayerNorm": "encoder.embedding_norm",
    "cls.predictions.transform.dense": "mlm_head.dense",
    "cls.predictions.transform.LayerNorm": "mlm_head.norm",
}
# Not copied: the pooler ([CLS] -> Linear -> tanh, for next-sentence prediction, which we do not
# train), the position_ids buffer, and the decoder's weight and bias (the same tensors as the
# word embeddings and cls.predictions.bias, checked below).
_HF_SKIPPED = ("pooler.", "embeddings.position_ids", "cls.predictions.decoder.")


def convert_hf_bert_state_dict(hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hugging Face BERT state dict with ``BertForMaskedLM``'s names turned into ours.

    Takes the keys of ``BertModel`` (``embeddings...``, ``encoder.layer.N...``) or of
    ``BertForMaskedLM`` (the same under ``bert.``, plus ``cls.predictions...``). Returns names of
    ``BertForMaskedLM`` (``encoder....``, ``mlm_head....``); the values are the same tensors.
    Old checkpoints' LayerNorm ``gamma``/``beta`` are read as ``weight``/``bias``.
    """
    if not isinstance(hf_state_dict, dict):
        raise TypeError(f"hf_state_dict: expected a dict of tensors, got {type(hf_state_dict).__name__}")
    ours = {}
    for key, value in hf_state_dict.items():
        name = key.removeprefix("bert.")
        if name.startswith(_HF_SKIPPED):
            continue
        module, _, param = name.rpartition(".")
        param = {"gamma": "weight", "beta": "bias"}.get(param, param)
        if name == "cls.predictions.bias":
            ours["mlm_head.bias"] = value
        elif module in _HF_OTHER_NAMES:
            ours[f"{_HF_OTHER_NAMES[module]}.{param}"] = value
        elif module.startswith("encoder.layer."):
            index, _, inner = module.removeprefix("encoder.layer.").partition(".")
            if inner not in _HF_LAYER_NAMES:
                raise ValueError(f"hf_state_dict: unknown BERT parameter {key!r}")
            ours[f"encoder.layers.{index}.{_HF_LAYER_NAMES[inner]}.{param}"] = value
        else:
            raise ValueError(f"hf_state_dict: unknown BERT parameter {key!r}")
    decoder = hf_state_dict.get("cls.predictions.decoder.weight")
    if decoder is not None and not torch.equal(decoder, ours.get("encoder.token_embedding.weight", decoder)):
        raise ValueError(
            "hf_state_dict: cls.predictions.decoder.weight differs from the word embeddings; "
            "this BERT's output projection is tied to its token embedding"
        )
    return ours


@torch.no_grad()
def load_hf_bert_state_dict(
    model: BertEncoder | BertForMaskedLM, hf_state_dict: dict[str, torch.Tensor]
) -> None:
    """Copy a Hugging Face BERT state dict into ``model`` (in place; fp16 weights are cast).

    A ``BertEncoder`` takes the encoder's weights (a head in the checkpoint is ignored); a
    ``BertForMaskedLM`` needs the head too. Every parameter of ``model`` must be filled, with the
    shape it has, else ``ValueError`` names the missing or mismatched ones.
    """
    converted = convert_hf_bert_state_dict(hf_state_dict)
    if isinstance(model, BertEncoder):
        converted = {k.removeprefix("encoder."): v for k, v in converted.items() if k.startswith("encoder.")}
    elif not isinstance(model, BertForMaskedLM):
        raise TypeError(f"model: expected a BertEncoder or BertForMaskedLM, got {type(model).__name__}")
    target = model.state_dict()
    missing = sorted(set(target) - set(converted))
    unexpected = sorted(set(converted) - set(target))
    if missing or unexpected:
        raise ValueError(f"hf_state_dict: missing {missing}, unexpected {unexpected} (in our names)")
    for name, value in converted.items():
        if tuple(value.shape) != tuple(target[name].shape):
            raise ValueError(
                f"hf_state_dict: {name} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(target[name].shape)} (is the config the checkpoint's?)"
            )
        target[name].copy_(value)  # copy_ casts the dtype (fp16 -> fp32) and moves the device
