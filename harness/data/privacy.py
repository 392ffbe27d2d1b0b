"""PII and secrets in training records, found by the detectors in `harness.pii`.

Real-looking values block training (a fine-tuned model can repeat them verbatim); documentation
placeholders (example.com addresses, 555-01xx phones, published test cards) are only noted.
Reports show masked values, never the data itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from harness.data.formats import Record
from harness.data.report import finding
from harness.pii import find_pii, is_placeholder, mask


def check_pii(records: Sequence[Record], loc: Callable[[Record], str]) -> tuple[list[dict], dict]:
    findings, kinds, placeholders = [], Counter(), []
    for r in records:
        found = [f for t in r.texts() for f in find_pii(t)]
        real = [f for f in found if not is_placeholder(f)]
        if len(real) < len(found):
            placeholders.append(r)
        if real:
            kinds.update(f.kind for f in real)
            shown = ", ".join(f"{f.kind} {mask(f.text)}" for f in real[:4]) + (f" +{len(real) - 4} more" if len(real) > 4 else "")
            findings.append(finding(
                "pii", "error", f"personal data or secret: {shown}: remove or replace it with a placeholder (e.g. name@example.com)",
                [loc(r)], kinds=sorted({f.kind for f in real}), values=[mask(f.text) for f in real],
            ))
    if placeholders:
        findings.append(finding(
            "pii", "info", f"{len(placeholders)} records hold placeholder values (example domains, fictional phones, test cards)",
            [loc(r) for r in placeholders],
        ))
    return findings, {"pii": len(findings) - bool(placeholders), "pii_kinds": dict(kinds), "pii_placeholders": len(placeholders)}
