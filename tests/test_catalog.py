"""The one decorator registry behind commands, training methods and checks."""

import importlib

import pytest

from harness.catalog import Catalog


def test_a_taken_name_is_refused_naming_both_origins_and_the_same_function_is_no_conflict():
    cat: Catalog[int] = Catalog("widget")

    @cat.decorator("a", lambda fn: 1)
    def first():
        pass

    assert first.__name__ == "first" and cat["a"] == 1  # the decorator hands the function back
    cat.register("a", 2, first)  # the same function again (a module imported twice): replaced, no error
    assert cat["a"] == 2

    def second():
        pass

    with pytest.raises(ValueError) as e:
        cat.register("a", 3, second)
    msg = str(e.value)
    assert "widget 'a' is registered twice" in msg and "first" in msg and "second" in msg
    assert cat["a"] == 2  # the first registration stands


def test_the_three_registries_refuse_a_second_entry_under_a_builtin_name():
    from harness.commands import COMMANDS, command, load_all
    from harness.evals.checks.registry import REGISTRY, check, get_check
    from harness.train.methods import METHODS, method

    load_all()
    get_check("json_valid")  # the built-in checks registered
    assert {"eval", "run", "gate"} <= set(COMMANDS) and {"lora", "dpo"} <= set(METHODS) and "json_valid" in REGISTRY

    def impostor():
        pass

    for decorate in (command("eval", help="x"), method("lora", learning_rate=1e-4, help="x"), check("json_valid")):
        with pytest.raises(ValueError, match="registered twice"):
            decorate(impostor)
    # re-importing a module that registers (importlib.reload, a test's fresh import) is no conflict
    importlib.reload(importlib.import_module("harness.evals.checks.format"))
    assert REGISTRY["json_valid"].factory.__module__ == "harness.evals.checks.format"
