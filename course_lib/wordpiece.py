"""WordPiece: BERT's subword tokenizer (notebook 10).

Wu et al. 2016, "Google's neural machine translation system" (the WordPiece model, after Schuster
and Nakajima 2012), as BERT uses it (Devlin et al. 2019, and Google's ``tokenization.py``). Text
goes through two stages:

1. The *basic* tokenizer: drop control characters and map every whitespace to a space, put
   spaces around CJK ideographs, lower-case and strip accents (NFD, then drop combining marks)
   when the vocabulary is uncased, then split on whitespace and around every punctuation
   character, so that ``"Don't!"`` becomes ``don ' t !``.
2. *WordPiece* on each word: greedy longest-match-first against the vocabulary, where a piece
   that continues a word is written with the prefix ``##`` (``"unaffable"`` -> ``un ##aff
   ##able``). A word with a part that no vocabulary entry matches, or longer than 100
   characters, becomes ``[UNK]`` as a whole.

``[CLS]``, ``[SEP]``, ``[MASK]``, ``[PAD]`` and ``[UNK]`` written in the text are kept as single
tokens (as Hugging Face's tokenizers do). ``encode`` adds ``[CLS] A [SEP]`` (``[CLS] A [SEP] B
[SEP]`` for a pair) with segment ids 0 for A and 1 for B; ``encode_batch`` pads with ``[PAD]``.

It follows Google's ``tokenization.py``; Hugging Face's Rust normaliser also drops private-use
characters and lower-cases character by character (no final sigma).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from course_lib._validate import check_positive_int

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
CONTINUATION = "##"  # the prefix of a piece that continues a word
MAX_WORD_CHARS = 100  # a longer word becomes [UNK] (BERT's max_input_chars_per_word)


def load_vocab(path: str | Path) -> dict[str, int]:
    """The vocabulary of a ``vocab.txt`` (one token a line; the id of a token is its line number)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_vocab: no vocabulary file at {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return {token: i for i, token in enumerate(lines)}


# --- the basic tokenizer ---------------------------------------------------------------------------


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":  # whitespace for our purposes
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch: str) -> bool:
    """Unicode punctuation, plus every non-alphanumeric ASCII symbol such as ``$``, ``^``, ``+``."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    """A CJK Unified Ideograph (the blocks BERT's ``_is_chinese_char`` lists)."""
    blocks = (
        (0x4E00, 0x9FFF),
        (0x3400, 0x4DBF),
        (0x20000, 0x2A6DF),
        (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF),
        (0xF900, 0xFAFF),
        (0x2F800, 0x2FA1F),
    )
    return any(lo <= cp <= hi for lo, hi in blocks)


def _clean(text: str) -> str:
    """Drop NUL, U+FFFD and control characters; every whitespace becomes a space; space out CJK."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return "".join(out)


def _strip_accents(word: str) -> str:
    """``"café"`` -> ``"cafe"``: decompose (NFD) and drop the combining marks."""
    return "".join(ch for ch in unicodedata.normalize("NFD", word) if unicodedata.category(ch) != "Mn")


def _split_punctuation(word: str) -> list[str]:
    """``"don't!"`` -> ``["don", "'", "t", "!"]``: every punctuation character is a word of its own."""
    pieces: list[str] = []
    start_new = True
    for ch in word:
        if _is_punctuation(ch):
            pieces.append(ch)
            start_new = True
        else:
            if start_new:
                pieces.append("")
                start_new = False
            pieces[-1] += ch
    return pieces


def basic_tokenize(text: str, lower_case: bool = True) -> list[str]:
    """The words of ``text`` before WordPiece: cleaned, lower-cased and accent-stripped when
    ``lower_case``, split on whitespace and around punctuation."""
    words = []
    for word in _clean(text).split():
        if lower_case:
            word = _strip_accents(word.lower())
        words.extend(_split_punctuation(word))
    return [w for w in words if w]


# --- WordPiece -------------------------------------------------------------------------------------


def wordpiece(word: str, vocab: dict[str, int] | set[str], unk: str = UNK) -> list[str]:
    """Greedy longest-match-first: the pieces of one word, or ``[unk]`` if some part has no match.

    From the start of what is left of the word, take the longest prefix in ``vocab`` (written
    ``##prefix`` unless it starts the word), and go on after it.
    """
    if len(word) > MAX_WORD_CHARS:
        return [unk]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:  # not even one character matched
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


class Encoded(NamedTuple):
    """What ``WordPieceTokenizer.encode_batch`` returns."""

    ids: torch.Tensor  # (B, T) int64, padded with [PAD]
    segment_ids: torch.Tensor  # (B, T) int64: 0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding
    lengths: torch.Tensor  # (B,) int64: real tokens per row (attention.padding_mask(lengths, T))


class WordPieceTokenizer:
    """BERT's tokenizer: the basic tokenizer, then WordPiece, then ``[CLS]``/``[SEP]`` and padding.

    Args:
        vocab: token -> id (``load_vocab``); must hold the five special tokens.
        lower_case: lower-case and strip accents first (an "uncased" vocabulary, as MiniLM's).
    """

    def __init__(self, vocab: dict[str, int], lower_case: bool = True) -> None:
        if not isinstance(vocab, dict):
            raise TypeError(f"vocab: expected a dict token -> id, got {type(vocab).__name__}")
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"vocab: the special tokens {missing} are missing")
        self.vocab = vocab
        self.lower_case = lower_case
        self.tokens = {i: t for t, i in vocab.items()}  # id -> token
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (vocab[t] for t in SPECIAL_TOKENS)
        self._special = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")

    @classmethod
    def from_file(cls, path: str | Path, lower_case: bool = True) -> WordPieceTokenizer:
        """A tokenizer over the vocabulary in ``vocab.txt`` at ``path``."""
        return cls(load_vocab(path), lower_case)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def special_ids(self) -> tuple[int, ...]:
        """The ids of ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``."""
        return (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text`` (no ``[CLS]``/``[SEP]`` added)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        tokens = []
        for part in self._special.split(text):  # special tokens written in the text stay whole
            if part in SPECIAL_TOKENS:
                tokens.append(part)
                continue
            for word in basic_tokenize(part, self.lower_case):
                tokens.extend(wordpiece(word, self.vocab))
        return tokens

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def encode(
        self, text: str, text_pair: str | None = None, max_len: int | None = None
    ) -> tuple[list[int], list[int]]:
        """``([CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP])`` as ``(ids, segment_ids)``.

        With ``max_len``, texts are cut at their end to fit (Hugging Face's "longest_first"):
        a single text to ``max_len - 2`` tokens; for a pair with ``room = max_len - 3``, the
        shorter text keeps ``min(its length, room // 2)`` tokens and the longer one the rest.
        """
        a = self.convert_tokens_to_ids(self.tokenize(text))
        b = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))
        if max_len is not None:
            check_positive_int(max_len, "max_len")
            room = max_len - (2 if b is None else 3)
            if room < 0:
                raise ValueError(
                    f"max_len: expected at least {max_len - room} (the special tokens), got {max_len}"
                )
            if b is None:
                a = a[:room]
            elif len(a) + len(b) > room:
                shorter = min(len(a), len(b), room // 2)
                if len(a) <= len(b):
                    a, b = a[:shorter], b[: room - shorter]
                else:
                    a, b = a[: room - shorter], b[:shorter]
        ids = [self.cls_id, *a, self.sep_id]
        segment_ids = [0] * len(ids)
        if b is not None:
            ids += [*b, self.sep_id]
            segment_ids += [1] * (len(b) + 1)
        return ids, segment_ids

    def encode_batch(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, max_len: int | None = None
    ) -> Encoded:
        """Encode each text (and pair) and pad every row with ``[PAD]`` to the longest one."""
        if isinstance(texts, str) or not len(texts):
            raise ValueError("texts: expected a non-empty list of strings")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"text_pairs: expected {len(texts)} texts, got {len(text_pairs)}")
        rows = [
            self.encode(t, None if text_pairs is None else text_pairs[i], max_len)
            for i, t in enumerate(texts)
        ]
        T = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), T), self.pad_id, dtype=torch.int64)
        segment_ids = torch.zeros((len(rows), T), dtype=torch.int64)
        for row, (row_ids, row_segments) in enumerate(rows):
            ids[row, : len(row_ids)] = torch.tensor(row_ids)
            segment_ids[row, : len(row_ids)] = torch.tensor(row_segments)
        lengths = torch.tensor([len(row_ids) for row_ids, _ in rows])
        return Encoded(ids, segment_ids, lengths)

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Text from ids: a ``##`` piece (after the first) is glued to the one before it, and so is
        each ``.``, ``,``, ``?`` and ``!`` (as Hugging Face's WordPiece decoder does); other tokens
        are joined by a space. Lower case and accents are not restored."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        tokens = [self.tokens[i] for i in ids if not (skip_special_tokens and i in self.special_ids)]
        text = ""
        for i, token in enumerate(tokens):
            if i == 0:
                text = token
            elif token.startswith(CONTINUATION):
                text += token.removeprefix(CONTINUATION)
            elif token in (".", ",", "?", "!"):
                text += token
            else:
                text += " " + token
        return text
