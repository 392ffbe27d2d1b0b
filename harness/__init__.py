"""harness: an evaluation-first fine-tuning harness.

Every training run is wrapped in before/after evaluation, a paired statistical comparison,
gate rules, a registry record and gated promotion. Subpackages hold one stage each.
"""

__version__ = "0.1.0"
