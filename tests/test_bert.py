"""``course_lib.bert`` against Hugging Face's BERT with the weights copied (guide, section 5)."""

import pytest
import torch

from course_lib import bert
from course_lib.attention import padding_mask
from course_lib.objectives import IGNORE_INDEX, mlm_mask
from tests.conftest import require

require("transformers")
import transformers  # noqa: E402

V, C, L, H, D_FF, MAX_LEN = 50, 32, 2, 4, 64, 24


def course_config(dropout: float = 0.0) -> bert.BertConfig:
    return bert.BertConfig(
        vocab_size=V, d_model=C, n_layers=L, n_heads=H, d_ff=D_FF, max_len=MAX_LEN, dropout=dropout
    )


def hf_mlm(seed: int = 0) -> transformers.BertForMaskedLM:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=V,
        hidden_size=C,
        num_hidden_layers=L,
        num_attention_heads=H,
        intermediate_size=D_FF,
        max_position_embeddings=MAX_LEN,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        attn_implementation="eager",
    )
    model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():  # a random init larger than BERT's 0.02, so that every weight matters
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_(
                    1 + 0.2 * torch.randn_like(p) if name.endswith("weight") else 0.2 * torch.randn_like(p)
                )
            else:
                p.normal_(std=0.3)
    return model


def padded_batch():
    lengths = torch.tensor([9, 5, 7])
    ids = torch.randint(0, V, (3, 9))
    ids[lengths[:, None] <= torch.arange(9)] = 0  # [PAD] = 0 after each sequence's end
    segment_ids = (torch.arange(9) >= 4).long().expand(3, 9).clone()  # sentence B from position 4
    return ids, segment_ids, lengths


def test_encoder_equals_hf_bert_model_on_a_padded_batch_with_segments():
    hf = hf_mlm()
    ours = bert.BertEncoder(course_config()).eval()
    bert.load_hf_bert_state_dict(ours, hf.bert.state_dict())  # BertModel's names, pooler included
    ids, segment_ids, lengths = padded_batch()
    with torch.no_grad():
        expected = hf.bert(
            input_ids=ids, token_type_ids=segment_ids, attention_mask=padding_mask(lengths, 9)[:, 0, 0].long()
        ).last_hidden_state
        got = ours(ids, segment_ids, padding_mask(lengths, 9))
    torch.testing.assert_close(got.last_hidden_state, expected, atol=1e-5, rtol=1e-5)
    assert got.hidden_states is None and got.attentions is None
    # The segments matter: without them the output changes.
    with torch.no_grad():
        without = ours(ids, None, padding_mask(lengths, 9)).last_hidden_state
    assert (without - expected).abs().max() > 1e-2


def test_mlm_logits_equal_hf_bert_for_masked_lm():
    hf = hf_mlm()
    ours = bert.BertForMaskedLM(course_config()).eval()
    bert.load_hf_bert_state_dict(ours, hf.state_dict())
    ids, segment_ids, lengths = padded_batch()
    attention_mask = padding_mask(lengths, 9)[:, 0, 0].long()
    with torch.no_grad():
        expected = hf(input_ids=ids, token_type_ids=segment_ids, attention_mask=attention_mask).logits
        logits, loss = ours(ids, segment_ids=segment_ids, pad_mask=padding_mask(lengths, 9))
    assert logits.shape == (3, 9, V) and loss is None
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    # The output projection is the token embedding itself (tied): the head owns only its bias.
    names = {name for name, _ in ours.mlm_head.named_parameters()}
    assert names == {"dense.weight", "dense.bias", "norm.weight", "norm.bias", "bias"}
    absent = next(i for i in range(V) if not (ids == i).any())  # a row only the head reads
    ours(ids)[0][0, 0, absent].backward()
    assert ours.encoder.token_embedding.weight.grad[absent].abs().sum() > 0


