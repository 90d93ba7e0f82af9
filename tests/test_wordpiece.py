"""``course_lib.wordpiece``: BERT's basic tokenizer and greedy WordPiece.

On a tiny hand-made vocabulary (no files needed), then against Hugging Face's ``tokenizers`` and
``transformers.BertTokenizer`` on MiniLM's real vocabulary (skipped without the weights, failing
instead under ``COURSE_REQUIRE_ALL=1``).
"""

import pytest
import torch

from course_lib import pretrained
from course_lib.wordpiece import WordPieceTokenizer, basic_tokenize, load_vocab, wordpiece
from tests.conftest import _missing, require

TINY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##a", "aa",
        "the", "cat", "##s", "sat", ".", ",", "!", "'", "t", "don", "cafe", "##fe", "caf"]  # fmt: skip


@pytest.fixture
def tiny() -> WordPieceTokenizer:
    return WordPieceTokenizer({token: i for i, token in enumerate(TINY)})


def test_greedy_longest_match_first():
    vocab = set(TINY)
    assert wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]  # Google's example
    assert wordpiece("aaa", vocab) == ["aa", "##a"]  # the longest prefix first, not "a ##a ##a"
    assert wordpiece("cats", vocab) == ["cat", "##s"]
    assert wordpiece("unx", vocab) == ["[UNK]"]  # one part without a match: the whole word is unknown
    assert wordpiece("a" * 101, vocab) == ["[UNK]"]  # longer than 100 characters
    assert wordpiece("a" * 100, vocab) == ["aa"] + ["##a"] * 98


def test_basic_tokenizer_lowercases_strips_accents_and_splits_punctuation():
    assert basic_tokenize("  Don't\tSTOP,\u00a0Café!! ") == ["don", "'", "t", "stop", ",", "cafe", "!", "!"]
    assert basic_tokenize("Café", lower_case=False) == ["Café"]
    assert basic_tokenize("中文x\x00y") == ["中", "文", "xy"]  # CJK spaced out, NUL dropped
    assert basic_tokenize("") == [] and basic_tokenize(" \n ") == []


def test_tokenize_encode_and_decode_on_a_tiny_vocabulary(tiny):
    assert tiny.tokenize("The CATS sat, don't!") == ["the", "cat", "##s", "sat", ",", "don", "'", "t", "!"]
    assert tiny.tokenize("the [MASK] sat") == ["the", "[MASK]", "sat"]  # a special token stays whole
    assert tiny.tokenize("the dog") == ["the", "[UNK]"]
    ids, segments = tiny.encode("the cat", "cats sat.")
    assert [TINY[i] for i in ids] == ["[CLS]", "the", "cat", "[SEP]", "cat", "##s", "sat", ".", "[SEP]"]
    assert segments == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert tiny.decode(ids) == "the cat cats sat."
    assert tiny.decode(ids, skip_special_tokens=False) == "[CLS] the cat [SEP] cats sat. [SEP]"


def test_truncation_shortens_the_longer_text_first(tiny):
    ids, segments = tiny.encode("the cat sat sat sat", "cat cat", max_len=8)
    assert [TINY[i] for i in ids] == ["[CLS]", "the", "cat", "sat", "[SEP]", "cat", "cat", "[SEP]"]
    assert segments == [0] * 5 + [1] * 3
    ids, _ = tiny.encode("cat", "sat sat sat sat sat", max_len=6)  # the shorter keeps half the room
    assert [TINY[i] for i in ids] == ["[CLS]", "cat", "[SEP]", "sat", "sat", "[SEP]"]
    ids, _ = tiny.encode("the cat sat", max_len=3)
    assert [TINY[i] for i in ids] == ["[CLS]", "the", "[SEP]"]
    with pytest.raises(ValueError, match="at least 3"):
        tiny.encode("the", "cat", max_len=2)


