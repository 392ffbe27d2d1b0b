"""One reader for every file a user writes: YAML configs and JSON Lines records.

YAML is read with YAML 1.2 booleans (`ConfigLoader`: only true/false; `on:` stays a key).
Whatever bytes arrive, a reader returns data or raises `ConfigError` naming the file and, where
there is one, the line; never a traceback. The limits keep hostile or broken files from
exhausting the interpreter: a config file is at most `MAX_CONFIG_BYTES`, a JSONL line at most
`MAX_LINE_BYTES`, nesting at most `MAX_DEPTH` levels, a YAML document expands (aliases counted
as copies) to at most `MAX_NODES` values, an integer has at most `MAX_DIGITS` digits (Python's own
conversion limit). JSONL is split on "\\n" only, so U+2028, U+2029 and U+0085 inside a string are
text, not line breaks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

MAX_CONFIG_BYTES = 8 << 20
MAX_LINE_BYTES = 16 << 20
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_DIGITS = 4300
_LONG_INT = re.compile(r"[-+]?[0-9_]{%d,}" % (MAX_DIGITS + 1))


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only true/false are booleans. YAML 1.1 also
    reads on/off/yes/no (and y/n) as booleans, which turns the key `on:` of
    `checkpoint_selection` into `True` and a value `no` (Norway's code, say) into false."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def decode(data: bytes, where: str) -> str:
    """`data` as UTF-8 text; else an error with the line and column of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(f"{where}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {col}): save the file as UTF-8") from None


def read_text(path: str | Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """A user's text file, whole: UTF-8 and at most `limit` bytes."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise ConfigError(f"{p}: {size:,} bytes; a config file is at most {limit:,} bytes")
        data = p.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{p}: a folder, not a file") from None
    except FileNotFoundError:
        raise ConfigError(f"{p}: does not exist") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror or e})") from None
    return decode(data, str(p))


def _yaml_error(where: str, e: yaml.YAMLError) -> ConfigError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    line = f":{mark.line + 1}" if mark else ""
    return ConfigError(f"{where}{line}: not valid YAML ({getattr(e, 'problem', None) or e})")


def _check_yaml(text: str, where: str) -> None:
    """Walk the YAML events (PyYAML's parser is iterative, unlike its composer): depth, expanded
    size and integer lengths are checked before anything is built."""
    depth, anchors, stack = 0, {}, [[None, 0]]
    for ev in yaml.parse(text, Loader=ConfigLoader):
        at = f"{where}:{ev.start_mark.line + 1}"
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{at}: nested more than {MAX_DEPTH} levels deep")
            stack.append([ev.anchor, 0])
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            anchor, size = stack.pop()
            if anchor:
                anchors[anchor] = size + 1
            stack[-1][1] += size + 1
        elif isinstance(ev, yaml.ScalarEvent):
            if ev.style is None and len(ev.value) > MAX_DIGITS and _LONG_INT.fullmatch(ev.value):
                raise ConfigError(f"{at}: an integer of {len(ev.value):,} digits; at most {MAX_DIGITS} (quote it if it is text)")
            if ev.anchor:
                anchors[ev.anchor] = 1
            stack[-1][1] += 1
        elif isinstance(ev, yaml.AliasEvent):
            stack[-1][1] += anchors.get(ev.anchor, 1)
        else:
            continue
        if stack[0][1] + sum(s for _, s in stack[1:]) > MAX_NODES:
            raise ConfigError(f"{at}: expands to more than {MAX_NODES:,} values (aliases count as copies)")


def parse_yaml(text: str, where: str) -> Any:
    """One YAML document from `text` (None when empty), with the limits checked first."""
    try:
        _check_yaml(text, where)
        return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader: plain data only
    except yaml.YAMLError as e:
        raise _yaml_error(where, e) from None
    except (RecursionError, ValueError) as e:  # the event walk should have stopped these; never a traceback
        raise ConfigError(f"{where}: not a YAML document harness can read ({type(e).__name__}: {str(e)[:120]})") from None


def load_yaml(path: str | Path) -> Any:
    """A user's YAML file (None when empty)."""
    return parse_yaml(read_text(path), str(path))


def load_mapping(path: str | Path, what: str) -> dict:
    """A user's YAML file that must be a mapping (an empty file is an empty one)."""
    raw = load_yaml(path)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {what} is a mapping of fields (got a YAML {type(raw).__name__})")
    return raw


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON: write a number or null")


def _depth(value: Any) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            todo += [(x, d + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return deepest


def parse_json(text: str) -> tuple[Any, str | None]:
    """(value, None) or (None, problem) for one JSON text; strict JSON (no NaN or Infinity)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e.msg} at column {e.colno})"
    except RecursionError:
        return None, f"not valid JSON (nested more than {MAX_DEPTH} levels deep)"
    except ValueError as e:
        msg = str(e)
        if "integer string conversion" in msg:
            msg = f"an integer of more than {MAX_DIGITS} digits"
        return None, f"not valid JSON ({msg})"
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        return None, f"not valid JSON (nested more than {MAX_DEPTH} levels deep)"
    return value, None


def load_json(path: str | Path) -> Any:
    """A user's JSON file (a schema, say)."""
    value, problem = parse_json(read_text(path))
    if problem:
        raise ConfigError(f"{path}: {problem}")
    return value


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, str, Any, str | None]]:
    """(line number, text, value, problem) for every non-blank line of a JSON Lines file.

    A line that is not UTF-8, too long or not JSON comes with its problem (and value None), so a
    caller can report every bad line at once. Only "\\n" ends a line."""
    p = Path(path)
    try:
        f = p.open("rb")
    except IsADirectoryError:
        raise ConfigError(f"{p}: a folder, not a JSONL file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror or e})") from None
    with f:
        for n, raw in enumerate(f, 1):
            if len(raw) > MAX_LINE_BYTES:
                yield n, "", None, f"a line of {len(raw):,} bytes; at most {MAX_LINE_BYTES:,}"
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield n, raw.decode("utf-8", "replace").rstrip("\r\n"), None, \
                    f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}): save the file as UTF-8"
                continue
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            value, problem = parse_json(text)
            yield n, text, value, problem


# ---- paths a user wrote --------------------------------------------------------------------------
def _stat_ok(test, p) -> bool:
    try:
        return test(Path(p))
    except (OSError, ValueError):  # a name too long, a NUL byte, a loop: not a usable file either way
        return False


def is_file(p: str | Path) -> bool:
    """`Path.is_file`, but False (not an exception) for a name the OS cannot even look up."""
    return _stat_ok(Path.is_file, p)


def is_dir(p: str | Path) -> bool:
    return _stat_ok(Path.is_dir, p)


def exists(p: str | Path) -> bool:
    return _stat_ok(Path.exists, p)


def config_path(base: Path, p: Any) -> Any:
    """A path written in a config file, made absolute from the file's folder `base` (`~`
    expanded); anything else (a wrong type, an empty value: for validation to name) as it is.
    Every loader resolves its paths with this, so a config means the same files from any
    working directory."""
    if not isinstance(p, (str, Path)) or not str(p) or isinstance(p, str) and p.startswith("hf://"):
        return p  # a hub address (`hf://datasets/...`) is fetched by the loader that reads it
    q = expand(p)
    if q.is_absolute():
        return q
    try:
        return (base / q).resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop: the file checks will say it is unusable
        return base / q


def expand(p: str | Path) -> Path:
    """`~` expanded; a `~name` of an unknown user stays as written (and then does not exist)."""
    try:
        return Path(p).expanduser()
    except RuntimeError:
        return Path(p)
