"""The refusal judge: `classify(text)` says whether an answer refuses and which rule decided
(`judge.py`, the rules; `patterns.py`, the phrases they look for)."""

from harness.refusal.judge import Verdict, classify, is_refusal

__all__ = ["Verdict", "classify", "is_refusal"]
