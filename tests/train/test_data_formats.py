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
