"""A synthetic translation task for the encoder-decoder Transformer (notebook 07): dates to ISO.

The source is a date written in one of several human formats, the target the same date in ISO
8601, both as characters::

    "3 March 2021"  "March 3, 2021"  "03/03/2021"  "Wed 3 Mar 2021"  ...  ->  "2021-03-03"

Part of the target is *copied* from the source (the year's digits, the day's digits, and the
month's digits when the source writes the month as a number), and part must be *translated*
(a month name becomes two digits; a weekday is read and ignored). For every copied target
character the batch records the index of the source character it copies (``copy_alignment``),
so the cross-attention of a trained model can be compared with the alignment it should learn,
as Bahdanau et al. (2015) did for their translation model.

Numeric dates are day first (``03/04/2021`` is the 3rd of April) everywhere, so no source is
ambiguous. Every random draw comes from a ``torch.Generator`` made on the CPU; seed it through
``course_lib.seed`` so that ``$COURSE_SEED`` shifts it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_lib._validate import check_int, check_positive_int, check_tensor, describe
from course_lib.attention import padding_mask

PAD, BOS, EOS = 0, 1, 2  # special token ids; the characters follow them
FIRST_DAY = datetime.date(1950, 1, 1)  # the dates of the task: 1950-01-01 ...
LAST_DAY = datetime.date(2049, 12, 31)  # ... to 2049-12-31
N_DAYS = (LAST_DAY - FIRST_DAY).days + 1  # 36525 dates; a date is its day number 0..N_DAYS-1
ISO_LENGTH = 10  # "yyyy-mm-dd"

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# The source formats. Fields: {d} day, {dd} zero-padded day, {m} month, {mm} zero-padded month,
# {MMM} / {MMMM} short / full month name, {EEE} / {EEEE} short / full weekday, {yyyy} year.
FORMATS = (
    "{d} {MMMM} {yyyy}",  # 3 March 2021
    "{MMMM} {d}, {yyyy}",  # March 3, 2021
    "{dd}/{mm}/{yyyy}",  # 03/03/2021
    "{EEE} {d} {MMM} {yyyy}",  # Wed 3 Mar 2021
    "{EEEE}, {MMMM} {d}, {yyyy}",  # Wednesday, March 3, 2021
    "{d}.{m}.{yyyy}",  # 3.3.2021
)
_FIELD = re.compile(r"(\{\w+\})")

_NAMES = "".join(MONTHS + WEEKDAYS)
CHARS = "".join(sorted(set(_NAMES) | set("0123456789 ,./-")))  # every character of the task
VOCAB_SIZE = 3 + len(CHARS)  # PAD, BOS, EOS and the characters
_ID = {char: i + 3 for i, char in enumerate(CHARS)}


def encode(text: str) -> list[int]:
    """Character ids of ``text`` (no BOS or EOS added)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {describe(text)}")
    unknown = sorted(set(text) - set(_ID))
    if unknown:
        raise ValueError(f"text: expected characters of the task's vocabulary {CHARS!r}, got {unknown}")
    return [_ID[char] for char in text]


def decode(ids: Sequence[int] | torch.Tensor) -> str:
    """The text of a sequence of ids: PAD and BOS are skipped, the first EOS ends it."""
    if isinstance(ids, torch.Tensor):
        check_tensor(ids, "ids", ndim=1, dtypes=(torch.int64, torch.int32))
        ids = ids.tolist()
    chars = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < VOCAB_SIZE:
            raise ValueError(f"ids: expected ids in 0..{VOCAB_SIZE - 1}, got {i!r}")
        if i == EOS:
            break
        if i not in (PAD, BOS):
            chars.append(CHARS[i - 3])
    return "".join(chars)


def iso(date: datetime.date) -> str:
    """The target text: ``"yyyy-mm-dd"``."""
    return date.isoformat()


def _fields(date: datetime.date) -> dict[str, str]:
    return {
        "d": str(date.day),
        "dd": f"{date.day:02d}",
        "m": str(date.month),
        "mm": f"{date.month:02d}",
        "MMM": MONTHS[date.month - 1][:3],
        "MMMM": MONTHS[date.month - 1],
        "EEE": WEEKDAYS[date.weekday()][:3],
        "EEEE": WEEKDAYS[date.weekday()],
        "yyyy": f"{date.year:04d}",
    }


