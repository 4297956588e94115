import pytest

from streams.lsn import INVALID_LSN, Lsn


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("16/B374D848", 0x16_B374D848), ("0/1234ABCD", 0x1234ABCD), ("FFFFFFFF/FFFFFFFF", 2**64 - 1)],
)
def test_lsn_text_form_round_trips_as_postgresql_prints_it(text, value):
    lsn = Lsn.parse(text)
    assert lsn == value
    assert str(lsn) == text
    assert f"{lsn}" == text
    assert Lsn(text) == lsn


def test_lsn_parse_accepts_lower_case_and_prints_upper_case_without_padding():
    assert str(Lsn.parse("a/00000b")) == "A/B"


@pytest.mark.parametrize("text", ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0", "-1/0", "1 / 2"])
def test_malformed_lsn_text_is_rejected(text):
    with pytest.raises(ValueError):
        Lsn.parse(text)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_lsn_outside_64_bits_is_rejected(value):
    with pytest.raises(ValueError):
        Lsn(value)


def test_lsns_order_and_compare_like_their_wal_positions_and_plain_ints():
    assert Lsn.parse("0/FFFFFFFF") < Lsn.parse("1/0")
    assert sorted([Lsn(3), Lsn(1), Lsn(2)]) == [1, 2, 3]
    assert Lsn(42) == 42
    assert hash(Lsn(42)) == hash(42)
    assert max(Lsn(5), 7) == 7


def test_difference_of_two_lsns_is_a_byte_count_and_offset_lsn_is_an_lsn():
    ahead, behind = Lsn.parse("1/10"), Lsn.parse("0/FFFFFFF0")
    lag = ahead - behind
    assert lag == 0x20 and type(lag) is int
    moved = behind + 0x20
    assert moved == ahead and isinstance(moved, Lsn)
    assert isinstance(ahead - 0x10, Lsn)
    assert isinstance(0x10 + behind, Lsn)


def test_lag_bytes_is_never_negative():
    assert Lsn(100).lag_bytes(40) == 60
    assert Lsn(40).lag_bytes(100) == 0


def test_invalid_lsn_is_zero_and_reads_as_invalid():
    assert INVALID_LSN == 0 and not INVALID_LSN.is_valid
    assert Lsn(1).is_valid


def test_lsn_repr_and_numeric_format_specs():
    assert repr(Lsn.parse("16/B374D848")) == "Lsn('16/B374D848')"
    assert f"{Lsn(255):x}" == "ff"
