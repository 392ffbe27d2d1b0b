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


def _types_in(annotation) -> list:
    """The types an annotation names, two levels deep: `Rule`, `list[Rule]`, `Rule | None`."""
    outer = typing.get_args(annotation) or (annotation,)
    return [t for a in outer for t in (typing.get_args(a) or (a,))]


def _model_at(model, loc) -> type[BaseModel] | None:
    """The config model that holds the field at `loc` (list indexes and dict keys skipped)."""
    for part in loc:
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            return None
        field = model.model_fields.get(str(part)) if not isinstance(part, int) else None
        if field is None:
            continue  # a list index, or a mapping's key: the model stays the element's
        model = next((t for t in _types_in(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)), None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def field_problems(where: str, error, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem of a pydantic ValidationError: `where: field 'a.b': what (the fix)`.

    An unknown key names the closest known one of its level; a missing one says what it is for."""
    import difflib

    out = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        holder = _model_at(model, err["loc"][:-1]) if model and err["loc"] else None
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(err["loc"][-1]), list(holder.model_fields), n=1) if holder else []
            msg = f"unknown key{f' (did you mean {close[0]!r}?)' if close else ''}: remove it or fix its spelling"
        elif err["type"] == "missing":
            field = holder.model_fields.get(str(err["loc"][-1])) if holder else None
            msg = f"missing: add it{f' ({field.description})' if field and field.description else ''}"
        out.append(f"{where}: field '{loc}': {msg}")
    return out
