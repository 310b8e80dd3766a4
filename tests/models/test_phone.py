"""Phone normalisation: what a supervisor's CSV cells turn into, and why some are refused."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat

from app.models.phone import (
    PhoneError,
    _fast_e164,
    _fast_national,
    is_supported_country,
    normalize_phone,
)


def _reason(raw: str, country: str = "US", ignore: bool = False) -> str:
    with pytest.raises(PhoneError) as caught:
        normalize_phone(raw, country, ignore)
    return caught.value.reason


@pytest.mark.parametrize(
    "number",
    ["+12025550143", "+447911123456", "+442079460958", "+33612345678", "+61491570156"],
)
def test_strict_e164_is_returned_unchanged(number: str) -> None:
    assert normalize_phone(number) == number


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("(202) 555-0143", "US", "+12025550143"),
        ("202.555.0143", "US", "+12025550143"),
        ("1-202-555-0143", "US", "+12025550143"),
        ("  +1 202 555 0143  ", "US", "+12025550143"),
        ("\u00a0202 555 0143\u200b", "US", "+12025550143"),  # pasted from a web page
        ("２０２５５５０１４３", "US", "+12025550143"),  # fullwidth digits from an IME
        ("+1２０２５５５０１４３", "US", "+12025550143"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
        ("+44 (0) 20 7946 0958", "US", "+442079460958"),
        ("+4402079460958", "US", "+442079460958"),
        ("011 44 7911 123456", "US", "+447911123456"),
    ],
)
def test_national_and_formatted_numbers_become_e164(raw: str, country: str, expected: str) -> None:
    assert normalize_phone(raw, country) == expected


def test_default_country_decides_how_a_national_number_is_read() -> None:
    assert normalize_phone("020 7946 0958", "gb") == "+442079460958"
    reason = _reason("020 7946 0958", "US")
    assert reason.startswith("too long for United States")
    assert "need + and the country code" in reason


@pytest.mark.parametrize(
    ("raw", "expected_reason"),
    [
        ("", "the phone number is empty"),
        ("   ", "the phone number is empty"),
        ("call me", "contains letters"),
        ("+1 202 555 0143 ext 12", "contains letters"),
        ("+12025550143#", "contains '#', which is not part of a phone number"),
        ("202+5550143", "has a + that is not at the start"),
        ("---", "contains no digits"),
        ("+1202555014", "too short for United States"),
        ("12", "too short for United States"),
        ("+99912345678", "does not start with a known country code after the +"),
    ],
)
def test_bad_numbers_are_refused_with_a_readable_reason(raw: str, expected_reason: str) -> None:
    assert _reason(raw) == expected_reason


def test_invalid_us_number_names_the_country() -> None:
    assert _reason("+15551234567") == "not a valid number for United States"
    assert _reason("(555) 123-4567") == (
        "not a valid number for United States "
        "(numbers from other countries need + and the country code)"
    )


def test_unknown_default_country_says_to_fix_the_setting() -> None:
    assert "choose a country in Settings" in _reason("2025550143", "XX")
    assert is_supported_country("gb")
    assert not is_supported_country("XX")


def test_phone_error_is_a_value_error_with_the_reason_as_message() -> None:
    with pytest.raises(ValueError, match="contains letters") as caught:
        normalize_phone("abc")
    assert isinstance(caught.value, PhoneError)
    assert str(caught.value) == caught.value.reason


# ------------------------------------------------------------------ spreadsheet damage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.2025550143E+10", "+12025550143"),
        ("4.47911123456e11", "+447911123456"),
        ("4,47911123456E+11", "+447911123456"),  # comma decimal mark (semicolon CSVs)
        ("1.2025550143E10", "+12025550143"),
    ],
)
def test_scientific_notation_is_expanded_when_no_digit_was_lost(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["1.55512E+10", "1.20255E+10", "2E+10", "1.5551234567E+10"])
def test_scientific_notation_with_lost_digits_or_no_valid_number_is_refused(raw: str) -> None:
    reason = _reason(raw)
    assert "scientific notation and digits were lost" in reason
    assert "format the phone column as Text" in reason


def test_lost_plus_is_restored_when_the_digits_are_only_valid_internationally() -> None:
    assert normalize_phone("447911123456") == "+447911123456"
    assert normalize_phone("33612345678") == "+33612345678"
    assert normalize_phone("12025550143", "GB") == "+12025550143"


def test_a_valid_national_number_is_not_mistaken_for_a_lost_plus() -> None:
    # 361 is a Texas area code; +36 1 234 5678 would also be a Budapest number.
    assert normalize_phone("3612345678", "US") == "+13612345678"
    assert normalize_phone("+3612345678", "US") == "+3612345678"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025550143.0", "+12025550143"),
        ("447911123456.0", "+447911123456"),
        ("+12025550143.00", "+12025550143"),
    ],
)
def test_float_export_tail_is_removed(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


# ------------------------------------------------------------------ ignoreE164Validation


def test_ignore_validation_accepts_any_plus_and_seven_digits() -> None:
    assert normalize_phone("+999 (123) 45-67.8", ignore_e164_validation=True) == "+99912345678"
    assert normalize_phone("+0001234", ignore_e164_validation=True) == "+0001234"
    # Not a valid number anywhere, so the normal path refuses it.
    assert "known country code" in _reason("+9991234567")


@pytest.mark.parametrize(
    ("raw", "expected_reason"),
    [
        ("+12345", "too short: 5 digits, at least 7 needed"),
        ("+1234567890123456", "too long: 16 digits, at most 15 allowed"),
        ("202 555 0143", "must start with + and the country code"),
        ("+1 202 CALL NOW", "contains letters"),
        ("+1202#5550143", "may only contain digits after the +"),
    ],
)
def test_ignore_validation_still_checks_the_shape(raw: str, expected_reason: str) -> None:
    assert expected_reason in _reason(raw, ignore=True)


# ------------------------------------------------------------------ fast path == library


def _library(text: str) -> str | None:
    """What phonenumbers itself says: the E.164 form, or None when it is not valid."""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _valid_examples() -> list[phonenumbers.PhoneNumber]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in range(12):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None and phonenumbers.is_valid_number(example):
                found.append(example)
    return found


_EXAMPLES = _valid_examples()
_CALLING_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@st.composite
def _e164_candidates(draw: st.DrawFn) -> str:
    """Strings shaped like E.164: real examples with a digit or two changed, or random ones."""
    if draw(st.booleans()):
        example = draw(st.sampled_from(_EXAMPLES))
        digits = list(phonenumbers.format_number(example, PhoneNumberFormat.E164)[1:])
        for _ in range(draw(st.integers(0, 2))):
            position = draw(st.integers(len(str(example.country_code)), len(digits) - 1))
            digits[position] = draw(st.sampled_from("0123456789"))
        return "+" + "".join(digits)
    code = str(draw(st.sampled_from(_CALLING_CODES)))
    rest = draw(st.text("0123456789", min_size=max(0, 7 - len(code)), max_size=15 - len(code)))
    return "+" + code + rest


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_e164_candidates())
def test_fast_path_agrees_with_phonenumbers(text: str) -> None:
    expected = _library(text)
    fast = _fast_e164(text)
    if fast is not None:
        assert fast == expected
    try:
        result: str | None = normalize_phone(text)
    except PhoneError:
        result = None
    assert result == expected


@st.composite
def _national_candidates(draw: st.DrawFn) -> tuple[str, str]:
    """(digits, default region): example national numbers, mutated, sometimes elsewhere."""
    example = draw(st.sampled_from(_EXAMPLES))
    digits = list(phonenumbers.national_significant_number(example))
    for _ in range(draw(st.integers(0, 2))):
        digits[draw(st.integers(0, len(digits) - 1))] = draw(st.sampled_from("0123456789"))
    region = phonenumbers.region_code_for_number(example) or "US"
    if region not in phonenumbers.SUPPORTED_REGIONS or draw(st.booleans()):
        region = draw(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
    return draw(st.sampled_from(["", "1", "0"])) + "".join(digits), region


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_national_candidates())
def test_national_fast_path_agrees_with_phonenumbers(case: tuple[str, str]) -> None:
    digits, region = case
    fast = _fast_national(digits, region)
    if fast is None:
        return  # deferred to phonenumbers itself
    number = phonenumbers.parse(digits, region)
    assert phonenumbers.is_valid_number(number)
    assert fast == phonenumbers.format_number(number, PhoneNumberFormat.E164)


def test_fast_path_answers_almost_every_valid_example() -> None:
    """The fast path must actually be taken (it may defer national-prefix oddities)."""
    numbers = [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in _EXAMPLES]
    answered = [n for n in numbers if _fast_e164(n) is not None]
    assert len(answered) >= 0.9 * len(numbers)
    assert _fast_e164("+12025550143") == "+12025550143"
    assert _fast_e164("+15551234567") is None  # invalid: the library gives the reason
    assert _fast_national("2025550143", "US") == "+12025550143"
    assert _fast_national("12025550143", "US") is None  # leading calling code: library


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_e164_candidates())
def test_valid_e164_round_trips_in_every_format(e164: str) -> None:
    assume(_library(e164) == e164)
    example = phonenumbers.parse(e164, None)
    assert normalize_phone(e164) == e164
    international = phonenumbers.format_number(example, PhoneNumberFormat.INTERNATIONAL)
    assert normalize_phone(international, "US") == e164
    region = phonenumbers.region_code_for_number(example)
    national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
    if region in phonenumbers.SUPPORTED_REGIONS and phonenumbers.parse(national, region) == example:
        assert normalize_phone(national, region) == e164
