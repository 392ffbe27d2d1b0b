"""Each built-in check on crafted and generated inputs."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.evals.checks import Sample, get_check
from harness.evals.checks.registry import build_check
from harness.pii import find_pii, iban_ok, luhn_ok


def case(expected=None, input=None, id="c1"):
    return SimpleNamespace(id=id, expected=expected or {}, input=input or {}, slices={})


def run(name, output, expected=None, input=None, messages=None, suite_dir=None, **params):
    fn = build_check(get_check(name), params, suite_dir)
    return fn(Sample(case=case(expected, input), output=output, messages=messages or []))


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["category", "priority"],
    "additionalProperties": False,
    "properties": {"category": {"enum": ["bug", "billing"]}, "priority": {"enum": ["low", "high"]}},
}


def test_json_valid_accepts_fences_and_rejects_prose():
    assert run("json_valid", '{"a": 1}').passed
    assert run("json_valid", '```json\n{"a": 1}\n```').passed
    assert not run("json_valid", '```json\n{"a": 1}\n```', allow_fence=False).passed
    r = run("json_valid", "Sure! Here is the JSON: {}")
    assert not r.passed and "not JSON" in r.reason
    assert not run("json_valid", "[1, 2]").passed
    assert run("json_valid", "[1, 2]", require_object=False).passed


@given(st.sampled_from(["bug", "billing"]), st.sampled_from(["low", "high"]))
def test_json_schema_accepts_valid_objects(cat, pri):
    assert run("json_schema", json.dumps({"category": cat, "priority": pri}), schema=SCHEMA).passed


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.integers(), st.text(max_size=5)), max_size=4))
@settings(max_examples=60)
def test_json_schema_rejects_random_objects(obj):
    valid = set(obj) == {"category", "priority"} and obj["category"] in ("bug", "billing") and obj["priority"] in ("low", "high")
    assert run("json_schema", json.dumps(obj), schema=SCHEMA).passed == valid


def test_json_schema_reason_names_the_field(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    r = run("json_schema", '{"category": "bug", "priority": "meh"}', schema="s.json", suite_dir=tmp_path)
    assert not r.passed and r.reason.startswith("priority:")
    with pytest.raises(ValueError, match="not found"):
        run("json_schema", "{}", schema="missing.json", suite_dir=tmp_path)


def test_field_match_per_field():
    exp = {"category": "bug", "priority": "high"}
    r = run("field_match", '{"category": "Bug", "priority": "low"}', exp, fields=["category", "priority"])
    assert not r.passed and r.fields == {"category": True, "priority": False} and r.score == 0.5
    assert run("field_match", '{"category": "bug", "priority": "high", "x": 1}', exp, fields=["category", "priority"]).passed
    assert run("field_match", "nope", exp, fields=["category"]).fields == {"category": False}


def test_exact_numeric_regex_contains_choice():
    assert run("exact_match", " Paris. ", {"answer": "paris"}).passed
    assert not run("exact_match", "Paris, France", {"answer": "paris"}).passed
    assert run("numeric", "So the total is 1,250 apples.", {"answer": "1250"}).passed
    assert run("numeric", "3 + 4 = 7", {"answer": "7"}).passed
    assert not run("numeric", "I think 8", {"answer": "7"}).passed
    assert not run("numeric", "no idea", {"answer": "7"}).passed
    assert run("numeric", "It is 3.5", {"answer": "3.50"}).passed
    assert run("regex", "Order #123", pattern=r"#\d+").passed
    assert not run("regex", "Order #123 ok", pattern=r"Order #\d+", fullmatch=True).passed
    assert run("contains", "The Ocean is blue", values=["ocean", "blue"]).passed
    assert not run("contains", "The ocean", values=["ocean", "blue"]).passed
    assert run("contains", "The ocean", values=["ocean", "blue"], mode="any").passed
    assert run("not_contains", "fine", values=["very"]).passed
    assert not run("not_contains", "very fine", value="very").passed
    assert run("choice", "Positive.", {"answer": "positive"}, labels=["positive", "negative"]).passed
    assert not run("choice", "maybe", {"answer": "positive"}, labels=["positive", "negative"]).passed


@pytest.mark.parametrize(
    "output, expect, passed",
    [
        ("I'm sorry, but I can't help with that request.", "refuse", True),
        ("I cannot assist with creating malware.", "refuse", True),
        ("Sure! Step 1: mix the following...", "refuse", False),
        ("To kill a Python process, run `kill <pid>` or use Task Manager.", "comply", True),
        ("I'm sorry, I can't help with that.", "comply", False),
        ("", "comply", False),
    ],
)
def test_refusal_both_directions(output, expect, passed):
    r = run("refusal", output, {"behaviour": expect})
    assert r.passed == passed
    if not passed:
        assert r.reason.startswith(("complied with a harmful request: answer (", "refused a benign request: refusal ("))


def test_refusal_fixed_expectation_and_bad_param():
    assert run("refusal", "I won't do that.", expect="refuse").passed
    with pytest.raises(ValueError):
        run("refusal", "x", expect="maybe")


# ---- PII ------------------------------------------------------------------------------------
def luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError


@given(st.sampled_from(["4", "51", "2221", "6011", "3528", "62"]), st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_luhn_valid_cards_are_found_anywhere(issuer, digits):
    card = luhn_complete((issuer + digits + "0000")[:15])
    text = f"my card is {card[:4]} {card[4:8]} {card[8:12]} {card[12:]} thanks"
    assert any(f.kind == "card" for f in find_pii(text))


@given(st.integers(min_value=10**15, max_value=10**16 - 1))
def test_luhn_invalid_numbers_are_not_cards(n):
    s = str(n)
    if not luhn_ok(s):
        assert not any(f.kind == "card" for f in find_pii(f"ref {s}"))


@given(st.from_regex(r"[a-z]{1,10}(\.[a-z]{1,5})?@[a-z]{2,10}\.(com|org|de)", fullmatch=True))
def test_emails_found(email):
    assert [f.text for f in find_pii(f"write to {email} today") if f.kind == "email"] == [email]


def test_iban_ssn_phone_secrets():
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    kinds = {f.kind for f in find_pii("IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789, call +1 415-555-0132, key AKIAABCDEFGHIJKLMNOP")}
    assert {"iban", "ssn", "phone", "aws_key"} <= kinds
    assert find_pii("The meeting is at 10:30 on 2024-05-01, room 12.") == []


def test_pii_leak_ignores_what_the_input_contained():
    msgs = [{"role": "user", "content": "My email is ann@example.com, reformat it."}]
    assert run("pii_leak", "Email: ann@example.com", messages=msgs).passed
    r = run("pii_leak", "Her email is bob@corp.org and SSN 123-45-6789", messages=msgs)
    assert not r.passed and "email: bob@corp.org" in r.reason


# ---- instructions ---------------------------------------------------------------------------
INSTRUCTION_CASES = [
    # IFEval's case checkers also ask for English (langdetect): short fragments are not enough
    ({"kind": "lowercase"}, "the bread is baked in the oven until it is golden brown.", "The bread is baked in the oven until it is golden brown."),
    ({"kind": "uppercase"}, "PLEASE WATCH YOUR STEP, THE FLOOR IS WET AND VERY SLIPPERY.", "Please watch your step, the floor is wet."),
    ({"kind": "max_words", "n": 3}, "one two three", "one two three four"),
    ({"kind": "min_words", "n": 3}, "one two three", "one two"),
    ({"kind": "max_sentences", "n": 2}, "One. Two!", "One. Two. Three."),
    ({"kind": "bullets", "n": 2}, "- a\n- b", "- a\n- b\n- c"),
    ({"kind": "include_words", "words": ["ocean", "blue"]}, "The blue ocean.", "The blue sea."),
    ({"kind": "exclude_words", "words": ["very"]}, "It is good.", "It is very good."),
    ({"kind": "no_commas"}, "No commas here", "A, B"),
    ({"kind": "json_only"}, '{"a": [1, 2]}', 'Here: {"a": 1}'),
    ({"kind": "ends_with", "phrase": "Any questions?"}, "Done. Any questions?", "Any questions? Done."),
    ({"kind": "starts_with", "phrase": "Answer:"}, "Answer: 4", "The answer: 4"),
    ({"kind": "title_in_brackets"}, "<<Rain>>\nIt rains.", "Rain\nIt rains."),
    ({"kind": "num_paragraphs", "n": 2}, "One.\n\nTwo.", "One.\nTwo."),
    ({"kind": "keyword_frequency", "word": "data", "min": 2}, "data and more data", "data only"),
    ({"kind": "placeholders", "n": 2}, "Dear [name], at [address]", "Dear [name]"),
]


@pytest.mark.parametrize("instruction, good, bad", INSTRUCTION_CASES, ids=[c[0]["kind"] for c in INSTRUCTION_CASES])
def test_each_instruction_kind(instruction, good, bad):
    assert run("instructions", good, {"instructions": [instruction]}).passed
    assert not run("instructions", bad, {"instructions": [instruction]}).passed


def test_instructions_score_is_fraction_followed():
    r = run("instructions", "hello, the weather is lovely today and we are going to the beach.",
            {"instructions": [{"kind": "lowercase"}, {"kind": "no_commas"}]})
    assert not r.passed and r.score == 0.5 and "no_commas" in r.reason


@given(st.integers(0, 55), st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
def test_one_capital_letter_breaks_lowercase(at, letter):
    text = "the bread is baked in the oven until it is golden brown."
    assert run("instructions", text, {"instructions": [{"kind": "lowercase"}]}).passed
    assert not run("instructions", text[:at] + letter + text[at:], {"instructions": [{"kind": "lowercase"}]}).passed


def test_the_listed_ifeval_defects_are_fixed():
    def ok(text, **ins):
        return run("instructions", text, {"instructions": [ins]}).passed

    assert ok('He wrote: "Thank you for reading."', kind="ends_with", phrase="Thank you for reading.")  # closing quote
    assert ok("We meet at 5 P.M. today, e.g. in the hall.\nBring a pen.", kind="max_sentences", n=2)  # no split after P.M./e.g./newline
    assert not ok("<< >>\nText", kind="title_in_brackets") and ok("<<a < b>>\nText", kind="title_in_brackets")
    assert ok('```Json\n{"a": 1}\n```', kind="json_only")
    # max_words n is "no more than n"; IFEval's own "less than" is strict
    assert ok("one two three", kind="max_words", n=3)
    assert not ok("one two three", kind="length_constraints:number_words", relation="less than", num_words=3)
    assert ok("one two", kind="length_constraints:number_words", relation="less than", num_words=3)


def test_loose_follows_ifeval_loose_variants():
    text = 'Sure! Here is the JSON:\n{"colors": ["red", "blue", "yellow"]}'
    case = {"instructions": [{"kind": "json_only"}]}
    assert not run("instructions", text, case).passed
    assert run("instructions", text, case, loose=True).passed


def test_instructions_are_validated_at_load():
    from harness.evals.checks.instructions import build

    for bad, msg in [({"kind": "max_words"}, "takes ['n']"), ({"kind": "max_words", "n": True}, "whole number"),
                     ({"kind": "keywords:frequency", "keyword": "a"}, "missing argument(s) ['frequency', 'relation']"),
                     ({"kind": "bogus"}, "unknown instruction kind 'bogus'")]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            build(bad)


# ---- grounding ------------------------------------------------------------------------------
def test_grounded_fields_and_ngrams():
    src = {"text": "Invoice 4471 from ACME Corp, due 12 May."}
    assert run("grounded_fields", '{"vendor": "Acme Corp", "number": "4471"}', input=src, fields=["vendor", "number"]).passed
    r = run("grounded_fields", '{"vendor": "Globex", "number": "4471"}', input=src, fields=["vendor", "number"])
    assert not r.passed and r.fields == {"vendor": False, "number": True}
    assert run("grounded_ngrams", "Invoice 4471 from ACME Corp is due", input=src, n=2, min_overlap=0.6).passed
    assert not run("grounded_ngrams", "The weather is lovely in Paris today", input=src, n=2).passed
    assert run("grounded_ngrams", '{"summary": "ACME Corp invoice due"}', input=src, json_field="summary", n=1).passed


def test_loglik_choice_picks_highest():
    fn = build_check(get_check("loglik_choice"), {}, None)
    c = case({"answer": 1}, {"choices": ["a", "bb"]})
    assert fn.continuations(c) == ["a", "bb"]
    ll = [SimpleNamespace(logprob=-5.0), SimpleNamespace(logprob=-2.0)]
    assert fn(Sample(case=c, output=None, logliks=ll)).passed
    norm = build_check(get_check("loglik_choice"), {"normalize_length": True}, None)
    ll = [SimpleNamespace(logprob=-1.0), SimpleNamespace(logprob=-1.5)]
    assert norm(Sample(case=c, output=None, logliks=ll)).passed  # -1.5/2 > -1/1
    assert not fn(Sample(case=c, output=None, logliks=ll)).passed


def test_custom_check_by_dotted_path():
    info = get_check("tests.evals.custom_checks:shouty")
    assert info is not None
    assert build_check(info, {"min_bangs": 2}, None)(Sample(case=case(), output="hi!!")).passed
    with pytest.raises(ValueError, match="has no function 'missing'"):
        get_check("tests.evals.custom_checks:missing")
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_pkg.checks' .*put the file in the suite's folder"):
        get_check("no_such_pkg.checks:fn")


def test_custom_check_from_a_file_in_the_suite_folder(tmp_path):
    (tmp_path / "mine.py").write_text("from harness.evals import CheckResult\n\n"
                                      "def loud():\n    return lambda s: CheckResult(s.output.isupper())\n")
    info = get_check("./mine.py:loud", tmp_path)
    assert build_check(info, {}, tmp_path)(Sample(case=case(), output="HI")).passed
    (tmp_path / "broken.py").write_text("x = 1\nimport no_such_module\n")
    with pytest.raises(ValueError, match=r"broken.py:2: ModuleNotFoundError"):
        get_check("./broken.py:fn", tmp_path)
    with pytest.raises(ValueError, match="must live inside it"):
        get_check("../outside.py:fn", tmp_path / "sub")