def test_encode_batch_pads_with_pad(tiny):
    batch = tiny.encode_batch(["the cat", "cats"], ["sat", "sat ."])
    assert batch.ids.shape == (2, 7) and batch.lengths.tolist() == [6, 7]
    assert batch.ids[0, 6].item() == TINY.index("[PAD]") and batch.segment_ids[0].tolist() == [0] * 4 + [
        1
    ] * 2 + [0]
    assert batch.ids.dtype == batch.segment_ids.dtype == torch.int64


def test_a_vocabulary_without_the_special_tokens_is_refused():
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        WordPieceTokenizer({t: i for i, t in enumerate(TINY) if t != "[MASK]"})
    with pytest.raises(FileNotFoundError, match="no vocabulary file"):
        load_vocab("/nonexistent/vocab.txt")


# --- against Hugging Face on the real vocabulary -----------------------------------------------------

SENTENCES = [
    "Hello, world!",
    "Don't stop believin' -- it's 3.14159 o'clock.",
    "Café déjà vu: naïve résumé Ångström",
    "  extra   whitespace\t\nhere  ",
    "",
    "unaffable antidisestablishmentarianism",
    "x" * 101,
    "a" * 100,
    "The [MASK] sat on the mat.",
    "Emoji 🤗 and symbols $5+6=11 ^_^ ~tilde~ `back`",
    "中文字符 mixed with English",
    "Zürich's über-cool Straße",
    "email me at foo@bar.com or http://x.y/z?a=1&b=2",
    "ﬁ ligature and ½ fractions ①",
    "tab\there\x00nul\ufffdrep\u200bzero-width",
    "МОСКВА Ελληνικά العربية हिन्दी",
    "I'm sure you've they're we'd",
    "...!!!???",
    "\u00a0nbsp\u2003em space",
]


@pytest.fixture(scope="module")
def minilm_vocab():
    if not pretrained.minilm_available():
        _missing("the MiniLM weights", pretrained.INSTALL_HINT)
    require("tokenizers")
    require("transformers")
    return pretrained.minilm_dir()


def hf_tokenizers(folder):
    from tokenizers import Tokenizer
    from transformers import BertTokenizer

    fast = Tokenizer.from_file(str(folder / "tokenizer.json"))
    fast.no_padding()  # the file asks for padding and truncation to 128
    fast.no_truncation()
    return fast, BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)


def test_equal_to_hugging_face_on_varied_text(minilm_vocab):
    fast, slow = hf_tokenizers(minilm_vocab)
    ours = pretrained.load_tokenizer(minilm_vocab)
    for text in SENTENCES:
        want = fast.encode(text)
        assert ours.tokenize(text) == want.tokens[1:-1] == slow.tokenize(text), text
        assert ours.encode(text) == (want.ids, want.type_ids), text
        assert (
            ours.decode(want.ids) == fast.decode(want.ids) == slow.decode(want.ids, skip_special_tokens=True)
        )
    assert ours.tokenize("antidisestablishmentarianism") != ["[UNK]"]  # a real split, not a stub


def test_pairs_truncation_and_padding_equal_to_hugging_face(minilm_vocab):
    fast, _ = hf_tokenizers(minilm_vocab)
    ours = pretrained.load_tokenizer(minilm_vocab)
    firsts, seconds = SENTENCES[:9], SENTENCES[9:18]
    fast.enable_padding(pad_id=ours.pad_id, pad_token="[PAD]")
    for max_len in (5, 8, 11, 12, 17, 64):
        fast.enable_truncation(max_len, strategy="longest_first")
        want = fast.encode_batch(list(zip(firsts, seconds, strict=True)))
        got = ours.encode_batch(firsts, seconds, max_len=max_len)
        assert got.ids.tolist() == [e.ids for e in want], max_len
        assert got.segment_ids.tolist() == [e.type_ids for e in want], max_len
        assert got.lengths.tolist() == [sum(e.attention_mask) for e in want], max_len
