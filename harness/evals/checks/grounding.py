"""Source faithfulness: extracted values and summaries must say what the source says.

Values are compared as values, not as substrings:
- numbers by value, whatever their writing: thousands separators (`1,250.00`, `1.250,00`,
  `1 250,00`, `1'250.00`), decimals, currency symbols and codes (`€12.50` = `12.50 EUR` = 12.5);
  a number inside a longer one is not grounded (`250.00` is not in `1,250.00`);
- dates by day: ISO (`2024-03-15`), written (`15 March 2024`, `March 15, 2024`, `15th of March
  2024`) and numeric (`15.03.2024`; `03/15/2024`; an ambiguous `04/05/2024` may be either);
- text by whole words, case- and diacritics-insensitive (`Zoe Muller` = `Zoë Müller`), so
  `Anna's` is not grounded in `Joanna's`.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from decimal import Decimal

from harness.evals.checks.registry import CheckResult, Sample, check, reads
from harness.evals.checks.text import CURRENCY, WRITTEN_NUMBER, number_readings, parse_json, value_readings, words, written_numbers


def _source(sample: Sample, source_field: str) -> str:
    inp = sample.case.input
    if isinstance(inp, dict):
        if source_field not in inp:
            raise KeyError(f"case {sample.case.id}: input has no field {source_field!r} (source_field)")
        return str(inp[source_field])
    return str(inp)


# ---- normalised pieces of a text -----------------------------------------------------------------
def fold(text: str) -> str:
    """Casefolded, without diacritics (NFKD, combining marks dropped)."""
    s = unicodedata.normalize("NFKD", str(text).casefold())
    return "".join(c for c in s if not unicodedata.combining(c)).replace("ß", "ss")


def tokens(text: str) -> list[str]:
    """Words and digit runs, folded; apostrophes split (`Joanna's` -> joanna, s)."""
    return re.findall(r"[^\W_]+", fold(text))


def _units(text: str) -> list[str]:
    """Tokens for whole-value matching: a written number (`1,250.00`) is one unit, so a run of
    units never starts or ends inside a number; separators are dropped (`1,250.00` -> 125000)."""
    out, pos, t = [], 0, str(text)
    for m in WRITTEN_NUMBER.finditer(t):
        out += tokens(t[pos : m.start()])
        out.append(re.sub(r"\D", "", m.group()))
        pos = m.end()
    return out + tokens(t[pos:])


# currency codes and the symbols written for them
_CURRENCY_SIGNS = {"EUR": "€", "GBP": "£", "USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "MXN": "$", "JPY": "¥", "CNY": "¥",
                   "INR": "₹", "KRW": "₩", "RUB": "₽", "CHF": "fr"}

_MONTHS = {m: i + 1 for i, names in enumerate([
    "january jan janvier janv januar jänner enero ene gennaio gen", "february feb février fevrier févr fevr februar febrero febbraio",
    "march mar mars märz maerz marzo", "april apr avril abril aprile", "may mai mayo maggio mag", "june jun juin juni junio giugno giu",
    "july jul juillet juil juli julio luglio lug", "august aug août aout agosto ago", "september sep sept septembre septiembre settembre set",
    "october oct octobre oktober okt octubre ottobre ott", "november nov novembre noviembre", "december dec décembre decembre déc dezember dez diciembre dic dicembre",
]) for m in names.split()}
_MON = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
_DATE_FORMS = [
    (re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)"), "ymd"),
    (re.compile(rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th|er|º)?\.?\s+(?:of\s+|de\s+)?({_MON})\.?,?\s+(?:de\s+)?(\d{{4}})(?!\d)", re.I), "dMy"),
    (re.compile(rf"\b({_MON})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\d)", re.I), "Mdy"),
    (re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?!\d)"), "dmy"),
    (re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)"), "either"),
]


def _date(y, m, d) -> _dt.date | None:
    try:
        return _dt.date(int(y), int(m), int(d))
    except ValueError:
        return None


def dates(text: str) -> list[tuple[tuple[int, int], set[_dt.date]]]:
    """Every date written in `text`: (span, the days it can mean)."""
    out = []
    for rx, form in _DATE_FORMS:
        for m in rx.finditer(str(text)):
            a, b, c = m.groups()
            if form == "ymd":
                days = {_date(a, b, c)}
            elif form == "dMy":
                days = {_date(c, _MONTHS[fold(b).rstrip(".")] if fold(b) in _MONTHS else 0, a)}
            elif form == "Mdy":
                days = {_date(c, _MONTHS.get(fold(a), 0), b)}
            elif form == "dmy":
                days = {_date(c, b, a)}
            else:  # 04/05/2024: day/month or month/day
                days = {_date(c, b, a), _date(c, a, b)}
            days.discard(None)
            if days:
                out.append((m.span(), days))
    return out


def _contains(seq: list[str], sub: list[str]) -> bool:
    k = len(sub)
    return bool(k) and any(seq[i : i + k] == sub for i in range(len(seq) - k + 1))


class Source:
    """A source text's numbers, dates and words, for whole-value lookups."""

    def __init__(self, text: str):
        self.text = text
        self.dates = [days for _, days in dates(text)]
        self.numbers = written_numbers(text)
        self.tokens = tokens(text)
        self.units = _units(text)

    def has_run(self, value: str) -> bool:
        """`value`'s words in order (`Zoe Muller`), or written with other separators: the same
        characters as a run of whole units (`Smith & Partners LLC` in `Smith & Partners, L.L.C.`,
        `770213` in `77-0213`), never part of a word or number."""
        want, units = _units(value), self.units
        if _contains(units, want):
            return True
        compact = "".join(want)
        for i in range(len(units)):
            run = ""
            for u in units[i:]:
                run += u
                if run == compact:
                    return True
                if not compact.startswith(run):
                    break
        return False

    def has_number(self, values: set[Decimal]) -> bool:
        return any(values & n for n in self.numbers)

    def has_date(self, days: set[_dt.date]) -> bool:
        return any(days & d for d in self.dates)

    def grounded(self, value) -> tuple[bool, str]:
        """Whether one extracted value is in the source, and how it was compared."""
        if isinstance(value, bool) or value is None:
            return False, "no value"
        if isinstance(value, (int, float)):  # a JSON number is its value: 1.249 is not 1249
            return self.has_number(value_readings(value)), "number"
        text = str(value).strip()
        ds = dates(text)
        if len(ds) == 1 and ds[0][0] == (0, len(text)):
            return self.has_date(ds[0][1]), "date"
        code = text.upper()
        if code in _CURRENCY_SIGNS:  # "EUR" for a source that writes €
            sign = _CURRENCY_SIGNS[code]
            return bool(re.search(rf"\b{code}\b", self.text, re.I)) or (sign != "fr" and sign in self.text), "currency"
        readings = value_readings(text)
        if readings:
            if self.has_number(readings):
                return True, "number"
            if not re.fullmatch(r"\d+", CURRENCY.sub(" ", text).strip()):  # an amount with decimals or separators is a number or nothing
                return False, "number"
        return self.has_run(text), "text"


