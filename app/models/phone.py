"""Phone number normalisation to E.164, with repair of common spreadsheet damage.

Pure functions, no I/O: the CSV import calls ``normalize_phone`` once per row, so the common
case (a number already written as strict E.164) takes a fast path that gives exactly the same
answer as the general ``phonenumbers`` parse, at a fraction of its cost.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from importlib import resources

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat, ValidationResult

logger = logging.getLogger(__name__)

__all__ = ["PhoneError", "is_supported_country", "normalize_phone"]

E164_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}")
"""Strict E.164: a plus, a country code that does not start with 0, 7 to 15 digits in all."""

_MIN_LOOSE_DIGITS = 7
_MAX_LOOSE_DIGITS = 15

# Characters people (and spreadsheets) put between digits; removed before parsing.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015.()/\u200b-\u200f\u2060\ufeff]+")
# Separators allowed when the row asks to skip validation: spaces, dashes, dots, parentheses.
_LOOSE_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015.()]+")
# "1.5551234567E+10", "4.47911123456e11", "1,5551234567E+10" (a comma as decimal mark).
_SCIENTIFIC = re.compile(r"\+?([0-9])(?:[.,]([0-9]*))?[eE]\+?([0-9]{1,2})")
# "15551234567.0" or "+15551234567.00": a number that went through a float.
_FLOAT_TAIL = re.compile(r"(\+?[0-9]+)\.0+")
_LETTER = re.compile(r"[^\W\d_]")

_SCIENTIFIC_REASON = (
    "looks like a spreadsheet turned it into scientific notation and digits were lost; "
    "format the phone column as Text in the spreadsheet and enter the number again"
)


class PhoneError(ValueError):
    """A phone number that cannot be turned into E.164; ``reason`` is shown to the supervisor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize_phone(
    raw: str, default_country: str = "US", ignore_e164_validation: bool = False
) -> str:
    """Return ``raw`` as E.164 (``+15551234567``) or raise ``PhoneError`` saying why not.

    ``default_country`` (ISO 3166 code such as ``US`` or ``GB``) turns national numbers into
    E.164. With ``ignore_e164_validation`` only the shape is checked: ``+`` and 7 to 15 digits.
    """
    text = raw.strip()
    if not text:
        raise PhoneError("the phone number is empty")
    if ignore_e164_validation:
        return _normalize_loose(text)
    if E164_PATTERN.fullmatch(text):
        fast = _fast_e164(text)
        if fast is not None:
            return fast
        return _normalize_international(text)
    return _normalize_repaired(text, default_country.upper())


def is_supported_country(code: str) -> bool:
    """Whether ``code`` (ISO 3166, e.g. ``GB``) can serve as the default country."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def _normalize_loose(text: str) -> str:
    """Shape check only, for rows that set ignoreE164Validation (test numbers, odd plans)."""
    compact = _LOOSE_SEPARATORS.sub("", text)
    if _LETTER.search(compact):
        raise PhoneError("contains letters")
    if not compact.startswith("+"):
        raise PhoneError("must start with + and the country code when ignoreE164Validation is set")
    digits = compact[1:]
    if not digits.isdecimal() or not digits.isascii():
        raise PhoneError("may only contain digits after the +")
    if len(digits) < _MIN_LOOSE_DIGITS:
        raise PhoneError(f"too short: {len(digits)} digits, at least {_MIN_LOOSE_DIGITS} needed")
    if len(digits) > _MAX_LOOSE_DIGITS:
        raise PhoneError(f"too long: {len(digits)} digits, at most {_MAX_LOOSE_DIGITS} allowed")
    return compact


def _normalize_repaired(text: str, region: str) -> str:
    """The general path: undo spreadsheet damage, then parse nationally or internationally."""
    float_tail = _FLOAT_TAIL.fullmatch(text)
    if float_tail:
        text = float_tail.group(1)
    scientific = _SCIENTIFIC.fullmatch(text.replace(" ", ""))
    if scientific:
        return _expand_scientific(scientific, region)
    if _LETTER.search(text):
        raise PhoneError("contains letters")
    compact = _SEPARATORS.sub("", text)
    plus = compact.startswith("+")
    digits = compact[1:] if plus else compact
    if not digits:
        raise PhoneError("contains no digits")
    if not digits.isdecimal():
        bad = next(ch for ch in digits if not ch.isdecimal())
        if bad == "+":
            raise PhoneError("has a + that is not at the start")
        raise PhoneError(f"contains {bad!r}, which is not part of a phone number")
    digits = _ascii_digits(digits)
    if plus:
        return _normalize_international("+" + digits)
    return _normalize_national(digits, region)


def _ascii_digits(digits: str) -> str:
    """Map other scripts' decimal digits (fullwidth, Arabic-Indic) to 0-9."""
    if digits.isascii():
        return digits
    return "".join(str(int(ch)) for ch in digits)


