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


@given(st.text(string.digits, min_size=12, max_size=18), words, words)
@settings(max_examples=200)
def test_luhn_valid_card_numbers_are_found(body, before, after):
    number = luhn_complete(body)
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


@given(st.sampled_from(["DE", "GB", "FR", "NL", "ES"]), st.text(string.digits + string.ascii_uppercase, min_size=12, max_size=22), st.data())
@settings(max_examples=200)
def test_ibans_found_only_with_valid_check_digits(country, bban, data):
    iban = iban_with_check(country, bban)
    assert iban_ok(iban)
    assert any(f.kind == "iban" for f in find_pii(f"pay to {iban} today"))
    # any single changed character breaks mod-97
    i = data.draw(st.sampled_from([k for k in range(4, len(iban)) if iban[k].isdigit()] or [2]))
    new = data.draw(st.sampled_from(string.digits).filter(lambda c: c != iban[i]))
    broken = iban[:i] + new + iban[i + 1 :]
    assert not iban_ok(broken)
    assert not [f for f in find_pii(f"pay to {broken} today") if f.kind == "iban"]


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
