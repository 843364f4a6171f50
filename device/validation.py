"""Names and metadata that users give: the same rules for the CLI, the HTTP API and the store.

Names of collections and persons are stripped and NFC-normalised the same way on creation and on lookup, 1-200
characters, case-sensitive; control and format characters (Unicode Cc, Cf) are refused, every printable
character (`<`, `>`, quotes included) is kept: front ends render names as text, never as markup.

Metadata is a JSON object of depth <= 8, at most 16 KiB as compact JSON, with finite numbers only: it is copied
into every search result, so it must stay small and valid JSON for every client.
"""
from __future__ import annotations

import json
import math
import unicodedata
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidInput

MAX_NAME_CHARS = 200
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8


def clean_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str):
        raise InvalidInput(f"the {what} must be a string", "INVALID_NAME")
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise InvalidInput(f"the {what} is empty", "INVALID_NAME")
    if len(text) > MAX_NAME_CHARS:
        raise InvalidInput(f"the {what} has {len(text)} characters, more than {MAX_NAME_CHARS}", "INVALID_NAME")
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf")), None)
    if bad is not None:
        raise InvalidInput(f"the {what} holds a control or format character (U+{ord(bad):04X})", "INVALID_NAME")
    return text


def lookup_name(name: Any) -> str:
    """A name as stored, for lookups: the same normalisation as creation, without refusing (no match instead)."""
    return unicodedata.normalize("NFC", name).strip() if isinstance(name, str) else ""


def parse_metadata(text: str) -> dict:
    """Metadata given as JSON text (the CLI's --metadata)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise InvalidInput(f"the metadata is over {MAX_METADATA_BYTES // 1024} KiB", "INVALID_METADATA")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidInput(f"the metadata is nested deeper than {MAX_METADATA_DEPTH} levels",
                           "INVALID_METADATA") from None
    except ValueError as exc:  # JSONDecodeError, and the constants refused above
        raise InvalidInput(f"the metadata is not valid JSON: {exc}", "INVALID_METADATA") from None
    return check_metadata(value)


def check_metadata(value: Any) -> dict:
    """Metadata given as a parsed value (the HTTP API's JSON body); returns it unchanged when acceptable."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("the metadata must be a JSON object", "INVALID_METADATA")
    # Iteratively, so that a deeply nested value cannot exhaust the stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise InvalidInput(f"the metadata is nested deeper than {MAX_METADATA_DEPTH} levels", "INVALID_METADATA")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidInput("metadata keys must be strings", "INVALID_METADATA")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput("the metadata holds NaN or Infinity, which JSON does not allow", "INVALID_METADATA")
        elif not (item is None or isinstance(item, (str, int, float, bool))):
            raise InvalidInput(f"the metadata holds a {type(item).__name__}, not a JSON value", "INVALID_METADATA")
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidInput("the metadata is not valid JSON text", "INVALID_METADATA") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"the metadata is {size} bytes as JSON, over {MAX_METADATA_BYTES // 1024} KiB",
                           "INVALID_METADATA")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def utc_iso(timestamp: float) -> str:
    """ISO 8601 UTC with milliseconds: 2026-11-02T08:15:30.123Z (events, visitors)."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
