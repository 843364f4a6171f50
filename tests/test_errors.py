"""The README's error table is device/errors.CODES, and every code raised in the package is in CODES."""
from __future__ import annotations

import re

from device.errors import CODES
from tests.conftest import REPO


def test_readme_table_equals_codes():
    text = (REPO / "README.md").read_text()
    table = text.split("<!-- error-codes:begin -->")[1].split("<!-- error-codes:end -->")[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \| (.+) \|$", table, re.MULTILINE)
    assert [(code, int(status), meaning) for code, status, meaning in rows] == \
        [(code, c.status, c.meaning) for code, c in CODES.items()]


def test_every_raised_code_is_listed():
    raised = set()
    for path in (REPO / "device").rglob("*.py"):
        source = path.read_text()
        raised |= set(re.findall(r"(?:Error|Input|Found|Conflict|Busy|Enrolled)\([^)]*?\"([A-Z][A-Z_]{3,})\"\)",
                                 source))
        raised |= set(re.findall(r'^    code = "([A-Z_]+)"', source, re.MULTILINE))  # class defaults
    assert raised, "the pattern found no raise at all"
    assert raised <= set(CODES), raised - set(CODES)