def format_date(date: datetime.date, fmt: str) -> tuple[str, list[int]]:
    """Write ``date`` in the source format ``fmt`` (one of ``FORMATS``).

    Returns:
        The text, and for each of the ``ISO_LENGTH`` characters of ``iso(date)`` the index of the
        source character it copies, or ``-1`` when it is not a copy (the dashes; a month given by
        its name; the leading ``0`` that ISO adds to a one-digit day or month).
    """
    if not isinstance(date, datetime.date):
        raise TypeError(f"date: expected a datetime.date, got {describe(date)}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    fields = _fields(date)
    text, start = "", {}  # start: where each field begins in the text
    for piece in _FIELD.split(fmt):
        if piece.startswith("{"):
            start[piece[1:-1]] = len(text)
            text += fields[piece[1:-1]]
        else:
            text += piece
    alignment = [-1] * ISO_LENGTH
    # ISO positions: year 0-3, month 5-6, day 8-9. Copies are read right-aligned, so that an
    # unpadded "3" copies into the "3" of "03" and the "0" stays a non-copy.
    for iso_end, names in ((4, ("yyyy",)), (7, ("mm", "m")), (10, ("dd", "d"))):
        name = next((n for n in names if n in start), None)
        if name is None:
            continue  # a month written as a name is translated, not copied
        width = len(fields[name])
        for k in range(width):
            alignment[iso_end - width + k] = start[name] + k
    return text, alignment


@dataclass(frozen=True)
class DateBatch:
    src: torch.Tensor  # (B, S) source character ids, PAD after each source's end
    src_lengths: torch.Tensor  # (B,) number of real (non-PAD) source characters
    tgt_in: torch.Tensor  # (B, T) decoder input: BOS + the ISO characters (T = ISO_LENGTH + 1)
    tgt_out: torch.Tensor  # (B, T) what the decoder must predict: the ISO characters + EOS
    copy_alignment: torch.Tensor  # (B, T) source index that tgt_out[:, t] copies, -1 if none

    @property
    def src_pad_mask(self) -> torch.Tensor:
        """``(B, 1, 1, S)`` boolean, ``True`` on real source characters (may attend)."""
        return padding_mask(self.src_lengths, self.src.shape[1])

    def to(self, device: torch.device | str) -> DateBatch:
        return DateBatch(
            *(
                t.to(device)
                for t in (self.src, self.src_lengths, self.tgt_in, self.tgt_out, self.copy_alignment)
            )
        )


def make_batch(dates: Sequence[datetime.date], formats: Sequence[str]) -> DateBatch:
    """The batch of ``dates[b]`` written in ``formats[b]`` (each one of ``FORMATS``), on the CPU."""
    if len(dates) != len(formats) or not dates:
        raise ValueError(
            f"dates and formats: expected two non-empty sequences of the same length, got "
            f"{len(dates)} and {len(formats)}"
        )
    sources, alignments = zip(*(format_date(d, f) for d, f in zip(dates, formats, strict=True)), strict=True)
    S = max(len(text) for text in sources)
    src = torch.tensor([encode(text) + [PAD] * (S - len(text)) for text in sources])  # (B, S)
    targets = torch.tensor([encode(iso(d)) for d in dates])  # (B, ISO_LENGTH)
    bos, eos = torch.full((len(dates), 1), BOS), torch.full((len(dates), 1), EOS)
    return DateBatch(
        src=src,
        src_lengths=torch.tensor([len(text) for text in sources]),
        tgt_in=torch.cat([bos, targets], dim=1),
        tgt_out=torch.cat([targets, eos], dim=1),
        copy_alignment=torch.tensor([[*a, -1] for a in alignments]),  # EOS copies nothing
    )


def day_to_date(day: int) -> datetime.date:
    """The date of day number ``day`` (0 is ``FIRST_DAY``)."""
    check_int(day, "day")
    if day >= N_DAYS:
        raise ValueError(f"day: expected 0..{N_DAYS - 1}, got {day}")
    return FIRST_DAY + datetime.timedelta(days=day)


def split_days(n_held_out: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the day numbers ``0..N_DAYS-1`` into ``(train_days, held_out_days)`` at random.

    A held-out date never appears in training in any format, so a model that does well on the
    held-out days has learned the rule, not the examples.
    """
    check_positive_int(n_held_out, "n_held_out")
    if n_held_out >= N_DAYS:
        raise ValueError(f"n_held_out: expected 1..{N_DAYS - 1}, got {n_held_out}")
    order = torch.randperm(N_DAYS, generator=generator)
    return order[n_held_out:], order[:n_held_out]


def sample_batch(days: torch.Tensor, batch_size: int, generator: torch.Generator) -> DateBatch:
    """``batch_size`` examples: days drawn uniformly from ``days`` (with replacement), each in a
    format drawn uniformly from ``FORMATS``."""
    check_tensor(days, "days", ndim=1, dtypes=(torch.int64,))
    check_positive_int(batch_size, "batch_size")
    if not len(days):
        raise ValueError("days: expected at least one day number, got an empty tensor")
    picked = days[torch.randint(len(days), (batch_size,), generator=generator)]
    formats = torch.randint(len(FORMATS), (batch_size,), generator=generator)
    return make_batch([day_to_date(int(d)) for d in picked], [FORMATS[int(f)] for f in formats])
