"""Data for the course: the shipped Shakespeare corpus, a character tokenizer, batches, toy sets.

The corpus ``data/shakespeare.txt`` is built by ``python data/make_corpus.py`` (see
``data/README.md``); ``load_corpus`` checks its SHA-256 so that every learner trains on the
same bytes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from course_lib._validate import check_fraction, check_positive_int, check_tensor

DATA_DIR = Path(os.environ.get("COURSE_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
CORPUS_FILE = "shakespeare.txt"
CORPUS_SHA256 = "3342d53eee4bd93132893392e750bb0600df1fa9ee435ce9c5019eb90b3a1bc8"
RESTORE_HINT = "restore it with `git checkout -- data/shakespeare.txt` or `python data/make_corpus.py`"


class CorpusError(RuntimeError):
    """The corpus file is missing or its content is not the one the course was made with."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_corpus(path: str | Path | None = None, *, verify: bool = True) -> str:
    """Read the Shakespeare corpus as one string (about 1 million characters).

    Args:
        path: the file to read; default ``data/shakespeare.txt`` (or ``$COURSE_DATA_DIR``).
        verify: check the SHA-256 against ``CORPUS_SHA256`` (only for the default file).

    Raises:
        CorpusError: the file is missing or corrupted; the message names it and the fix.
    """
    file = Path(path) if path is not None else DATA_DIR / CORPUS_FILE
    if not file.is_file():
        raise CorpusError(f"corpus file not found: {file}; {RESTORE_HINT}")
    if verify and path is None and (digest := sha256_of(file)) != CORPUS_SHA256:
        raise CorpusError(
            f"corpus file {file} is corrupted: expected SHA-256 {CORPUS_SHA256}, got {digest}; {RESTORE_HINT}"
        )
    return file.read_text(encoding="utf-8")


def corpus_ok() -> bool:
    """True when the shipped corpus exists and matches its SHA-256."""
    try:
        load_corpus()
    except CorpusError:
        return False
    return True


@dataclass(frozen=True)
class CharTokenizer:
    """Maps each character of a fixed vocabulary to an integer id and back.

    Build one with ``CharTokenizer.from_text(text)``: the vocabulary is the sorted set of the
    characters of ``text``, so id ``i`` is the ``i``-th character in sorted order.
    """

    chars: tuple[str, ...]  # the vocabulary; the id of chars[i] is i

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not isinstance(text, str) or not text:
            raise ValueError(f"text: expected a non-empty str, got {text!r:.60}")
        return cls(tuple(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def _ids(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, text: str) -> list[int]:
        """The ids of the characters of ``text``; raises ``ValueError`` on an unknown one."""
        ids = self._ids
        unknown = sorted(set(text) - ids.keys())
        if unknown:
            raise ValueError(f"encode: characters {unknown} are not in the vocabulary of {self.vocab_size}")
        return [ids[ch] for ch in text]

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """The text of a list (or 1-D tensor) of ids; raises ``ValueError`` on an unknown id."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"decode: expected ids in [0, {self.vocab_size}), got {bad[:5]}")
        return "".join(self.chars[i] for i in ids)


def train_val_split(data: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D token tensor into its first ``1 - val_fraction`` and its last part.

    The split is by position, not at random: the validation text is text the model never saw.
    """
    check_tensor(data, "data", ndim=1)
    check_fraction(val_fraction, "val_fraction")
    n_train = int(len(data) * (1 - val_fraction))
    return data[:n_train], data[n_train:]


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` windows of ``block_size`` tokens and their next-token targets.

    Args:
        data: 1-D integer tensor of token ids, on the CPU.
        generator: a CPU ``torch.Generator`` for reproducible windows.
        device: where to put the batch (sampled on the CPU first, so every device sees the same).

    Returns:
        ``x`` of shape ``(batch_size, block_size)`` and ``y`` of the same shape, where
        ``y[b, t] == data[start_b + t + 1]``: the token that follows ``x[b, t]``.
    """
    check_tensor(data, "data", ndim=1, dtypes=(torch.int64, torch.int32, torch.int16, torch.uint8))
    check_positive_int(batch_size, "batch_size")
    check_positive_int(block_size, "block_size")
    if len(data) <= block_size:
        raise ValueError(f"data: expected more than block_size={block_size} tokens, got {len(data)}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = data[starts[:, None] + offsets].long()  # (B, T)
    y = data[starts[:, None] + offsets + 1].long()  # (B, T)
    return (x.to(device), y.to(device)) if device is not None else (x, y)


def make_spirals(
    n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals, a classic set that no linear classifier separates.

    Returns:
        ``X`` of shape ``(n_per_class * n_classes, 2)`` (float64, roughly in [-1, 1]) and
        ``y`` of shape ``(n_per_class * n_classes,)`` with the class of each point (int64).
    """
    check_positive_int(n_per_class, "n_per_class")
    check_positive_int(n_classes, "n_classes")
    if noise < 0:
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    label = np.repeat(np.arange(n_classes), n_per_class)
    angle = label * 2 * np.pi / n_classes + radius * 4.0 + rng.normal(0.0, noise, size=radius.shape)
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return X, label.astype(np.int64)