@check("grounded_fields")
def grounded_fields(fields: list[str], source_field: str = "text", allow_fence: bool = True):
    """Every extracted value of `fields` in the JSON output is in the source text as a whole value:
    numbers by value (separators, decimals, currency), dates by day (ISO or written), text by
    whole words ignoring case and diacritics. A list passes when each element does."""

    def score(sample: Sample) -> CheckResult:
        value, err = parse_json(sample.output or "", allow_fence)
        if err or not isinstance(value, dict):
            return CheckResult(False, reason=err or "output is not a JSON object")
        src = Source(_source(sample, source_field))
        results, why = {}, []
        for f in fields:
            v = value.get(f)
            vals = [x for x in (v if isinstance(v, list) else [v]) if x != ""]
            checks = [(x, *src.grounded(x)) for x in vals]
            results[f] = v is not None and bool(checks) and all(ok for _, ok, _ in checks)
            why += [f"{f}={x!r} ({how} not in source)" for x, ok, how in checks if not ok] or ([f"{f} missing"] if not results[f] else [])
        return CheckResult(all(results.values()), sum(results.values()) / len(fields), "; ".join(why), results)

    return reads(score, input=[source_field])


@check("grounded_ngrams")
def grounded_ngrams(source_field: str = "text", json_field: str | None = None, n: int = 2, min_overlap: float = 0.5):
    """At least `min_overlap` of the output's word n-grams occur in the source (a measure of
    overlap, not of faithfulness: see `faithful`); with `json_field`, the text is that field of a
    JSON output."""

    def grams(text: str) -> list[tuple[str, ...]]:
        w = [x.lower() for x in words(text)]
        return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)] or [tuple(w)]

    def score(sample: Sample) -> CheckResult:
        text = _field_text(sample, json_field)
        if text is None:
            return CheckResult(False, 0.0, reason=f"no string field {json_field!r} in a JSON output")
        out = grams(text)
        if not out or out == [()]:
            return CheckResult(False, 0.0, reason="empty output")
        src = set(grams(_source(sample, source_field)))
        frac = sum(g in src for g in out) / len(out)
        return CheckResult(frac >= min_overlap, frac, "" if frac >= min_overlap else f"{frac:.0%} of {n}-grams in source")

    return reads(score, input=[source_field])