def _expand_scientific(match: re.Match[str], region: str) -> str:
    """Expand ``1.5551234567E+10`` back to digits, but only when no digit was lost."""
    lead, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
    # A spreadsheet keeps up to 15 significant digits; when the fraction is shorter than the
    # exponent, zeros were padded in and the real digits are gone.
    if len(fraction) != exponent:
        raise PhoneError(_SCIENTIFIC_REASON)
    digits = lead + fraction
    try:
        return _normalize_national(digits, region)
    except PhoneError:
        raise PhoneError(_SCIENTIFIC_REASON) from None


def _normalize_national(digits: str, region: str) -> str:
    """A number without ``+``: national for ``region``, or international with a lost ``+``."""
    fast = _fast_national(digits, region)
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(digits, region)
    except NumberParseException as exc:
        national_error = _parse_error_reason(exc, region, international=False)
    else:
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
        national_error = _invalid_reason(number, region)
    # A spreadsheet that stored "+447911123456" as a number dropped the plus.
    if digits[0] != "0":
        with_plus = "+" + digits
        repaired = _fast_e164(with_plus) if E164_PATTERN.fullmatch(with_plus) else None
        if repaired is not None:
            return repaired
    raise PhoneError(national_error)


def _normalize_international(text: str) -> str:
    """The general ``phonenumbers`` path for a number written with ``+``."""
    try:
        number = phonenumbers.parse(text, None)
    except NumberParseException as exc:
        raise PhoneError(_parse_error_reason(exc, None, international=True)) from None
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    raise PhoneError(_invalid_reason(number, None))


def _parse_error_reason(exc: NumberParseException, region: str | None, international: bool) -> str:
    if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
        if international:
            return "does not start with a known country code after the +"
        return f"unknown default country {region!r}; choose a country in Settings"
    if exc.error_type in (
        NumberParseException.TOO_SHORT_NSN,
        NumberParseException.TOO_SHORT_AFTER_IDD,
    ):
        return "too short"
    if exc.error_type == NumberParseException.TOO_LONG:
        return "too long"
    return "is not a phone number"


def _invalid_reason(number: phonenumbers.PhoneNumber, default_region: str | None) -> str:
    """Say why a parsed number is not valid, naming the country it was checked against."""
    country_code = number.country_code or 0
    if default_region and phonenumbers.country_code_for_region(default_region) == country_code:
        region = default_region
    else:
        region = phonenumbers.region_code_for_country_code(country_code)
    country = _country_name(region, country_code)
    length = phonenumbers.is_possible_number_with_reason(number)
    if length == ValidationResult.INVALID_COUNTRY_CODE:
        return "does not start with a known country code"
    if length in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        return f"too short for {country}"
    detail = "too long" if length == ValidationResult.TOO_LONG else "not a valid number"
    detail = f"{detail} for {country}"
    if default_region is not None and region == default_region:
        detail += " (numbers from other countries need + and the country code)"
    return detail


_NAME_OVERRIDES = {"GB": "United Kingdom"}  # tzdata says "Britain (UK)"


@functools.cache
def _country_names() -> dict[str, str]:
    """English country names by ISO code, from the tzdata package we already ship.

    phonenumbers' own geocoder would cost ~100 MB of memory to load for this one purpose.
    """
    try:
        table = (
            resources.files("tzdata").joinpath("zoneinfo").joinpath("iso3166.tab")
        )  # one part each: a frozen build's MultiplexedPath takes one
        text = table.read_text(encoding="utf-8")
    except (ModuleNotFoundError, OSError):
        logger.warning("Country names are unavailable (tzdata not found); using ISO codes")
        return dict(_NAME_OVERRIDES)
    names = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            names[code.strip()] = name.strip()
    names.update(_NAME_OVERRIDES)
    return names


def _country_name(region: str, country_code: int) -> str:
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return f"the international service +{country_code}"
    return _country_names().get(region) or f"country code +{country_code} ({region})"


# ---------------------------------------------------------------------------------------------
# Fast path for strict E.164 input
#
# ``phonenumbers.parse`` + ``is_valid_number`` cost ~25 µs per number, mostly in generic
# scanning and in recompiling/looking up metadata regexes. For "+<digits>" the work reduces to:
# split off the country code, make sure no national prefix would be stripped, then run the
# same metadata patterns. Anything unusual (national prefix, leading zero) returns None and
# the caller takes the general path, so the answer is always the library's.


@dataclass(frozen=True, slots=True)
class _RegionRules:
    """One region's validity test as a single compiled pattern (None: nothing is valid).

    phonenumbers calls a number valid when it matches the general description and at least
    one number type, each description checked for its possible lengths and then its pattern.
    The lengths become a lookahead, the types an alternation, the general description a
    lookahead in front: one ``fullmatch`` instead of a dozen Python-level checks.
    """

    leading_digits: re.Pattern[str] | None
    check: re.Pattern[str] | None

    def is_valid(self, national: str) -> bool:
        return self.check is not None and self.check.fullmatch(national) is not None


