"""The gate as tests: one item per rule result of the session's decision."""

from __future__ import annotations

import pytest

from harness.pytest_plugin.state import STATE


class GateRoot(pytest.Collector):
    """`gate`: one item per rule result of the decision (made before the first test runs)."""

    def collect(self):
        from harness.gates import SKIPPED
        from harness.gates.policy import TESTS

        state = self.config.stash[STATE]
        rules = {r.label(): (i, r) for i, r in enumerate(state.policy.rules)}
        seen: dict[str, int] = {}
        for rr in state.decision.rules:
            i, rule = rules.get(rr.rule, (None, None))
            name = gate_item_name(rr, rule, TESTS)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name += f"#{seen[name]}"
            line = state.rule_lines[i] if i is not None and i < len(state.rule_lines) else 0
            item = GateItem.from_parent(self, name=name, result=rr, path=state.policy_path, lineno=line)
            if rr.verdict == SKIPPED:  # a mark, so the report points at the item, not at this plugin
                item.add_marker(pytest.mark.skip(reason=rr.reason))
            yield item

    def reportinfo(self):
        return self.path, 0, "gate"


def gate_item_name(rr, rule, tests) -> str:
    """`general/*::max_drop[general/arithmetic]`, `ticket_triage/field_match::max_drop[difficulty=hard]`."""
    if rr.test == "required":
        return f"required[{rr.metric}]"
    pattern = rule.metric if rule is not None else rr.rule.split(" ", 1)[0]
    test = rr.test
    if test in ("-", "slice") and rule is not None:  # skipped: name it by the rule's own tests
        test = "+".join(t for t in tests if getattr(rule, t) not in (None, False))
    params = [p for p in (rr.metric if rr.metric != pattern else None, rr.slice) if p]
    return f"{pattern}::{test}" + (f"[{','.join(params)}]" if params else "")


class GateFailed(AssertionError):
    """A gate rule blocks promotion."""


class GateItem(pytest.Item):
    def __init__(self, *, result, lineno: int, **kw):
        super().__init__(**kw)
        self.result, self.lineno = result, lineno

    def runtest(self) -> None:
        r = self.result
        self.user_properties += [(k, v) for k, v in (("rule", r.rule), ("metric", r.metric), ("slice", r.slice),
                                                     ("verdict", r.verdict), ("baseline", r.baseline), ("candidate", r.candidate),
                                                     ("delta", r.delta), ("ci", r.ci), ("n", r.n)) if v is not None]
        if r.blocking:
            raise GateFailed(r.reason)

    def repr_failure(self, excinfo, style=None):
        if not isinstance(excinfo.value, GateFailed):
            return super().repr_failure(excinfo, style)
        r = self.result
        state = self.config.stash[STATE]
        def num(x) -> str:
            return "-" if x is None else f"{x:.3f}"

        lines = [f"{r.metric}{f' [{r.slice}]' if r.slice else ''} {r.test}: {r.verdict}: {r.reason}",
                 f"rule       {r.rule}" + (f"  ({r.note})" if r.note else ""),
                 f"baseline   {num(r.baseline)}   candidate {num(r.candidate)}"
                 + (f"   delta {r.delta:+.3f}" if r.delta is not None else "")
                 + (f" [95% CI {r.ci[0]:+.3f}, {r.ci[1]:+.3f}]" if r.ci else "")
                 + (f"   n={r.n}" if r.n else "") + (f"   p={r.p_value:.3g}" if r.p_value is not None else ""),
                 f"policy     {state.policy.name}; baseline {state.baseline_label}; candidate {state.out_dir}"]
        return "\n".join(lines)

    def reportinfo(self):
        return self.path, self.lineno, f"gate::{self.name}"