def _field_text(sample: Sample, json_field: str | None) -> str | None:
    text = sample.output or ""
    if not json_field:
        return text
    value, err = parse_json(text)
    if err or not isinstance(value, dict) or not isinstance(value.get(json_field), str):
        return None
    return value[json_field]


# ---- summary faithfulness ------------------------------------------------------------------------
# Polarity: a statement and its denial share their content words; these words make the denial.
_NEGATION = frozenset(
    "not no never none nothing nobody neither nor cannot cant without unable stopped stop stops stopping off "
    "doesnt dont didnt isnt arent wasnt werent wont wouldnt couldnt shouldnt hasnt havent hadnt aint".split())
_STOP = frozenset(
    "a an the and or but if then so of to in on at by for from with as is are was were be been being it its this that these "
    "those there here their they them he she his her we our you your i me my us has have had do does did will would can "
    "could should may might must shall also just still yet very more most some any all each every about into over after "
    "before since until while when where which who whom what why how than too again only own same such other"
    # the words a summary reports with, not facts it reports
    " customer customers user users client clients team reports reported report says said asks asked requests requested "
    "wants mentions mentioned notes noted explains explained writes claims states describes ticket issue problem".split())


def _content_words(text: str) -> list[str]:
    return [w for w in tokens(text.replace("n't", "nt").replace("n’t", "nt")) if w not in _STOP and not w.isdigit() and len(w) > 1]


def _stem(w: str) -> str:
    for suf in ("ing", "ed", "es", "s", "e"):
        if len(w) - len(suf) >= 3 and w.endswith(suf):
            return w[: -len(suf)]
    return w


def _negated(ws: list[str]) -> bool:
    return any(w in _NEGATION for w in ws)


# Negators that come before the verb they deny ("did not fix", "stopped arriving", "has not been processed").
_VERB_NEGATORS = frozenset("not never cannot cant unable stopped doesnt dont didnt isnt arent wasnt werent wont "
                           "wouldnt couldnt hasnt havent hadnt".split())


def _scoped(text: str) -> dict[str, list[bool]]:
    """For each word stem of `text`: per occurrence, whether a negator governs it in its clause (the
    word right after "not", "never", "stopped", "no longer", ..., or right before "no")."""
    out: dict[str, list[bool]] = {}
    for clause in _SENT.split(text):
        ws = [w for w in tokens(clause.replace("n't", "nt").replace("n’t", "nt")) if w not in _STOP or w in _NEGATION]
        for i, w in enumerate(ws):
            if w in _NEGATION or len(w) < 3:
                continue
            # the word the negator governs: the next one after it, auxiliaries skipped ("has not been processed")
            before, after = ws[max(0, i - 2) : i], ws[i + 1 : i + 2]
            neg = (before[-1:] and before[-1] in _VERB_NEGATORS) or before == ["no", "longer"] \
                or after in (["no"], ["nothing"], ["none"])  # "changed no configuration"
            out.setdefault(_stem(w), []).append(neg)
    return out


_SENT = re.compile(r"(?<=[.!?;:])\s+|\n+|[()]|,?\s+(?:but|however|although|though|while|whereas)\s+|,\s+and\s+")
_CODE = re.compile(r"(?<![\w.-])[\w-]*\d[\w.-]*(?<![.-])")  # numbers, versions, model and room codes: 3.4.0, E119, DW-450
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][\w'’-]*[a-z][\w'’-]*|[A-Z]{2,}[\w-]*)")


def faithfulness_problems(summary: str, source: str, min_support: float = 0.4) -> list[str]:
    """What in `summary` the source does not support: numbers, dates, names, flipped negation,
    and too few of its content words (below `min_support`)."""
    src = Source(source)
    return [*_unsupported_figures(summary, src), *_unsupported_names(summary, src), *_flipped_negation(summary, source),
            *_low_support(summary, src, min_support)]