@dataclass(frozen=True, slots=True)
class _CallingCodeRules:
    national_prefix: re.Pattern[str] | None
    regions: tuple[_RegionRules, ...]


_TYPE_FIELDS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


def _desc_pattern(desc: object) -> str | None:
    """A regex source equivalent to phonenumbers' ``_is_number_matching_desc`` for digits."""
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    lengths = sorted(set(getattr(desc, "possible_length", ()) or ()))
    if not lengths:
        return f"(?:{pattern})"
    sizes = "|".join(f"[0-9]{{{n}}}" for n in lengths)
    return f"(?=(?:{sizes})\\Z)(?:{pattern})"


def _region_rules(metadata: PhoneMetadata, with_leading_digits: bool) -> _RegionRules:
    fields = list(_TYPE_FIELDS)
    if not metadata.same_mobile_and_fixed_line_pattern:
        fields.append("mobile")
    types = [p for p in (_desc_pattern(getattr(metadata, f)) for f in fields) if p is not None]
    general = _desc_pattern(metadata.general_desc)
    check = None
    if general is not None and types:
        check = re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(types)})")
    leading = None
    if with_leading_digits and metadata.leading_digits is not None:
        leading = re.compile(metadata.leading_digits)
    return _RegionRules(leading, check)


@functools.cache
def _calling_code_rules(country_code: int) -> _CallingCodeRules | None:
    """Compiled validation rules for one calling code, built once per process."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions:
        return None
    main = PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0])
    if main is None:
        return None
    prefix = main.national_prefix_for_parsing
    national_prefix = re.compile(prefix) if prefix else None
    if len(regions) == 1:
        rules: tuple[_RegionRules, ...] = (_region_rules(main, with_leading_digits=False),)
    else:
        # Mirrors phonenumbers' region lookup: the first region whose leading digits match
        # decides; a region without leading digits is chosen when the number is valid there.
        found = []
        for code in regions:
            metadata = PhoneMetadata.metadata_for_region(code.upper(), None)
            if metadata is not None:
                found.append(_region_rules(metadata, with_leading_digits=True))
        rules = tuple(found)
    return _CallingCodeRules(national_prefix, rules)


# The first three digits of an E.164 number fix its calling code (codes are prefix-free and
# at most three digits): cache (code length, rules) per three-digit prefix.
_BY_PREFIX: dict[str, tuple[int, _CallingCodeRules | None]] = {}


def _prefix_entry(prefix: str) -> tuple[int, _CallingCodeRules | None]:
    entry: tuple[int, _CallingCodeRules | None] = (0, None)
    for size in (1, 2, 3):
        code = int(prefix[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            entry = (size, _calling_code_rules(code))
            break
    _BY_PREFIX[prefix] = entry
    return entry


def _fast_e164(text: str) -> str | None:
    """Validate strict E.164 ``text``; None means "ask phonenumbers" (invalid or unusual).

    Only a definite "valid" is answered here: the result for anything else must carry the
    library's reason, so it goes through the general path.
    """
    prefix = text[1:4]
    entry = _BY_PREFIX.get(prefix)
    if entry is None:
        entry = _prefix_entry(prefix)
    size, rules = entry
    if rules is None:
        return None
    national = text[1 + size :]
    if national[0] == "0":
        return None
    if rules.national_prefix is not None and rules.national_prefix.match(national):
        return None
    for region in rules.regions:
        if region.leading_digits is not None:
            if region.leading_digits.match(national):
                return text if region.is_valid(national) else None
        elif region.check is not None and region.check.fullmatch(national):
            return text
    return None


# National numbers ("2025550143" with default country US) take the same fast path when
# phonenumbers' national parse provably reduces to "+<calling code><digits>": no
# international dialling prefix, no leading calling code, no national prefix, no leading
# zero, and the default region strips national prefixes exactly as its calling code's main
# region does.


@dataclass(frozen=True, slots=True)
class _NationalRules:
    calling_code: str
    idd: re.Pattern[str] | None


@functools.cache
def _national_rules(region: str) -> _NationalRules | None:
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or metadata.country_code is None:
        return None
    code = metadata.country_code
    main = PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code)
    )
    if main is None or (
        metadata.national_prefix_for_parsing,
        metadata.national_prefix_transform_rule,
    ) != (main.national_prefix_for_parsing, main.national_prefix_transform_rule):
        return None
    idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
    return _NationalRules(str(code), idd)


def _fast_national(digits: str, region: str) -> str | None:
    """E.164 for ASCII ``digits`` read as a national number of ``region``, or None to ask
    phonenumbers (invalid, or a case its national parse treats specially)."""
    rules = _national_rules(region)
    if rules is None or digits.startswith(("0", rules.calling_code)):
        return None
    if rules.idd is not None and rules.idd.match(digits):
        return None
    candidate = "+" + rules.calling_code + digits
    if not E164_PATTERN.fullmatch(candidate):
        return None
    return _fast_e164(candidate)
