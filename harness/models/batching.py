"""How many rows generate together, and which: batch caps and a cost model of padding against
decode steps (outputs never depend on the grouping, only the time does)."""

from __future__ import annotations

MAX_AUTO_BATCH = 32  # generate(): rows per batch
MAX_ENGINE_ROWS = 256  # engine: rows decoded together (a 135M model at 256 rows: ~2.5 GB of cache)


# Cost of generation on a CPU, in units of one prompt token's prefill (measured on 2 cores with
# SmolLM2-135M: prefill ~2.8 ms per padded token; a decode step ~0.1 s + ~6 ms per row + ~0.03 ms
# per row per token of context). On a GPU a step's fixed cost dominates: fewer, fuller batches win.
CPU_STEP_COSTS = (36.0, 2.0, 0.009)
GPU_STEP_COSTS = (2000.0, 0.5, 0.0)


def plan_batches(lengths: list[int], max_batch: int, new_tokens: int, on_gpu: bool = False) -> list[list[int]]:
    """Indices grouped into generation batches, longest first, splitting where padding costs more
    than the extra decode steps: one long prompt in a batch of short ones pads every row to its
    length. Groups are contiguous runs of the length-sorted order (dynamic programming over the
    split points); outputs do not depend on the grouping, only the time does."""
    step, row, row_ctx = GPU_STEP_COSTS if on_gpu else CPU_STEP_COSTS
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    sorted_len = [lengths[i] for i in order]

    def cost(start: int, end: int) -> float:  # one batch: order[start:end], padded to its longest
        n, width = end - start, sorted_len[start]
        return n * width + new_tokens * (step + n * (row + row_ctx * (width + new_tokens / 2)))

    best = [0.0] + [float("inf")] * len(order)  # best[k]: cheapest plan for the first k prompts
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(max(0, end - max_batch), end):
            c = best[start] + cost(start, end)
            if c < best[end]:
                best[end], cut[end] = c, start
    batches, end = [], len(order)
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


def length_batches(lengths: list[int], batch_size: int, equal_lengths: bool) -> list[list[int]]:
    """Indices grouped into batches, longest first; optionally only equal lengths together."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        if last is None or len(last) >= batch_size or (equal_lengths and lengths[last[0]] != lengths[i]):
            batches.append([i])
        else:
            last.append(i)
    return batches