def _unsupported_figures(summary: str, src: Source) -> list[str]:
    """Dates, numbers, versions and codes of `summary` the source does not have."""
    problems, taken = [], []
    for span, days in dates(summary):
        taken.append(span)
        if not src.has_date(days):
            problems.append(f"date {summary[span[0]:span[1]]!r} not in source")
    for m in WRITTEN_NUMBER.finditer(summary):  # written numbers first, whole: "$3,960.00" is one number
        if any(a <= m.start() < b for a, b in taken):
            continue
        taken.append(m.span())
        if not src.has_number(number_readings(m.group())):
            problems.append(f"number {m.group()!r} not in source")
    for m in _CODE.finditer(summary):  # then versions and codes: 3.4.0, E119, DW-450, 503s
        if any(a <= m.start() < b or m.start() <= a < m.end() for a, b in taken):
            continue
        code = re.sub(r"(?<=\d)'?s$", "", m.group())
        if WRITTEN_NUMBER.fullmatch(code):
            if not src.has_number(number_readings(code)):
                problems.append(f"number {code!r} not in source")
        elif not src.has_run(code):
            problems.append(f"{code!r} not in source")
    return problems


def _unsupported_names(summary: str, src: Source) -> list[str]:
    """Capitalised names (not a sentence's first word) whose words the source lacks."""
    src_tokens = set(src.tokens)
    problems = []
    for sent in _SENT.split(summary):
        for m in _NAME.finditer(sent):
            if m.start() == 0:
                continue  # a sentence's first word is capitalised anyway
            name = tokens(m.group())
            if name and not all(t in src_tokens for t in name):
                problems.append(f"name {m.group()!r} not in source")
    return problems


def _flipped_negation(summary: str, source: str) -> list[str]:
    """Statements that affirm what the source denies."""
    problems = []
    src_sents = [(_content_words(s), s) for s in _SENT.split(source) if s.strip()]
    for sent in _SENT.split(summary):
        ws = _content_words(sent)
        stems = {_stem(w) for w in ws if w not in _NEGATION}
        if not stems:
            continue
        best, overlap = None, 1  # a statement is matched to the source clause sharing most (>= 2) of its words
        for sws, _ in src_sents:
            k = len({x for x in stems & {_stem(w) for w in sws if w not in _NEGATION} if len(x) >= 4})
            if k > overlap:
                best, overlap = sws, k
        # only the dangerous direction: a summary that affirms what the source denies ("delivered fine" for
        # "stopped arriving"); a summary stating a failure the source describes positively is usually right
        if best is not None and overlap >= 3 and overlap >= 0.6 * len(stems) and _negated(best) and not _negated(ws):
            problems.append(f"affirms what the source denies: {sent.strip()!r}")
    # the same word denied on one side and not the other ("did not fix" / "fixed"), where each says it once
    said, src_said = _scoped(summary), _scoped(source)
    for stem, negs in said.items():
        theirs = src_said.get(stem, [])
        if len(negs) == 1 and len(theirs) == 1 and theirs[0] and not negs[0]:
            problems.append(f"affirms {stem!r}, which the source denies")
    return problems


def _low_support(summary: str, src: Source, min_support: float) -> list[str]:
    """Too few of the summary's content words in the source."""
    ws = [_stem(w) for w in _content_words(summary) if w not in _NEGATION]
    if not ws:
        return []
    src_stems = {_stem(w) for w in src.tokens}
    support = sum(w in src_stems for w in ws) / len(ws)
    return [f"{support:.0%} of its content words are in the source (< {min_support:.0%})"] if support < min_support else []


@check("faithful")
def faithful(source_field: str = "text", json_field: str | None = None, min_support: float = 0.4):
    """The output (or its `json_field`) says nothing the source does not: every number and date is
    in the source (by value), every name (a capitalised word inside a sentence) is, no statement
    flips the polarity of the source sentence it matches ("delivered fine" for "stopped
    arriving"), and at least `min_support` of its content words occur in the source."""

    def score(sample: Sample) -> CheckResult:
        text = _field_text(sample, json_field)
        if text is None:
            return CheckResult(False, 0.0, reason=f"no string field {json_field!r} in a JSON output")
        if not text.strip():
            return CheckResult(False, 0.0, reason="empty output")
        problems = faithfulness_problems(text, _source(sample, source_field), min_support)
        return CheckResult(not problems, reason="; ".join(problems))

    return reads(score, input=[source_field])
