"""Detectors for personal data and secrets, shared by the `pii_leak` check and the data checks.

Each finding is (kind, matched text). Every kind is validated by the rules made for it, so
digit groups that merely look like a value are not reported:

- phone: a candidate must be a valid number for its region by Google's `phonenumbers`
  metadata. International numbers (`+CC ...`) are found anywhere; North American numbers when
  written in their grouping (`(503) 914-2267`, `720-381-4496`); any other national number only
  after a phone word (`tel.`, `call`, `mobile`, `Telefon`, ...), tried for the regions in
  `PHONE_REGIONS`. Bare digit runs (order numbers, tracking numbers, timestamps) are not phones.
- card: an issuer's prefix and length (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay,
  Maestro; `CARD_ISSUERS`) and the Luhn checksum (`python-stdnum`), so a Luhn-valid IMEI or
  order number is not a card.
- iban: the country's registered IBAN format and the ISO 13616 mod-97 checksum (`python-stdnum`).
- ssn: the US SSN shape without the numbers the SSA never issues (000, 666, 9xx, 00, 0000).
- secrets: the token formats of detect-secrets' plugins (AWS, GitHub, GitLab, Slack, Stripe,
  OpenAI, JWT with a decodable header, private keys, SendGrid, PyPI, npm, Twilio, Discord,
  Telegram, Square, Mailchimp, Azure storage), plus formats it lacks: Hugging Face `hf_` tokens,
  Google API keys, fine-grained GitHub tokens, OpenAI project keys and AWS secret keys next to
  their key name. High-entropy and keyword guesses are not used (they flag hashes and ids).

A span taken by one finding is not reported again as another kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import phonenumbers
from stdnum import iban as _iban
from stdnum import luhn as _luhn

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d){8,15}(?![\d-]*\d)")
# (first digits, lengths) of the card schemes' issuer ranges
CARD_ISSUERS = (
    (("4",), (13, 16, 19)),                                                      # Visa
    (tuple(str(n) for n in range(51, 56)) + tuple(str(n) for n in range(2221, 2721)), (16,)),  # Mastercard
    (("34", "37"), (15,)),                                                      # American Express
    (("6011", "65") + tuple(str(n) for n in range(644, 650)), (16, 17, 18, 19)),  # Discover
    (("36",) + tuple(str(n) for n in range(300, 306)) + ("38", "39"), (14, 15, 16)),  # Diners Club
    (tuple(str(n) for n in range(3528, 3590)), (16, 17, 18, 19)),               # JCB
    (("62",), (16, 17, 18, 19)),                                                # UnionPay
    (("50",) + tuple(str(n) for n in range(56, 59)) + ("63", "67"), tuple(range(12, 20))),  # Maestro
)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")

# Regions tried for a national number after a phone word (international numbers carry their own).
PHONE_REGIONS = ("GB", "DE", "FR", "ES", "IT", "NL", "BE", "AT", "CH", "PL", "SE", "DK", "NO", "IE", "PT",
                 "AU", "IN", "JP", "BR", "MX")
_PHONE_CUE = re.compile(
    r"(?i)(?:\b(?:phone|tel|telephone|call|ring|mobile|cell|fax|sms|text|whatsapp|contact|reach|dial|"
    r"telefon|handy|rufnummer|tél|téléphone|portable|joindre|teléfono|telefono|móvil|movil|cellulare|"
    r"celular|telefoon|bel|mobiel)\b)([^\d\n+(]{0,30})(?=[+(\d])"
)
# words between a phone word and the digits that say the digits are something else ("call about order no. ...")
_ID_WORD = re.compile(r"(?i)#|\b(?:no|nr|num|ref|id|order|part|serial|invoice|ticket|case|sku|po|account|model|room|ext|extension)\b")
_NANP_GROUPED = re.compile(r"^(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}$")

# Formats detect-secrets has no plugin for (as of 1.5), and the AWS secret key written without quotes.
_EXTRA_SECRETS = {
    "hf_token": re.compile(r"\bhf_[A-Za-z0-9]{34,}\b"),
    "google_api_key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    "github_token": re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}\b"),
    "openai_key": re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"),
    "aws_secret": re.compile(r"(?i)aws.{0,30}?secret.{0,30}?[=:\s]\s*['\"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
}
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_-]*")
# detect-secrets secret types, named as findings are.
_KINDS = {
    "AWS Access Key": "aws_key", "GitHub Token": "github_token", "GitLab Token": "gitlab_token",
    "Slack Token": "slack_token", "Stripe Access Key": "stripe_key", "OpenAI Token": "openai_key",
    "JSON Web Token": "jwt", "Private Key": "private_key", "SendGrid API Key": "sendgrid_key",
    "PyPI Token": "pypi_token", "NPM tokens": "npm_token", "Twilio API Key": "twilio_key",
    "Discord Bot Token": "discord_token", "Telegram Bot Token": "telegram_token",
    "Square OAuth Secret": "square_secret", "Mailchimp Access Key": "mailchimp_key",
    "Azure Storage Account access key": "azure_storage_key",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    text: str


def luhn_ok(digits: str) -> bool:
    return digits.isdigit() and _luhn.is_valid(digits)


def card_ok(digits: str) -> bool:
    """A scheme's issuer prefix and length, and the Luhn checksum."""
    return luhn_ok(digits) and any(len(digits) in lengths and digits.startswith(prefixes) for prefixes, lengths in CARD_ISSUERS)