def test_weights_and_hidden_states_equal_hf_outputs():
    hf = hf_mlm(seed=1)
    ours = bert.BertEncoder(course_config()).eval()
    bert.load_hf_bert_state_dict(ours, hf.state_dict())
    ids, segment_ids, lengths = padded_batch()
    mask = padding_mask(lengths, 9)
    with torch.no_grad():
        expected = hf.bert(
            input_ids=ids,
            token_type_ids=segment_ids,
            attention_mask=mask[:, 0, 0].long(),
            output_attentions=True,
            output_hidden_states=True,
        )
        got = ours(ids, segment_ids, mask, need_weights=True, output_hidden_states=True)
    assert len(got.hidden_states) == L + 1 and len(got.attentions) == L
    for a, b in zip(got.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for a, b in zip(got.attentions, expected.attentions, strict=True):
        assert a.shape == (3, H, 9, 9)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert (got.attentions[0][1, :, :, 5:] == 0).all()  # nobody attends to the padding
    torch.testing.assert_close(got.last_hidden_state, got.hidden_states[-1])


def test_loss_ignores_minus_100_and_equals_cross_entropy_at_chosen_positions():
    hf = hf_mlm()
    ours = bert.BertForMaskedLM(course_config()).eval()
    bert.load_hf_bert_state_dict(ours, hf.state_dict())
    tokens = torch.randint(4, V, (4, 12))
    inputs, labels = mlm_mask(
        tokens, 3, V, (0, 1, 2, 3), mask_prob=0.4, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        logits, loss = ours(inputs, labels)
        expected = hf(input_ids=inputs, labels=labels).loss
    chosen = labels != IGNORE_INDEX
    by_hand = -logits.log_softmax(-1)[chosen].gather(-1, labels[chosen][:, None]).mean()
    torch.testing.assert_close(loss, by_hand)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bert.mlm_loss(ours, (inputs, labels)), loss)
    with torch.no_grad():
        padded = bert.mlm_loss(ours, (inputs, labels, padding_mask(torch.tensor([12, 8, 12, 5]), 12)))
    assert (padded - loss).abs() > 1e-4  # the mask reaches the encoder


def test_trains_with_course_train_loop():
    from course_lib.train import TrainConfig, train

    torch.manual_seed(0)
    model = bert.BertForMaskedLM(course_config(dropout=0.1))
    g = torch.Generator().manual_seed(0)
    pattern = torch.arange(4, 20)  # the same sequence every time: easy to fill in

    def next_batch():
        return mlm_mask(pattern.repeat(16, 1), 3, V, (0, 1, 2, 3), generator=g)

    history = train(model, next_batch, bert.mlm_loss, TrainConfig(steps=60, lr=3e-3), progress=False)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]


def test_state_dict_round_trip_and_errors():
    hf = hf_mlm()
    converted = bert.convert_hf_bert_state_dict(hf.state_dict())
    ours = bert.BertForMaskedLM(course_config())
    assert set(converted) == set(ours.state_dict())
    with pytest.raises(ValueError, match="missing"):  # BertModel's weights have no MLM head
        bert.load_hf_bert_state_dict(ours, hf.bert.state_dict())
    wider = bert.BertEncoder(bert.BertConfig(vocab_size=V + 1, d_model=C, n_layers=L, n_heads=H, d_ff=D_FF))
    with pytest.raises(ValueError, match="shape"):
        bert.load_hf_bert_state_dict(wider, hf.state_dict())
    untied = dict(hf.state_dict())
    untied["cls.predictions.decoder.weight"] = untied["cls.predictions.decoder.weight"] + 1
    with pytest.raises(ValueError, match="tied"):
        bert.convert_hf_bert_state_dict(untied)
    with pytest.raises(ValueError, match="unknown"):
        bert.convert_hf_bert_state_dict({"bert.encoder.layer.0.crossattention.weight": torch.zeros(1)})
    half = {k: v.half() for k, v in hf.state_dict().items()}
    bert.load_hf_bert_state_dict(ours, half)
    assert ours.encoder.token_embedding.weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"vocab_size": 0}, ValueError, "vocab_size"),
        ({"d_model": 30}, ValueError, "divisible"),
        ({"layer_norm_eps": 0.0}, ValueError, "layer_norm_eps"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"n_layers": 1.5}, TypeError, "n_layers"),
    ],
)
def test_config_validation(kwargs, error, words):
    args = {"vocab_size": V, "d_model": C, "n_heads": H, **kwargs}
    with pytest.raises(error, match=words):
        bert.BertConfig(**args)


def test_bad_inputs():
    model = bert.BertEncoder(course_config())
    ids = torch.randint(0, V, (2, 5))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, MAX_LEN + 1, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        model(ids.float())
    with pytest.raises(ValueError, match="segment_ids"):
        model(ids, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, 1, 1, T\)"):
        model(ids, pad_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="BertConfig"):
        bert.BertEncoder({"vocab_size": V})
