"""Validated JSONL records to the datasets trl trains on.

Every shape becomes a conversational prompt/completion (or prompt/chosen/rejected) example, so
training renders text with the same chat template the evals use, and the loss covers only the
answer: a chat record's last assistant message is its completion, every earlier message its
prompt; a string prompt becomes one user message and a string answer one assistant message. The
completion keeps the template's end-of-turn token (`<|im_end|>` for SmolLM2) in the loss, or the
model never learns to stop. A base model without a chat template trains on plain strings
instead, with the tokenizer's EOS appended by trl.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError

TEXT_FIELDS = ("messages", "prompt", "completion", "chosen", "rejected")


def _as_messages(value, role: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": m["role"], "content": m["content"]} for m in value]


def to_example(data: dict, family: str, chat: bool) -> dict:
    """One trl example from one validated record (`harness.data.formats` shapes)."""
    if family == "dpo":
        keys = ("prompt", "chosen", "rejected")
        if chat:
            return {"prompt": _as_messages(data["prompt"], "user"),
                    "chosen": _as_messages(data["chosen"], "assistant"),
                    "rejected": _as_messages(data["rejected"], "assistant")}
        return {k: data[k] for k in keys}
    if "messages" in data:
        messages = _as_messages(data["messages"], "user")
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    if chat:
        return {"prompt": _as_messages(data["prompt"], "user"), "completion": _as_messages(data["completion"], "assistant")}
    return {"prompt": data["prompt"], "completion": data["completion"]}


def load_examples(path: str | Path, family: str, chat: bool, data_format=None) -> list[dict]:
    """The examples of a data file already checked by `load_train_config` (`data_format` applied)."""
    from harness.data.formats import read_records

    examples = []
    for rec in read_records(path, data_format=data_format):
        if rec.problems or rec.family != family:
            raise ConfigError(f"{path}:{rec.line}: the file changed since the config was validated: "
                              f"{'; '.join(rec.problems) or 'wrong record shape'}")
        if not chat and any(not isinstance(v, str) for k, v in rec.data.items() if k in TEXT_FIELDS):
            raise ConfigError(f"{path}:{rec.line}: the base model has no chat template, so records must be plain "
                              "prompt/completion (or prompt/chosen/rejected) strings")
        examples.append(to_example(rec.data, family, chat))
    return examples


def build_dataset(path: str | Path, family: str, chat: bool, data_format=None):
    from datasets import Dataset

    return Dataset.from_list(load_examples(path, family, chat, data_format))


def prompts_of(path: str | Path, family: str, n: int, data_format=None) -> list[list[dict]]:
    """The first `n` prompts of a dataset as chat messages (for the smoke test)."""
    out = []
    for ex in load_examples(path, family, chat=True, data_format=data_format)[:n]:
        out.append(ex["prompt"])
    return out


def longer_than(dataset, tokenizer, max_length: int) -> list[int]:
    """Token lengths of the examples longer than `max_length`: trl cuts them at the end, so
    their answers (and end-of-turn token) are lost and the model learns unfinished answers."""
    out = []
    for ex in dataset:
        if "completion" not in ex:
            continue  # DPO pairs: trl truncates the prompt side
        if isinstance(ex["prompt"], list):
            text = tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)
        else:
            text = ex["prompt"] + ex["completion"]
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > max_length:
            out.append(n)
    return out
