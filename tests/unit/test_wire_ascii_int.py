"""ascii_int: the one reader of the bounded decimal fields in peers' packets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulse.wire import ascii_int

DIGITS = "0123456789"


@given(st.text(DIGITS, min_size=1, max_size=25), st.integers(min_value=1, max_value=25))
def test_ascii_digits_up_to_the_bound_read_as_int_reads_them(digits: str, bound: int) -> None:
    assert ascii_int(digits, bound) == (int(digits) if len(digits) <= bound else None)


@given(
    st.text(st.sampled_from(DIGITS) | st.characters(), max_size=12),
    st.integers(min_value=1, max_value=12),
)
def test_any_text_reads_only_if_it_is_1_to_bound_ascii_digits(text: str, bound: int) -> None:
    value = ascii_int(text, bound)
    if re.fullmatch(f"[0-9]{{1,{bound}}}", text):
        assert value == int(text)
    else:
        assert value is None


@pytest.mark.parametrize(
    "text",
    [None, "", "\u00b2", "1\u00b2", "\u0663", "\uff11", "-1", "+1", " 1", "1 ", "1\n", "1_0",
     "0x1", "1.0", "1e3", "\udcb2", "12345678901234567890" + "1", "9" * 5000],
)  # fmt: skip
def test_signs_spaces_other_digits_and_too_many_digits_are_refused(text: str | None) -> None:
    # "\u00b2" superscript two (str.isdigit: True), "\u0663" Arabic-Indic three and
    # "\uff11" fullwidth one (int() reads both), "\udcb2" a byte surrogateescape kept.
    assert ascii_int(text, 20) is None


def test_leading_zeros_count_as_digits() -> None:
    assert ascii_int("007", 3) == 7
    assert ascii_int("0007", 3) is None
    assert ascii_int("0" * 20, 20) == 0
    assert ascii_int("18446744073709551615", 20) == 2**64 - 1
