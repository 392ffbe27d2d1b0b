"""Model commands: `harness models show`, `harness demo`."""

from __future__ import annotations

import argparse

from harness.commands import command, out_json, print_table


@command("models show", "Resolve a model spec and print its architecture, size, the dtype and device it runs in here, fingerprint and cache path.")
def cmd_models_show(p: argparse.ArgumentParser):
    p.add_argument("spec", help="alias (smollm2-135m-instruct), local folder or hub id")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(a):
        from harness.models import describe

        info = describe(a.spec)
        if a.json:
            return out_json(info)
        print_table(info)

    return run


@command("demo", "Smoke-test the install: load the embedded base model, print its fingerprint and one generation.")
def cmd_demo(p: argparse.ArgumentParser):
    p.add_argument("--model", default="smollm2-135m-instruct", help="model spec (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--prompt", default="In one sentence, why should a fine-tuned model be evaluated before it ships?", help="the prompt to generate from")

    def run(a):
        from harness.demo import generation_demo

        generation_demo(a.model, a.prompt)

    return run

