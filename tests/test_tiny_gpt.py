"""The shipped checkpoint data/tiny_gpt.safetensors and its loader, pretrained.load_tiny_gpt."""

import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from course_lib import data, pretrained
from course_lib.models import TinyLM, TinyLMConfig
from course_lib.objectives import bigram_loss
from course_lib.sampling import sample

MODEL, TOKENIZER, METADATA = pretrained.load_tiny_gpt()
CORPUS = data.load_corpus()
IDS = torch.tensor(data.CharTokenizer.from_text(CORPUS).encode(CORPUS), dtype=torch.uint8)
TRAIN, VAL = data.train_val_split(IDS)
README = Path(__file__).resolve().parent.parent / "data" / "README.md"


def test_the_model_is_the_recorded_tied_tinylm():
    assert isinstance(MODEL, TinyLM) and not MODEL.training
    assert MODEL.config == TinyLMConfig(**METADATA["model_config"])
    assert (MODEL.config.n_layers, MODEL.config.d_model, MODEL.config.vocab_size) == (4, 128, 73)
    assert MODEL.head.weight is MODEL.token_embedding.weight  # tied: one matrix
    assert sum(p.numel() for p in MODEL.parameters()) == METADATA["n_params"]
    assert METADATA["corpus_sha256"] == data.CORPUS_SHA256
    assert METADATA["seed"] == 0 and METADATA["steps"] > 0
    assert METADATA["torch_version"].startswith("2.")


def test_recorded_losses_against_the_bigram_level():
    bigram = bigram_loss(TRAIN, VAL, TOKENIZER.vocab_size)
    assert METADATA["bigram_val_loss"] == pytest.approx(bigram, abs=1e-9)
    assert bigram == pytest.approx(2.531, abs=1e-3)
    # Far below the bigram level and below notebook 11's 60-second model (about 2.0 nats/char).
    assert METADATA["val_loss"] < 1.6 < bigram - 0.9
    assert METADATA["val_perplexity"] == pytest.approx(math.exp(METADATA["val_loss"]))
    # data/README.md states the recorded loss.
    assert f"{METADATA['val_loss']:.3f}" in README.read_text()


def test_loss_on_a_fixed_validation_slice_is_the_recorded_one():
    n = METADATA["val_slice_windows"] * METADATA["block_size"]
    x = VAL[:n].long().view(-1, METADATA["block_size"])  # (8, 128)
    y = VAL[1 : n + 1].long().view(-1, METADATA["block_size"])  # (8, 128): the next characters
    with torch.no_grad():
        _, loss = MODEL(x, y)
    assert loss.item() == pytest.approx(METADATA["val_slice_loss"], abs=1e-4)
    assert loss.item() < bigram_loss(TRAIN, VAL[: n + 1], TOKENIZER.vocab_size) - 0.3
    # An untrained model of the same shape is near the uniform level ln(73) = 4.29 on the slice.
    torch.manual_seed(0)
    with torch.no_grad():
        _, fresh = pretrained.tied_tiny_lm(MODEL.config)(x, y)
    assert fresh.item() > 4.0


def test_the_tokenizer_is_the_corpus_tokenizer_and_round_trips():
    assert TOKENIZER.chars == data.CharTokenizer.from_text(CORPUS).chars
    assert "".join(TOKENIZER.chars) == METADATA["chars"]
    text = CORPUS[10_000:10_500]
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text
    assert TOKENIZER.decode(torch.tensor(TOKENIZER.encode(text))) == text


def test_sampling_gives_printable_text_of_the_right_length():
    prompt_text = "ROMEO.\n"
    prompt = torch.tensor([TOKENIZER.encode(prompt_text)])  # (1, 7)
    outputs = [
        sample(MODEL, prompt, 200, temperature=0.8, generator=torch.Generator().manual_seed(0))
        for _ in range(2)
    ]
    assert outputs[0].shape == (1, len(prompt_text) + 200)
    assert torch.equal(outputs[0], outputs[1])  # the same generator seed, the same text
    text = TOKENIZER.decode(outputs[0][0])
    assert text.startswith(prompt_text)
    assert all(ch.isprintable() or ch == "\n" for ch in text)
    # Mostly real words: most words of 3+ letters it writes occur in the corpus.
    vocabulary = set(re.findall(r"[A-Za-z]{3,}", CORPUS))
    words = re.findall(r"[A-Za-z]{3,}", text[len(prompt_text) :])
    assert len(words) > 15
    assert sum(word in vocabulary for word in words) / len(words) > 0.7


def test_missing_checkpoint_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    with pytest.raises(pretrained.CheckpointError, match=r"not found.*tiny_gpt\.safetensors.*train_gpt\.py"):
        pretrained.load_tiny_gpt()


def test_corrupted_checkpoint_is_detected(tmp_path, monkeypatch):
    shutil.copy(data.DATA_DIR / pretrained.TINY_GPT_FILE, tmp_path / pretrained.TINY_GPT_FILE)
    raw = bytearray((tmp_path / pretrained.TINY_GPT_FILE).read_bytes())
    raw[-100] ^= 1  # one bit of one weight
    (tmp_path / pretrained.TINY_GPT_FILE).write_bytes(bytes(raw))
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    with pytest.raises(
        pretrained.CheckpointError,
        match=r"tiny_gpt\.safetensors is corrupted: expected SHA-256 .* got .*git checkout --",
    ):
        pretrained.load_tiny_gpt()


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"not a safetensors file")
    not_a_checkpoint = r"other\.safetensors is not a checkpoint.*train_gpt\.py"
    with pytest.raises(pretrained.CheckpointError, match=not_a_checkpoint):
        pretrained.load_tiny_gpt(path=other)


def test_argument_errors():
    with pytest.raises(TypeError, match="device: expected a torch.device, a str or None, got int"):
        pretrained.load_tiny_gpt(3)
    with pytest.raises(TypeError, match="verify: expected a bool"):
        pretrained.load_tiny_gpt(verify="yes")
    with pytest.raises(TypeError, match="config: expected a TinyLMConfig"):
        pretrained.tied_tiny_lm({"vocab_size": 73})