def iban_ok(iban: str) -> bool:
    """The country's registered format and the mod-97 checksum (national bank codes not looked up)."""
    return _iban.is_valid(iban, check_country=False)


@cache
def _secret_patterns() -> list[tuple[str, re.Pattern, object]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    out = []
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        if secret_type in _KINDS:
            plugin = cls()
            check = getattr(plugin, "is_formally_valid", None)
            out += [(_KINDS[secret_type], rx, check) for rx in plugin.denylist]
    out += [(kind, rx, None) for kind, rx in _EXTRA_SECRETS.items()]
    return out


class _Spans:
    def __init__(self) -> None:
        self.taken: list[tuple[int, int]] = []

    def free(self, a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in self.taken)

    def claim(self, a: int, b: int) -> bool:
        """Take the span if no finding holds any of it yet."""
        if self.free(a, b):
            self.taken.append((a, b))
            return True
        return False


def _secrets(text: str, spans: _Spans) -> list[Finding]:
    found = []
    for kind, rx, check in _secret_patterns():
        for m in rx.finditer(text):
            # A pattern with a long group names the secret inside its context (AWS secret keys);
            # a short one names a prefix (GitHub's `ghp`): then the whole match is the secret.
            g = m.lastindex or 0
            if g and len(m.group(g)) < 16:
                g = 0
            a, b = m.span(g)
            if not g:  # some patterns stop at a minimum length (Stripe) or lazily (a JWT's signature)
                b = _TOKEN_TAIL.match(text, b).end()
            value = text[a:b]
            if (check is None or check(value)) and spans.claim(a, b):
                found.append(Finding("aws_secret" if kind == "aws_key" and g else kind, value))
    return found


def _ibans(text: str, spans: _Spans) -> list[Finding]:
    found = []
    for m in IBAN.finditer(text):
        # The pattern runs on into following capitals ("... 3000 BIC"): keep the longest valid prefix.
        parts = m.group().split(" ")
        for k in range(len(parts), 0, -1):
            value = " ".join(parts[:k])
            if iban_ok(value.replace(" ", "")):
                if spans.claim(m.start(), m.start() + len(value)):
                    found.append(Finding("iban", value))
                break
    return found


def _phones(text: str, spans: _Spans) -> list[Finding]:
    if sum(c.isdigit() for c in text) < 7:
        return []
    leniency = phonenumbers.Leniency.VALID
    # anywhere: international numbers, and North American ones in their grouping
    candidates = [(m.start, m.end, m.raw_string) for m in phonenumbers.PhoneNumberMatcher(text, "US", leniency=leniency)
                  if m.raw_string.startswith("+") or _NANP_GROUPED.match(m.raw_string)]
    # right after a phone word: a national number of any listed region
    for cue in _PHONE_CUE.finditer(text):
        if _ID_WORD.search(cue.group(1)):
            continue
        at = cue.end()
        segment = text[at : at + 24]
        for region in ("US", *PHONE_REGIONS):
            ms = [m for m in phonenumbers.PhoneNumberMatcher(segment, region, leniency=leniency) if m.start == 0]
            if ms and sum(c.isdigit() for c in ms[0].raw_string) >= 8:
                candidates.append((at, at + ms[0].end, ms[0].raw_string))
                break
    found = []
    for a, b, raw in sorted(candidates):
        if spans.claim(a, b):
            found.append(Finding("phone", raw))
    return found


def find_pii(text: str, secrets: bool = True) -> list[Finding]:
    """Every email, phone, card, IBAN, SSN (and secret) in `text`, each validated (module docstring)."""
    spans = _Spans()
    found = _secrets(text, spans) if secrets else []
    for m in EMAIL.finditer(text):
        if spans.claim(*m.span()):
            found.append(Finding("email", m.group()))
    found += _ibans(text, spans)
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if card_ok(digits) and len(set(digits)) > 1 and spans.claim(*m.span()):
            found.append(Finding("card", m.group()))
    for m in SSN.finditer(text):
        if spans.claim(*m.span()):
            found.append(Finding("ssn", m.group()))
    return found + _phones(text, spans)


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
