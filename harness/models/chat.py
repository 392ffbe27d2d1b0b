"""How a backend turns chat messages and continuations into tokens: the model's chat template
and tokenizer, shared by every backend so that a served model scores exactly the tokens the
in-process one does."""

from __future__ import annotations

from harness.errors import HarnessError
from harness.models.types import Messages


class ChatTokens:
    """Mixed into a backend that has a `tokenizer`."""

    tokenizer: object

    def render(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, messages: Messages) -> list[int]:
        return self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]

    def continuation_ids(self, continuation: str) -> list[int]:
        """A log-likelihood continuation's tokens (never empty)."""
        ids = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not ids:
            raise HarnessError(f"empty continuation for log-likelihood: {continuation!r}")
        return ids
