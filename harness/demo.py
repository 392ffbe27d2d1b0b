"""`make demo`: load the embedded base model and show a generation with its fingerprint."""

from __future__ import annotations

import time

from harness.console import console


def generation_demo(spec: str, prompt: str) -> None:
    from harness.models import GenerationConfig, HFBackend

    t0 = time.perf_counter()
    backend = HFBackend.from_spec(spec)
    load_s = time.perf_counter() - t0
    [completion] = backend.generate([[{"role": "user", "content": prompt}]], GenerationConfig(max_new_tokens=64))
    c = console()
    c.print(f"[bold]model[/bold]        {spec}  ({backend.path})")
    c.print(f"[bold]fingerprint[/bold]  {backend.fingerprint}")
    c.print(f"[bold]load[/bold]         {load_s:.1f} s")
    c.print(f"[bold]prompt[/bold]       {prompt}")
    print(completion.text)
    c.print(
        f"[dim]{completion.prompt_tokens} prompt + {completion.completion_tokens} completion tokens "
        f"in {completion.latency_s:.2f} s[/dim]"
    )
