"""Builders for crafted training files: clean synthetic records plus whatever a test plants."""

from __future__ import annotations

import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "suites/ticket_triage/schema.json"
SYSTEM = "You are a support ticket triage assistant. Reply with only a JSON object."
VOCAB = ("alpha amber anchor apple arch atlas badge bamboo banner basil beacon birch blossom bolt bramble breeze "
         "bridge bronze cactus canyon carbon cedar chalk cinder clover cobalt comet copper coral cotton crater "
         "crystal dahlia delta desert dune ember falcon fern fjord flint forest fossil garnet geyser glacier granite "
         "harbor hazel heron hollow iris island ivory jasper juniper kelp lagoon lantern lava lemon lichen lotus "
         "magnet maple marble meadow mesa meteor mint mirror moss nectar nickel oasis obsidian ocean olive onyx "
         "orchid otter pebble pepper pine plasma plum prairie quartz quill raven reef ridge river saffron sage "
         "sapphire shale sierra silver slate spruce summit tangle thistle thunder timber topaz tulip tundra "
         "velvet violet walnut willow zephyr").split()
CATEGORIES = ["billing", "bug", "account", "how_to", "feature_request"]
PRIORITIES = ["low", "medium", "high", "urgent"]
PRODUCTS = ["mobile_app", "web_dashboard", "api", "desktop_sync", "billing_portal"]


def triage(i: int, rng: random.Random, words: int = 14) -> dict:
    """A clean chat record: random words as the ticket (no near duplicates), a schema-valid answer."""
    ticket = " ".join(rng.choice(VOCAB) for _ in range(words))
    answer = {"category": CATEGORIES[i % 5], "priority": PRIORITIES[i % 4], "product": PRODUCTS[(i // 2) % 5],
              "summary": f"Customer reports {ticket.split()[0]} trouble."}
    return chat(f"Ticket: {ticket}", json.dumps(answer), system=SYSTEM)


def chat(user: str, assistant: str, system: str | None = None) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": msgs}


def clean_records(n: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [triage(i, rng) for i in range(n)]


def write_jsonl(path: Path, records: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def of(report, check: str, severity: str | None = None) -> list[dict]:
    return [f for f in report.findings if f["check"] == check and (severity is None or f["severity"] == severity)]
