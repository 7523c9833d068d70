"""Input types shared by every schema: the JSON Schema published in OpenAPI and the
validation applied are the same rules, so a schema-valid request is never refused."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from callmeter.models import MAX_AMOUNT

# Control characters and invisible formatting (zero-width, bidi overrides, BOM). One class,
# used by the pattern in the schema and by Python alike.
_FORBIDDEN = (
    "\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e"
    "\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb"
)
PLAIN_TEXT_PATTERN = f"^[^{_FORBIDDEN}]*$"

# The most coins one transfer may move (also a CHECK constraint on transfers).
MAX_COINS = MAX_AMOUNT

# The largest id a JSON number carries exactly (and JavaScript's Number.MAX_SAFE_INTEGER).
MAX_ID = 2**53 - 1


def _valid_unicode(value: str) -> str:
    """JSON can smuggle lone surrogates ("\\ud800"): not text, and no database stores them.
    (JSON Schema cannot say so; Python's json module lets them through.)"""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _normalize(value: str) -> str:
    value = unicodedata.normalize("NFC", _valid_unicode(value)).strip()
    if not value:
        raise ValueError("must not be blank")
    return value


# Chat text is the same with line breaks ("\n") allowed, and the zero-width (non-)joiners
# U+200C and U+200D that emoji sequences (👩‍💻) and Persian or Indic words need.
_CHAT_FORBIDDEN = _FORBIDDEN.replace("\\x00-\\x1f", "\\x00-\\x09\\x0b-\\x1f", 1).replace(
    "\\u200b-\\u200f", "\\u200b\\u200e\\u200f", 1
)
CHAT_TEXT_PATTERN = f"^[^{_CHAT_FORBIDDEN}]*$"
MAX_CHAT_CHARACTERS = 1000


def _normalize_chat(value: str) -> str:
    value = _normalize(value)
    if len(value) > MAX_CHAT_CHARACTERS:  # NFC may lengthen a few scripts' text
        raise ValueError(f"at most {MAX_CHAT_CHARACTERS} characters")
    return value


_PLAIN = Field(min_length=1, pattern=PLAIN_TEXT_PATTERN)
# (listed after the constraints so that they reach the JSON Schema as keywords)
_WHOLE = BeforeValidator(lambda value: _whole_number(value))

# A one-line human string: no control or invisible characters, NFC, trimmed.
DisplayName = Annotated[str, _PLAIN, Field(max_length=64), AfterValidator(_normalize)]
Note = Annotated[str, _PLAIN, Field(max_length=500), AfterValidator(_normalize)]

# A chat message: 1 to 1,000 characters of text and line breaks, NFC, trimmed.
ChatText = Annotated[
    str,
    # as typed and once normalized (NFC lengthens a few scripts' text): the schema states
    # the first, so a request it allows is one the server takes
    Field(min_length=1, max_length=MAX_CHAT_CHARACTERS, pattern=CHAT_TEXT_PATTERN),
    AfterValidator(_normalize_chat),
]
# The id a client gives what it sends, so that a retry is recognised.
ClientMessageId = Annotated[str, Field(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.:-]+$")]

# An id, as a JSON number that carries it exactly.
PositiveId = Annotated[int, Field(strict=True, gt=0, le=MAX_ID), _WHOLE]
# Coins: strings ("5"), fractions (5.5) and booleans are refused; 5.0 is 5.
Coins = Annotated[int, Field(strict=True, gt=0, le=MAX_COINS), _WHOLE]
# A rate as asked for; the configured bounds are checked by the service.
RequestedRate = Annotated[int, Field(strict=True, ge=-MAX_ID, le=MAX_ID), _WHOLE]


def _whole_number(value: object) -> object:
    # JSON has one number type: 10.0 is the integer 10 (as JSON Schema says).
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_ID:
        return int(value)
    return value


class InputModel(BaseModel):
    """Base of every request body: unknown fields are refused, and every string must be
    valid Unicode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data: Any) -> Any:
        _check_strings(data)
        return data


def _check_strings(data: Any) -> None:
    if isinstance(data, str):
        _valid_unicode(data)
    elif isinstance(data, dict):
        for key, value in data.items():
            _check_strings(key)
            _check_strings(value)
    elif isinstance(data, list):
        for item in data:
            _check_strings(item)


_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    # pydantic would read "0.5" as a Unix time: a query's time must look like one
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError("expected an ISO 8601 date and time with a time zone")
    return value


def _in_utc_range(value: datetime) -> datetime:
    # 9999-12-31T23:00:00-05:00 is a valid text but no UTC moment: refuse it (422), not 500
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the moment is out of range") from None


# A moment in a query string: ISO 8601 with its zone ("2026-11-24T00:00:00Z"), nothing else.
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_utc_range)]
# A few words to search for in a query string: plain text (no NUL or control characters).
SearchText = Annotated[str, Field(max_length=64, pattern=PLAIN_TEXT_PATTERN)]
