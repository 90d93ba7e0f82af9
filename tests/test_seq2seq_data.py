import datetime

import pytest
import torch

from course_lib import seq2seq_data as data

# Each source format in Python's strptime terms (%d and %m also read one digit).
STRPTIME = {
    "{d} {MMMM} {yyyy}": "%d %B %Y",
    "{MMMM} {d}, {yyyy}": "%B %d, %Y",
    "{dd}/{mm}/{yyyy}": "%d/%m/%Y",
    "{EEE} {d} {MMM} {yyyy}": "%a %d %b %Y",
    "{EEEE}, {MMMM} {d}, {yyyy}": "%A, %B %d, %Y",
    "{d}.{m}.{yyyy}": "%d.%m.%Y",
}


def test_encode_decode_round_trip():
    text = data.CHARS + " 3 March 2021"
    ids = data.encode(text)
    assert all(3 <= i < data.VOCAB_SIZE for i in ids) and len(set(data.encode(data.CHARS))) == len(data.CHARS)
    assert data.decode(ids) == text
    assert data.decode(torch.tensor([data.BOS, *ids[:4], data.EOS, *ids[4:]])) == text[:4]  # stops at EOS
    assert data.decode([data.PAD, *ids[:3], data.PAD]) == text[:3]
    with pytest.raises(
        ValueError, match=r"text: expected characters of the task's vocabulary .* got \['#'\]"
    ):
        data.encode("3 # 2021")
    with pytest.raises(ValueError, match="ids: expected ids in 0..46, got 47"):
        data.decode([3, 47])


def test_every_format_writes_the_date_that_datetime_reads():
    assert set(STRPTIME) == set(data.FORMATS)
    for day in (0, 58, 789, 20000, data.N_DAYS - 1):
        date = data.day_to_date(day)
        for fmt in data.FORMATS:
            text, _ = data.format_date(date, fmt)
            assert datetime.datetime.strptime(text, STRPTIME[fmt]).date() == date, (fmt, text)
            if "EEE" in fmt:
                assert text.startswith(date.strftime("%A" if "EEEE" in fmt else "%a"))


def test_batches_have_iso_targets_and_correct_copy_alignment():
    train_days, _ = data.split_days(100, torch.Generator().manual_seed(0))
    batch = data.sample_batch(train_days, 300, torch.Generator().manual_seed(1))
    B, S = batch.src.shape
    assert batch.tgt_in.shape == batch.tgt_out.shape == batch.copy_alignment.shape == (B, data.ISO_LENGTH + 1)
    assert torch.all(batch.tgt_in[:, 0] == data.BOS) and torch.all(batch.tgt_out[:, -1] == data.EOS)
    assert torch.equal(batch.tgt_in[:, 1:], batch.tgt_out[:, :-1])
    assert torch.equal(batch.src_pad_mask[:, 0, 0], batch.src != data.PAD)
    assert int(batch.src_lengths.max()) == S
    seen_formats = set()
    for b in range(B):
        source = data.decode(batch.src[b])
        fmt = next(f for f, p in STRPTIME.items() if _reads(source, p))
        seen_formats.add(fmt)
        date = datetime.datetime.strptime(source, STRPTIME[fmt]).date()
        assert data.decode(batch.tgt_out[b]) == date.isoformat()
        align = batch.copy_alignment[b].tolist()
        for t, a in enumerate(align):
            if a >= 0:
                assert source[a] == date.isoformat()[t]
        assert all(a >= 0 for a in align[:4]) and align[:4] == list(range(align[0], align[0] + 4))  # year
        assert align[4] == align[7] == align[10] == -1  # dashes, EOS
        assert align[9] >= 0 and (align[8] >= 0) == (date.day >= 10 or "{dd}" in fmt)
        numeric_month = "{m}" in fmt or "{mm}" in fmt
        assert (align[6] >= 0) == numeric_month
        assert (align[5] >= 0) == (numeric_month and (date.month >= 10 or "{mm}" in fmt))
    assert seen_formats == set(data.FORMATS)


def _reads(text, pattern):
    try:
        datetime.datetime.strptime(text, pattern)
    except ValueError:
        return False
    return True


def test_alignment_of_known_examples():
    date = datetime.date(2021, 3, 3)
    assert data.format_date(date, "{d} {MMMM} {yyyy}") == (
        "3 March 2021",
        [8, 9, 10, 11, -1, -1, -1, -1, -1, 0],
    )
    assert data.format_date(date, "{dd}/{mm}/{yyyy}") == ("03/03/2021", [6, 7, 8, 9, -1, 3, 4, -1, 0, 1])
    text, align = data.format_date(datetime.date(1999, 12, 25), "{d}.{m}.{yyyy}")
    assert (text, align) == ("25.12.1999", [6, 7, 8, 9, -1, 3, 4, -1, 0, 1])
    batch = data.make_batch([date], ["{EEE} {d} {MMM} {yyyy}"])
    assert data.decode(batch.src[0]) == "Wed 3 Mar 2021"
    assert batch.copy_alignment[0].tolist() == [10, 11, 12, 13, -1, -1, -1, -1, -1, 4, -1]


def test_held_out_split_is_disjoint_and_complete():
    train_days, held_out = data.split_days(500, torch.Generator().manual_seed(0))
    assert len(held_out) == 500 and len(train_days) == data.N_DAYS - 500
    assert set(train_days.tolist()).isdisjoint(held_out.tolist())
    assert sorted(train_days.tolist() + held_out.tolist()) == list(range(data.N_DAYS))
    test = data.sample_batch(held_out, 200, torch.Generator().manual_seed(2))
    held = {data.day_to_date(d).isoformat() for d in held_out.tolist()}
    assert all(data.decode(t) in held for t in test.tgt_out)  # held-out batches draw held-out dates only


def test_the_generator_decides_everything():
    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        days, _ = data.split_days(100, g)
        return data.sample_batch(days, 16, g)

    a, b, c = draw(3), draw(3), draw(4)
    assert torch.equal(a.src, b.src) and torch.equal(a.copy_alignment, b.copy_alignment)
    assert not torch.equal(a.tgt_out, c.tgt_out)


def test_data_validation():
    with pytest.raises(ValueError, match="fmt: expected one of"):
        data.format_date(datetime.date(2021, 1, 1), "{yyyy}-{mm}-{dd}")
    with pytest.raises(TypeError, match="date: expected a datetime.date"):
        data.format_date("2021-01-01", data.FORMATS[0])
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        data.make_batch([datetime.date(2021, 1, 1)] * 2, [data.FORMATS[0]])
    with pytest.raises(ValueError, match=f"day: expected 0..{data.N_DAYS - 1}, got {data.N_DAYS}"):
        data.day_to_date(data.N_DAYS)
    with pytest.raises(ValueError, match=f"n_held_out: expected 1..{data.N_DAYS - 1}"):
        data.split_days(data.N_DAYS, torch.Generator())
    with pytest.raises(TypeError, match="days: expected dtype torch.int64"):
        data.sample_batch(torch.tensor([1.0]), 2, torch.Generator())
