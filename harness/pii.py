"""Detectors for personal data and secrets, shared by the `pii_leak` check and the data checks.

Each finding is (kind, matched text). Card numbers must pass the Luhn check and IBANs the
ISO 13616 mod-97 check, so random digit runs are not reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}(?!\w)")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
SECRETS = {
    "aws_key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "github_token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "openai_key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b"),
    "slack_token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    "private_key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
}


@dataclass(frozen=True)
class Finding:
    kind: str
    text: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def find_pii(text: str, secrets: bool = True) -> list[Finding]:
    """Every email, phone, Luhn-valid card, mod-97-valid IBAN, SSN-like id (and secret) in `text`."""
    found: list[Finding] = [Finding("email", m.group()) for m in EMAIL.finditer(text)]
    cards = []
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            cards.append(m.span())
            found.append(Finding("card", m.group()))
    for m in IBAN.finditer(text):
        if iban_ok(m.group()):
            found.append(Finding("iban", m.group()))
    for m in SSN.finditer(text):
        found.append(Finding("ssn", m.group()))
    for m in PHONE.finditer(text):
        inside_card = any(a <= m.start() and m.end() <= b for a, b in cards)
        digits = re.sub(r"\D", "", m.group())
        if not inside_card and 7 <= len(digits) <= 15 and not SSN.fullmatch(m.group().strip()):
            found.append(Finding("phone", m.group().strip()))
    if secrets:
        for kind, rx in SECRETS.items():
            found += [Finding(kind, m.group()) for m in rx.finditer(text)]
    return found


def digits_key(f: Finding) -> str:
    """A finding's identity for comparing output to input (formatting-insensitive)."""
    return f.text.lower() if f.kind == "email" else re.sub(r"[^0-9A-Za-z]", "", f.text).upper()


# Documentation-only values: reserved example domains (RFC 2606 / RFC 6761), the NANP fictional
# 555-0100..0199 range and the card numbers payment providers publish for testing. They mark
# synthetic data, not a person, so the data checks report them without blocking.
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org")
PLACEHOLDER_TLDS = (".example", ".test", ".invalid", ".localhost")
TEST_CARDS = frozenset({
    "4111111111111111", "4242424242424242", "4000056655665556", "5555555555554444", "5105105105105100",
    "378282246310005", "371449635398431", "6011111111111117", "3530111333300000",
})
_FICTIONAL_PHONE = re.compile(r"555[\s.-]?01\d\d$")


def is_placeholder(f: Finding) -> bool:
    """True for documentation-only values: example domains, 555-01xx phones, published test cards."""
    if f.kind == "email":
        domain = f.text.rsplit("@", 1)[-1].lower()
        return domain.endswith(PLACEHOLDER_TLDS) or any(domain == d or domain.endswith("." + d) for d in PLACEHOLDER_DOMAINS)
    if f.kind == "phone":
        return bool(_FICTIONAL_PHONE.search(f.text))
    if f.kind == "card":
        return re.sub(r"\D", "", f.text) in TEST_CARDS
    return False


def mask(text: str) -> str:
    """A finding's text with its middle hidden, so reports do not repeat the personal data."""
    if len(text) <= 6:
        return "*" * len(text)
    keep = 2 if len(text) < 16 else 4
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]
