"""The PII and secret detectors of `harness.pii` on generated strings (hypothesis)."""

from __future__ import annotations

import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.pii import find_pii, iban_ok, is_placeholder, luhn_ok, mask

words = st.text(st.sampled_from(string.ascii_letters + " ,.!?'"), max_size=40)


def luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


def iban_with_check(country: str, bban: str) -> str:
    raw = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in raw)) % 97
    return f"{country}{check:02d}{bban}"


@given(words, words)
@settings(max_examples=200)
def test_plain_prose_has_no_findings(a, b):
    assert find_pii(f"{a} {b}") == []


# (issuer prefix, length) of real card schemes: Visa, Mastercard (both series), Amex, Discover, Diners, JCB, UnionPay, Maestro
ISSUERS = [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15), ("37", 15),
           ("6011", 16), ("65", 16), ("36", 14), ("3528", 16), ("62", 19), ("50", 12), ("67", 18)]


@given(st.sampled_from(ISSUERS), st.data(), words, words)
@settings(max_examples=200)
def test_luhn_valid_card_numbers_are_found(issuer, data, before, after):
    prefix, length = issuer
    number = luhn_complete(prefix + data.draw(st.text(string.digits, min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)))
    assume(len(set(number)) > 1)
    spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    for shown in (number, spaced):
        found = find_pii(f"{before} card {shown} {after}")
        assert any(f.kind == "card" and f.text.replace(" ", "") == number for f in found), found


@given(st.text(string.digits, min_size=13, max_size=19))
@settings(max_examples=200)
def test_digit_runs_failing_luhn_are_not_cards(number):
    assume(not luhn_ok(number))
    assert not [f for f in find_pii(f"order {number} shipped") if f.kind == "card"]


def test_luhn_valid_numbers_outside_the_issuer_ranges_are_not_cards():
    # no scheme issues these prefixes at these lengths: ids, IMEIs, order numbers
    for prefix, length in [("0", 16), ("1", 16), ("7", 16), ("8", 16), ("9", 16), ("35", 15), ("49", 15), ("34", 16), ("4", 15)]:
        number = luhn_complete(prefix + "1234567890123456789"[: length - len(prefix) - 1])
        assert len(number) == length
        assert not [f for f in find_pii(f"card {number}") if f.kind == "card"], number


# BBAN formats from the IBAN registry: n digits, a capital letters, c either
BBAN_FORMATS = {"DE": "18n", "GB": "4a14n", "FR": "10n11c2n", "NL": "4a10n", "ES": "20n", "AT": "16n", "PL": "24n", "CH": "5n12c"}


def bban_strategy(fmt: str):
    import re

    alphabets = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + string.ascii_uppercase}
    parts = [st.text(alphabets[kind], min_size=int(n), max_size=int(n)) for n, kind in re.findall(r"(\d+)([nac])", fmt)]
    return st.tuples(*parts).map("".join)


@given(st.sampled_from(sorted(BBAN_FORMATS)).flatmap(lambda c: st.tuples(st.just(c), bban_strategy(BBAN_FORMATS[c]))), st.data())
@settings(max_examples=200)
def test_ibans_found_only_with_valid_check_digits(country_bban, data):
    iban = iban_with_check(*country_bban)
    assert iban_ok(iban)
    assert any(f.kind == "iban" for f in find_pii(f"pay to {iban} today"))
    # any single changed character breaks mod-97
    i = data.draw(st.sampled_from([k for k in range(4, len(iban)) if iban[k].isdigit()] or [2]))
    new = data.draw(st.sampled_from(string.digits).filter(lambda c: c != iban[i]))
    broken = iban[:i] + new + iban[i + 1 :]
    assert not iban_ok(broken)
    assert not [f for f in find_pii(f"pay to {broken} today") if f.kind == "iban"]


@given(st.sampled_from(sorted(BBAN_FORMATS)).flatmap(lambda c: st.tuples(st.just(c), bban_strategy(BBAN_FORMATS[c]))), st.integers(1, 3))
@settings(max_examples=100)
def test_ibans_of_the_wrong_length_for_their_country_are_not_ibans(country_bban, cut):
    # a valid checksum is not enough: the country's registered length must hold too
    country, bban = country_bban
    short = iban_with_check(country, bban[:-cut])
    assert not iban_ok(short)
    assert not [f for f in find_pii(f"pay to {short} today") if f.kind == "iban"]


local = st.text(string.ascii_lowercase + string.digits + "._", min_size=1, max_size=12).filter(lambda s: s[0].isalnum() and s[-1].isalnum())
label = st.text(string.ascii_lowercase, min_size=2, max_size=10)


@given(local, label, st.sampled_from(["com", "de", "io", "org"]), words)
@settings(max_examples=200)
def test_emails_found_and_placeholders_recognised(user, domain, tld, text):
    email = f"{user}@{domain}.{tld}"
    [f] = [f for f in find_pii(f"{text} mail {email} now") if f.kind == "email"]
    assert f.text == email and not is_placeholder(f)
    [p] = [f for f in find_pii(f"mail {user}@example.com or {user}@{domain}.test") if f.kind == "email"][:1]
    assert is_placeholder(p)


@given(st.sampled_from(["AKIA", "ASIA"]), st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16))
def test_aws_keys_found(prefix, rest):
    assert any(f.kind == "aws_key" for f in find_pii(f"key={prefix}{rest}"))


@given(st.text(min_size=7, max_size=60))
def test_mask_hides_the_middle(text):
    m, keep = mask(text), 2 if len(text) < 16 else 4
    assert len(m) == len(text) and m[keep:-keep] == "*" * (len(text) - 2 * keep)
    assert m[:keep] == text[:keep] and m[-keep:] == text[-keep:]
