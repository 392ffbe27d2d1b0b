"""Collection: a suite.yaml, its suite, one item per case (its checks are the assertions) and
the suite's `min_pass_rate` item; how a failing case is described."""

from __future__ import annotations

import json
import re

import pytest

from harness.pytest_plugin.state import STATE, meets


def marker_name(field: str, value) -> str:
    """`difficulty: hard` -> `difficulty_hard`; lowercased, anything but letters/digits becomes `_`."""
    return re.sub(r"\W+", "_", f"{field}_{value}").strip("_").lower()


class SuiteFile(pytest.File):
    """A suite.yaml: validated (every problem at once), then one collector named by the suite."""

    def collect(self):
        from harness.evals import load_suite

        suite = load_suite(self.path.parent)
        self.config.stash[STATE].add_suite(suite)
        yield SuiteNode.from_parent(self, name=suite.name, suite=suite)

    def repr_failure(self, excinfo, style=None):
        from harness.errors import HarnessError

        if isinstance(excinfo.value, HarnessError):
            return str(excinfo.value)  # a user error: the message names file, line, field and fix
        return super().repr_failure(excinfo, style)


class SuiteNode(pytest.Collector):
    def __init__(self, *, suite, **kw):
        super().__init__(**kw)
        self.suite = suite

    def collect(self):
        state = self.config.stash[STATE]
        lines = self.suite.case_lines
        for case in self.suite.cases:
            item = CaseItem.from_parent(self, name=case.id.replace("::", ":"), suite=self.suite, case=case,
                                        lineno=lines.get(case.id, 1))
            for f, v in case.slices.items():
                name = marker_name(f, v)
                state.register_marker(name, f"harness cases whose slice {f} is {v!r}")
                item.add_marker(name)
            yield item
        if self.suite.spec.min_pass_rate is not None:
            yield ThresholdItem.from_parent(self, name="min_pass_rate", suite=self.suite)

    def reportinfo(self):
        return self.suite.path / "suite.yaml", 0, self.suite.name


class CaseFailed(AssertionError):
    """A case failed one or more of its checks."""


class CheckErrored(Exception):
    """A check raised on this case: the check or the case is broken, not the model (reported as
    a pytest error, not a failure)."""


class CaseItem(pytest.Item):
    """One case; its assertions are the suite's checks that apply to it."""

    def __init__(self, *, suite, case, lineno: int, **kw):
        super().__init__(**kw)
        self.suite, self.case, self.lineno = suite, case, lineno

    def setup(self) -> None:
        rows = self.config.stash[STATE].rows.get((self.suite.name, self.case.id), [])
        errored = [r for r in rows if r.get("error")]
        if errored:
            raise CheckErrored("; ".join(f"check {r['metric']} ({r['check']}) raised {r['error']}" for r in errored))

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        rows = state.rows.get((self.suite.name, self.case.id), [])
        failed = [r for r in rows if not r["passed"]]
        self.user_properties += [("suite", self.suite.name), ("slices", json.dumps(self.case.slices)),
                                 ("checks_passed", f"{len(rows) - len(failed)}/{len(rows)}")]
        if not failed:
            return
        why = state.tolerated(self.suite)
        if why and not self.config.option.runxfail:
            pytest.xfail(f"{why}; failed {short_failures(failed)}")
        raise CaseFailed(short_failures(failed))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            return describe_case_failure(self)
        if isinstance(excinfo.value, CheckErrored):
            return f"{excinfo.value} (case {self.case.id}, {self.suite.cases_path}:{self.lineno}): fix the check or the case"
        if isinstance(excinfo.value, pytest.xfail.Exception):
            return str(excinfo.value)  # reported as xfail; a traceback would only cost time
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.suite.cases_path, self.lineno - 1, f"{self.suite.name}::{self.case.id}"


def short_failures(rows: list[dict]) -> str:
    return "; ".join(f"{r['metric']}" + (f" ({r['reason']})" if r["reason"] else "") for r in rows)


def _indent(text: str, limit: int = 2000) -> str:
    text = text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit} more characters)"
    return "\n".join("    " + line for line in (text.splitlines() or [""]))


def describe_case_failure(item: CaseItem) -> str:
    """The first line is the summary (JUnit message, short test summary); then prompt, output, checks."""
    state = item.config.stash[STATE]
    rows = state.rows.get((item.suite.name, item.case.id), [])
    failed = [r for r in rows if not r["passed"]]
    out = state.outputs.get((item.suite.name, item.case.id), {})
    lines = [f"{len(failed)} of {len(rows)} checks failed: {short_failures(failed)}",
             f"case {item.case.id} ({item.suite.cases_path}:{item.lineno})"
             + (f"  slices: {', '.join(f'{k}={v}' for k, v in item.case.slices.items())}" if item.case.slices else ""),
             "prompt:"]
    for m in item.suite.messages(item.case):
        one_line = "\n" not in m["content"] and len(m["content"]) < 200
        lines += [f"  {m['role']}: {m['content']}"] if one_line else [f"  {m['role']}:", _indent(m["content"])]
    if out.get("output") is not None:
        lines += [f"output ({out.get('completion_tokens')} tokens, finish: {out.get('finish_reason')}):", _indent(out["output"])]
    else:
        lines.append("output: none (scored by log-likelihood of the choices)")
    for metric, lps in (out.get("logliks") or {}).items():
        lines.append(f"  {metric} log-probabilities: {', '.join(f'{lp:.2f}' for lp in lps)}")
    lines.append("checks:")
    for r in rows:
        fields = ", ".join(f"{f} {'ok' if ok else 'wrong'}" for f, ok in (r.get("fields") or {}).items())
        lines.append(f"  {'PASS' if r['passed'] else 'FAIL'} {r['metric']}" + (f": {r['reason']}" if r["reason"] else "")
                     + (f" [{fields}]" if fields else ""))
    t = item.suite.spec.min_pass_rate
    if t is not None and item.suite.name in state.rates:
        rate, n, _ = state.rates[item.suite.name]
        lines.append(f"suite {item.suite.name}: pass rate {rate:.3f} over {n} cases "
                     + (f">= min_pass_rate {t:g} (shown as a failure by --runxfail)" if state.tolerated(item.suite)
                        else f"< min_pass_rate {t:g}, so its failing cases fail"))
    return "\n".join(lines)


class ThresholdFailed(AssertionError):
    """A suite's pass rate is below its min_pass_rate."""


class ThresholdItem(pytest.Item):
    """`<suite>::min_pass_rate`: the suite's verdict over the selected cases."""

    def __init__(self, *, suite, **kw):
        super().__init__(**kw)
        self.suite = suite

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        rate, n, failed = state.rates.get(self.suite.name, (1.0, 0, []))
        t = self.suite.spec.min_pass_rate
        self.user_properties += [("pass_rate", f"{rate:.4f}"), ("n", n), ("min_pass_rate", t)]
        if not meets(rate, t):
            shown = ", ".join(failed[:20]) + (f", … {len(failed) - 20} more" if len(failed) > 20 else "")
            raise ThresholdFailed(f"{self.suite.name}: pass rate {rate:.3f} ({n - len(failed)}/{n}) < min_pass_rate {t:g}; "
                                  f"failed cases: {shown}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ThresholdFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.suite.path / "suite.yaml", 0, f"{self.suite.name}::min_pass_rate"
