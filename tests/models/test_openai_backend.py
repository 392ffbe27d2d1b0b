"""OpenAIBackend's refusals that need no vLLM: nothing listening, and a server whose completions
carry no prompt log-probabilities (llama.cpp's server answers `echo` + `logprobs` that way; it
does not run on this machine, so a small HTTP server answers in its shape)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SPEC = "smollm2-135m-instruct"


class LlamaCppLike(BaseHTTPRequestHandler):
    """`/v1/models` and `/v1/completions` as llama.cpp's server answers them: a completion, and
    no `logprobs` for the prompt however it is asked."""

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path == "/v1/models":
            return self._send({"object": "list", "data": [{"id": "base", "object": "model", "owned_by": "llamacpp"}]})
        self.send_error(404)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/completions":
            return self._send({"object": "text_completion", "model": "base",
                               "choices": [{"index": 0, "text": " yes", "logprobs": None, "finish_reason": "length"}]})
        self.send_error(404)

    def log_message(self, *args):
        pass


class Silent(LlamaCppLike):
    """Lists its model, then never answers a completion (a stuck server)."""

    def do_POST(self):  # noqa: N802
        import time

        time.sleep(5)


def serve(handler):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.fixture
def llamacpp_like():
    srv, url = serve(LlamaCppLike)
    yield url
    srv.shutdown()


def test_both_backends_implement_the_whole_protocol(llamacpp_like, tiny_backend):
    from harness.models import Backend
    from harness.models.openai_backend import OpenAIBackend

    served = OpenAIBackend.connect(llamacpp_like, "base", SPEC)
    assert isinstance(served, Backend) and isinstance(tiny_backend, Backend)
    members = set(dir(Backend)) | set(Backend.__annotations__)
    assert {"identity", "adapter_hash", "served_by", "load_adapter", "set_adapter", "generate", "loglikelihood",
            "fingerprint", "spec", "adapters", "active_adapter"} <= members
    assert tiny_backend.served_by is None and served.served_by["url"] == llamacpp_like


def test_a_server_without_prompt_logprobs_is_refused_by_name_before_any_choice_is_scored(llamacpp_like):
    from harness.models.openai_backend import OpenAIBackend, ServerError

    be = OpenAIBackend.connect(llamacpp_like, "base", SPEC)
    assert be.identity["engine"] == "llamacpp-server"
    messages = [{"role": "user", "content": "Is the sky blue?"}]
    with pytest.raises(ServerError) as e:
        be.loglikelihood([(messages, " yes"), (messages, " no")])
    msg = str(e.value)
    assert llamacpp_like in msg and "(llamacpp)" in msg and "does not return prompt log-probabilities" in msg


def test_nothing_listening_and_an_unknown_served_name_are_clear_errors(llamacpp_like):
    from harness.models.openai_backend import OpenAIBackend, ServerError
    from harness.models.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerError, match=rf"cannot reach the model server at {url} \(connection refused\)"):
        OpenAIBackend.connect(url, "base", SPEC)
    with pytest.raises(ServerError, match=r"does not serve a model named 'llama' \(it serves: base\)"):
        OpenAIBackend.connect(llamacpp_like + "/v1", "llama", SPEC)


def test_a_server_that_never_answers_is_a_timeout_not_a_connection_error():
    from harness.models import GenerationConfig
    from harness.models.openai_backend import OpenAIBackend, ServerError

    srv, url = serve(Silent)
    try:
        be = OpenAIBackend.connect(url, "base", SPEC, timeout_s=1)
        with pytest.raises(ServerError, match=r"/v1/chat/completions: no answer within 1 s \(eval.server.timeout_s\)"):
            be.generate([[{"role": "user", "content": "hi"}]], GenerationConfig(max_new_tokens=4))
    finally:
        srv.shutdown()
