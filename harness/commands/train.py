"""Training command: `harness train CONFIG.yaml [--resume]`."""

from __future__ import annotations

import argparse
import sys

from harness.commands import command, out_json


@command("train", "Train an adapter (or full model) from a YAML config; checkpoints, smoke test and manifest included.")
def cmd_train(p: argparse.ArgumentParser):
    p.add_argument("config", help="training config YAML (fields: see README, Training)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the config's output_dir")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a summary")

    def run(a):
        from harness.train import load_train_config, train

        cfg = load_train_config(a.config)  # every config error before any model loads
        print(f"training {cfg.method} on {cfg.base_model} -> {cfg.output_dir}", file=sys.stderr)
        try:
            result = train(cfg, resume=a.resume)
        except KeyboardInterrupt:
            print(f"interrupted: continue with `harness train {a.config} --resume`", file=sys.stderr)
            raise
        if not result.manifest:  # a non-main process under `accelerate launch`
            return 0
        if a.json:
            out_json(result.manifest)
            return 0
        m, s = result.manifest, result.smoke
        losses = [h["loss"] for h in result.loss_history if "loss" in h]
        evals = [h["eval_loss"] for h in result.loss_history if "eval_loss" in h]
        print(f"steps {m['steps']}  wall {m['wall_time_s']:.1f}s", file=sys.stderr)
        if losses:
            print(f"train loss {losses[0]:.4f} -> {losses[-1]:.4f}", file=sys.stderr)
        if evals:
            print(f"validation loss {evals[0]:.4f} -> {evals[-1]:.4f}", file=sys.stderr)
        print(f"smoke test passed: max |logit diff| {s['max_logit_diff']:.3g}, {s['changed_generations']}/"
              f"{s['n_prompts']} greedy outputs changed, {s['n_modules']} modules", file=sys.stderr)
        print(result.output_dir)
        return 0

    return run
