"""A backend that evaluates through an OpenAI-compatible HTTP server (vLLM, SGLang, ...).

Generation goes through `/v1/chat/completions` (temperature 0, `max_tokens`, `stop`, a fixed
seed); log-likelihood through `/v1/completions` with the context and continuation sent as token
ids (the same tokens the local backend scores) and `echo` + `logprobs`, so every token of the
prompt comes back with its log-probability. A server that does not return them (llama.cpp's
server, for one) would score every multiple-choice case at chance without an error; the first
log-likelihood request probes for them and refuses such a server by name.

The harness cannot hash remote weights. The base is declared by its local spec (whose
fingerprint the harness computes, and whose tokenizer renders the chat and counts tokens) and by
the name the server serves it under; `/v1/models` must list that name. An adapter is the store
hash of the folder the server was given, served under `a<hash[:12]>` (what `harness export
--format vllm` names it): listed by the server, or loaded into it at run time where it allows
(`/v1/load_lora_adapter`, vLLM with `VLLM_ALLOW_RUNTIME_LORA_UPDATING`).

Requests run `concurrency` at a time; a 429 or 5xx answer is retried with exponential backoff;
a refused connection, a timeout or an unknown model name is a `ServerError` that says which.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.models.chat import ChatTokens
from harness.models.types import Completion, GenerationConfig, LoglikResult, Messages

# Prompt log-probability requests in flight at once. vLLM 0.32 on a CPU with --enable-lora fails
# (its engine dies: an einsum shape error in the LoRA logits path) when two such requests share a
# batch, so by default they go one at a time; raise it for a GPU server.
LOGLIK_CONCURRENCY = 1
SERVED_METHODS = ("lora", "dpo")  # LoRA adapters on the unquantised base: what a server serves as they were gated


class ServerError(HarnessError):
    """The server could not be reached, or answered what the harness cannot use."""


def served_adapter_name(adapter_hash: str) -> str:
    """The name an adapter is served under: `a` and the first 12 characters of its store hash."""
    return f"a{adapter_hash[:12]}"


def _session(retries: int, pool: int):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    s = requests.Session()
    # read=False: a read timeout is raised as itself (a Timeout), not as a connection error
    retry = Retry(total=retries, connect=0, read=False, status=retries, backoff_factor=0.5,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None, raise_on_status=False)
    s.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=pool))
    s.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=pool))
    return s


@dataclass
class OpenAIBackend(ChatTokens):
    """The base (and adapters) served by one OpenAI-compatible server."""

    url: str  # http://host:port, without /v1
    served_model: str
    fingerprint: str
    spec: str
    tokenizer: object
    dtype: str = "unknown"  # as the server was started (declared: the API does not say)
    server_engine: str = "openai"  # "vllm" where the server says so
    server_version: str = ""
    concurrency: int = 8
    loglik_concurrency: int = 1  # see LOGLIK_CONCURRENCY
    timeout_s: float = 300.0
    retries: int = 4
    path: Path | None = None
    adapters: dict[str, Path] = field(default_factory=dict)
    active_adapter: str | None = None
    device: str = "server"
    engine: str = "openai"
    quantize: str | None = None
    _adapter_hashes: dict[str, str] = field(default_factory=dict, repr=False)
    _http: object = field(default=None, repr=False)
    _probed: bool = field(default=False, repr=False)

    # ---- connecting ----------------------------------------------------------------------
    @classmethod
    def connect(cls, url: str, served_model: str, spec: str, *, dtype: str = "unknown", concurrency: int = 8,
                loglik_concurrency: int = LOGLIK_CONCURRENCY, timeout_s: float = 300.0, retries: int = 4) -> OpenAIBackend:
        """A backend for `served_model` on the server at `url`, whose weights are those of the local
        model `spec` (fingerprinted here). Checks that the server serves that name."""
        from harness.models.fingerprint import model_fingerprint
        from harness.models.loading import load_tokenizer
        from harness.models.specs import resolve

        resolved = resolve(spec)
        be = cls(url=url.rstrip("/").removesuffix("/v1"), served_model=served_model, fingerprint=model_fingerprint(resolved.path),
                 spec=spec, tokenizer=load_tokenizer(resolved.path), dtype=dtype, concurrency=concurrency,
                 loglik_concurrency=loglik_concurrency, timeout_s=timeout_s, retries=retries, path=resolved.path)
        served = be.served_models()
        if served_model not in served:
            raise ServerError(f"{be.url} does not serve a model named {served_model!r} (it serves: {', '.join(served) or 'none'}): "
                              "set eval.server.model to one of those, or start the server with --served-model-name")
        be.server_engine, be.server_version = be._engine_and_version(served[served_model])
        return be

    def _request(self, method: str, path: str, payload: dict | None = None, text: bool = False) -> dict | str:
        import requests

        if self._http is None:
            self._http = _session(self.retries, max(self.concurrency, self.loglik_concurrency, 10))
        where = f"{self.url}{path}"
        try:
            r = self._http.request(method, where, json=payload, timeout=(10, self.timeout_s))
        except requests.ConnectionError as e:
            why = "connection refused" if "refused" in str(e).lower() else f"connection failed ({type(e).__name__})"
            raise ServerError(f"cannot reach the model server at {self.url} ({why}): is it running, and is the address "
                              "right (eval.server.url)?") from None
        except requests.Timeout:
            raise ServerError(f"{where}: no answer within {self.timeout_s:g} s (eval.server.timeout_s)") from None
        if r.status_code == 404 and payload and "model" in payload:
            raise ServerError(f"{where}: the server does not know model {payload['model']!r} ({_message(r)})")
        if r.status_code >= 400:
            raise ServerError(f"{where}: HTTP {r.status_code}: {_message(r)}")
        if text:
            return r.text
        try:
            return r.json()
        except ValueError:
            raise ServerError(f"{where}: the answer is not JSON ({r.text[:120]!r})") from None

    def served_models(self) -> dict[str, dict]:
        """The models the server lists (`/v1/models`), by id."""
        return {m.get("id"): m for m in self._request("GET", "/v1/models").get("data", []) if isinstance(m, dict)}

    def _engine_and_version(self, model: dict) -> tuple[str, str]:
        engine = str(model.get("owned_by") or "openai")
        try:
            version = str(self._request("GET", "/version").get("version", ""))
        except ServerError:
            version = ""
        return engine, version

    # ---- identity ------------------------------------------------------------------------
    @property
    def identity(self) -> dict:
        """What computed the outputs: the server's engine and version, the served name and the
        dtype it runs in. The address is not part of it (a server restarted on another port
        computes the same outputs); `served_by` records it."""
        return {"engine": f"{self.server_engine}-server", "engine_version": self.server_version,
                "served_model": self.served_model, "dtype": self.dtype, "device": "server"}

    @property
    def served_by(self) -> dict:
        return {"url": self.url, "engine": self.server_engine, "version": self.server_version,
                "served_model": self.served_model, "dtype": self.dtype}

    # ---- adapters ------------------------------------------------------------------------
    def load_adapter(self, path: str | Path, name: str | None = None) -> str:
        """Use a PEFT adapter folder that the server serves (or can load): its store hash names it."""
        from harness.models.fingerprint import adapter_fingerprint, check_adapter_folder

        path = check_adapter_folder(Path(path))
        fingerprint = adapter_fingerprint(path)
        served = served_adapter_name(fingerprint)
        if served not in self.served_models():
            self._load_on_server(served, path)
        self.adapters[served] = path
        self._adapter_hashes[served] = fingerprint
        self.set_adapter(served)
        return served

    def _load_on_server(self, served: str, path: Path) -> None:
        try:
            self._request("POST", "/v1/load_lora_adapter", {"lora_name": served, "lora_path": str(path.resolve())},
                          text=True)
        except ServerError as e:
            raise ServerError(f"{self.url} does not serve adapter {served} ({path}) and could not load it ({e}): start the "
                              f"server with --enable-lora --lora-modules {served}={path.resolve()} (see `harness export "
                              "CHANNEL --format vllm`)") from None

    def set_adapter(self, name: str | None) -> None:
        if name is not None and name not in self.adapters:
            raise HarnessError(f"adapter {name!r} is not loaded (loaded: {', '.join(self.adapters) or 'none'})")
        self.active_adapter = name

    @property
    def adapter_hash(self) -> str | None:
        return self._adapter_hashes[self.active_adapter] if self.active_adapter else None

    @property
    def _model(self) -> str:
        return self.active_adapter or self.served_model

    def _parallel(self, fn, items: list, progress=None, in_flight: int | None = None) -> list:
        """fn(item) for every item, `in_flight` (default `concurrency`) at once, in input order."""
        def one(item):
            out = fn(item)
            if progress:
                progress(1)
            return out

        with ThreadPoolExecutor(max_workers=max(1, in_flight or self.concurrency)) as pool:
            return list(pool.map(one, items))

    # ---- generation ----------------------------------------------------------------------
    def generate(self, requests: list[Messages], config: GenerationConfig = GenerationConfig(), progress=None) -> list[Completion]:
        """Greedy completions for chat requests, in input order."""
        return self._parallel(lambda m: self._complete(m, config), requests, progress)

    def _complete(self, messages: Messages, config: GenerationConfig) -> Completion:
        payload = {"model": self._model, "messages": messages, "temperature": 0, "max_tokens": config.max_new_tokens,
                   "seed": 0, "n": 1}
        if config.stop:
            payload["stop"] = list(config.stop)
        t0 = time.perf_counter()
        r = self._request("POST", "/v1/chat/completions", payload)
        seconds = time.perf_counter() - t0
        try:
            choice = r["choices"][0]
            text = choice["message"]["content"] or ""
            reason = choice.get("finish_reason") or "stop"
            usage = r.get("usage") or {}
        except (KeyError, IndexError, TypeError):
            raise ServerError(f"{self.url}/v1/chat/completions: an answer without choices[0].message ({str(r)[:160]})") from None
        n = usage.get("completion_tokens")
        if n is None:
            n = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        elif self.server_engine == "vllm" and reason == "stop" and choice.get("stop_reason") is None and n:
            n -= 1  # vLLM counts the end-of-sequence token (stop_reason None), the local backend does not
        return Completion(text=text, prompt_tokens=usage.get("prompt_tokens") or len(self.encode(messages)),
                          completion_tokens=n, latency_s=seconds, finish_reason="length" if reason == "length" else "stop")

    # ---- log-likelihood ------------------------------------------------------------------
    def loglikelihood(self, pairs: list[tuple[Messages, str]], batch_size: int | None = None, progress=None) -> list[LoglikResult]:
        """Sum log-prob of each continuation after its chat context, from the server's prompt
        log-probabilities (the continuation's tokens as the local tokenizer makes them)."""
        if not pairs:
            return []
        rendered: dict[int, list[int]] = {}
        seqs = []
        for messages, continuation in pairs:
            if id(messages) not in rendered:
                rendered[id(messages)] = self.encode(messages)
            seqs.append((rendered[id(messages)], self.continuation_ids(continuation)))
        if not self._probed:
            self._score(seqs[0])  # refuses a server without prompt log-probs before any work is done
            self._probed = True
        return self._parallel(self._score, seqs, progress, self.loglik_concurrency)

    def _score(self, seq: tuple[list[int], list[int]]) -> LoglikResult:
        ctx, cont = seq
        r = self._request("POST", "/v1/completions", {"model": self._model, "prompt": ctx + cont, "max_tokens": 1,
                                                      "temperature": 0, "echo": True, "logprobs": 1})
        lp = ((r.get("choices") or [{}])[0] or {}).get("logprobs") or {}
        token_lps, tops = lp.get("token_logprobs") or [], lp.get("top_logprobs") or []
        n = len(ctx) + len(cont)
        picked = token_lps[len(ctx):n]
        if len(token_lps) < n or len(tops) < n or any(x is None for x in picked):
            raise ServerError(f"{self.url} ({self.server_engine}) does not return prompt log-probabilities (/v1/completions with "
                              "echo and logprobs): multiple-choice checks scored through it would be at chance. Serve the "
                              "model with vLLM, or evaluate suites with log-likelihood checks on the local backend (eval.backend: hf)")
        greedy = all(t is not None and x >= max(t.values()) - 1e-6 for x, t in zip(picked, tops[len(ctx):n]))
        return LoglikResult(logprob=float(sum(picked)), is_greedy=greedy, n_tokens=len(cont))

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def _message(r) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    err = body.get("error", body) if isinstance(body, dict) else body
    return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
