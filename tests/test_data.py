import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import data

CORPUS = data.load_corpus()
TOKENIZER = data.CharTokenizer.from_text(CORPUS)


def test_corpus_is_the_shipped_one():
    assert len(CORPUS) == 992_844
    assert CORPUS.startswith("HAMLET, PRINCE OF DENMARK")
    assert data.sha256_of(data.DATA_DIR / data.CORPUS_FILE) == data.CORPUS_SHA256
    assert data.corpus_ok()


def test_missing_corpus_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    with pytest.raises(data.CorpusError, match="not found.*shakespeare.txt.*make_corpus.py"):
        data.load_corpus()
    assert not data.corpus_ok()


def test_corrupted_corpus_is_detected(tmp_path, monkeypatch):
    shutil.copy(data.DATA_DIR / data.CORPUS_FILE, tmp_path / data.CORPUS_FILE)
    with (tmp_path / data.CORPUS_FILE).open("a") as handle:
        handle.write("one extra line\n")
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    with pytest.raises(data.CorpusError, match="corrupted: expected SHA-256 3342d5.*got"):
        data.load_corpus()


def test_tokenizer_vocabulary_is_sorted_and_complete():
    assert TOKENIZER.vocab_size == len(set(CORPUS)) == 73
    assert list(TOKENIZER.chars) == sorted(set(CORPUS))
    assert TOKENIZER.encode("\n") == [0]


@given(st.text(alphabet=st.sampled_from(TOKENIZER.chars), max_size=200))
def test_decode_inverts_encode(text):
    ids = TOKENIZER.encode(text)
    assert all(0 <= i < TOKENIZER.vocab_size for i in ids)
    assert TOKENIZER.decode(ids) == text
    assert TOKENIZER.decode(torch.tensor(ids, dtype=torch.long)) == text


def test_tokenizer_errors_name_the_culprit():
    with pytest.raises(ValueError, match=r"\['~'\] are not in the vocabulary"):
        TOKENIZER.encode("hello~")
    with pytest.raises(ValueError, match=r"expected ids in \[0, 73\), got \[99\]"):
        TOKENIZER.decode([1, 99])
    with pytest.raises(ValueError, match="non-empty str"):
        data.CharTokenizer.from_text("")


def test_train_val_split_is_by_position():
    tokens = torch.arange(100)
    train, val = data.train_val_split(tokens, 0.1)
    assert len(train) == 90 and len(val) == 10
    assert torch.equal(torch.cat([train, val]), tokens)
    with pytest.raises(ValueError, match="strictly between 0 and 1, got 1.5"):
        data.train_val_split(tokens, 1.5)
    with pytest.raises(ValueError, match="expected a 1-D tensor, got shape"):
        data.train_val_split(tokens.view(10, 10))


@settings(deadline=None)  # the first example's call can exceed 200 ms on a busy 2-core machine
@given(st.integers(1, 8), st.integers(1, 16), st.integers(0, 1000))
def test_batch_targets_are_the_next_tokens(batch_size, block_size, seed):
    tokens = torch.arange(50) * 3  # distinct values: position is recoverable
    generator = torch.Generator().manual_seed(seed)
    x, y = data.get_batch(tokens, batch_size, block_size, generator)
    assert x.shape == y.shape == (batch_size, block_size)
    assert x.dtype == y.dtype == torch.long
    torch.testing.assert_close(y, x + 3)  # each target is the token after its input
    again = data.get_batch(tokens, batch_size, block_size, torch.Generator().manual_seed(seed))
    assert torch.equal(x, again[0])


def test_get_batch_rejects_bad_input():
    tokens = torch.arange(10)
    with pytest.raises(ValueError, match="more than block_size=10 tokens, got 10"):
        data.get_batch(tokens, 2, 10)
    with pytest.raises(TypeError, match="expected dtype"):
        data.get_batch(tokens.float(), 2, 3)
    with pytest.raises(ValueError, match="batch_size: expected a positive int, got 0"):
        data.get_batch(tokens, 0, 3)
    with pytest.raises(TypeError, match="expected a torch.Tensor, got list"):
        data.get_batch([1, 2, 3], 1, 1)


def test_spirals():
    X, y = data.make_spirals(50, 3, seed=0)
    assert X.shape == (150, 2) and y.shape == (150,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50, 50, 50]
    assert np.abs(X).max() <= 1.0
    X2, _ = data.make_spirals(50, 3, seed=0)
    assert np.array_equal(X, X2)
    with pytest.raises(ValueError, match="noise: expected a number >= 0"):
        data.make_spirals(noise=-1)
