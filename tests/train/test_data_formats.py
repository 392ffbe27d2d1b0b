"""Training from a ShareGPT Parquet file: the same records as the harness's JSONL train the same adapter."""

from __future__ import annotations

from harness.train import train
from tests.data.test_tables import CHAT, write_parquet


def test_a_sharegpt_parquet_file_trains_like_its_jsonl(tiny_cfg, tmp_path):
    """The same records from ShareGPT Parquet and from the harness's JSONL give the same adapter."""
    from safetensors.torch import load_file

    rows = [{"conversations": [{"from": "human", "value": m["messages"][0]["content"]},
                               {"from": "gpt", "value": m["messages"][1]["content"]}]} for m in CHAT]
    parquet = write_parquet(tmp_path / "chat.parquet", rows)
    a = train(tiny_cfg("lora", name="jsonl", max_steps=2, save_steps=2), show_progress=False)
    b = train(tiny_cfg("lora", name="parquet", max_steps=2, save_steps=2, train_data=str(parquet), data_format="sharegpt"),
              show_progress=False)
    wa, wb = (load_file(str(r.output_dir / "adapter_model.safetensors")) for r in (a, b))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    assert b.manifest["config"]["data_format"] == "sharegpt"


def test_sharegpt_parquet_from_a_hub_dataset_trains_like_its_jsonl(tiny_cfg, tmp_path, monkeypatch):
    """`hf://datasets/...` (from huggingface_hub's cache, offline) trains the adapter the local records train."""
    from huggingface_hub import constants
    from safetensors.torch import load_file

    from tests.data.test_hub_data import build_dataset_cache

    rows = [{"conversations": [{"from": "human", "value": m["messages"][0]["content"]},
                               {"from": "gpt", "value": m["messages"][1]["content"]}]} for m in CHAT]
    cache = build_dataset_cache(tmp_path / "hub", {"train.parquet": write_parquet(tmp_path / "chat.parquet", rows)})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = train(tiny_cfg("lora", name="jsonl", max_steps=2, save_steps=2), show_progress=False)
    b = train(tiny_cfg("lora", name="hub", max_steps=2, save_steps=2, train_data="hf://datasets/tinyorg/tickets@v1/train.parquet",
                       data_format="sharegpt"), show_progress=False)
    wa, wb = (load_file(str(r.output_dir / "adapter_model.safetensors")) for r in (a, b))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
