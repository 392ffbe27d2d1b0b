"""Training: one validated config, one plain function per method family (SFT-style through trl's
SFTTrainer with a PEFT config; DPO through trl's DPOTrainer), the adapter-effect smoke test,
checkpoints with resume, and a manifest beside every artifact.

Importing this package is cheap: trl, peft and transformers load when `train` runs.
"""

from harness.train.config import LoraSettings, TrainConfig, load_train_config
from harness.train.methods import METHODS, Method, method
from harness.train.run import TrainResult, checkpoints_of, train
from harness.train.smoke import AdapterNoEffect, smoke_test

__all__ = [
    "METHODS",
    "AdapterNoEffect",
    "LoraSettings",
    "Method",
    "TrainConfig",
    "TrainResult",
    "checkpoints_of",
    "load_train_config",
    "method",
    "smoke_test",
    "train",
]
