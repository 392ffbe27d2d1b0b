"""The base of every config model a user writes (suites, cases, policies, run and training configs).

Pydantic's lax mode would read `learning_rate: true` as 1.0 and `lora.r: true` as 1, and accept
`.inf` and `.nan` for a float bounded only below. A `ConfigModel` keeps lax mode where YAML needs
it (PyYAML reads `1e-4` as text) but refuses true/false where a field takes no bool, and infinite
or NaN numbers anywhere.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def takes_bool(annotation: Any) -> bool:
    """Whether a field annotated `annotation` accepts a bool as itself."""
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(isinstance(v, bool) for v in typing.get_args(annotation))
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return any(takes_bool(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return takes_bool(typing.get_args(annotation)[0])
    return False


class ConfigModel(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            field = cls.model_fields.get(info.field_name or "")
            if field is not None and not takes_bool(field.annotation):
                raise ValueError(f"{str(value).lower()} is a yes/no value; this field takes "
                                 f"{_describe(field.annotation)}")
        return value


def _describe(annotation: Any) -> str:
    names = {int: "a whole number", float: "a number", str: "text", list: "a list", dict: "a mapping"}
    args = typing.get_args(annotation) or (annotation,)
    found = [names.get(typing.get_origin(a) or a) for a in args if a is not type(None)]
    return " or ".join(dict.fromkeys(x for x in found if x)) or "another type"
