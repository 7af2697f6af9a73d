"""The OpenAI-compatible client of bah zeroshot against a fake server on 127.0.0.1."""
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from bah.apps.zeroshot.backend import BackendError, BackendUnavailable, Item
from bah.apps.zeroshot.http_backend import OpenAIBackend, first_token_scores
from bah.apps.zeroshot.prompt import load_prompts


class FakeServer:
    """Records requests; ``script`` is a list of (status, body or callable, delay) consumed in order,
    then the last entry repeats."""

    def __init__(self):
        self.requests = []
        self.script = [(200, None, 0.0)]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, payload, delay = outer.script[min(len(outer.requests) - 1, len(outer.script) - 1)]
                if delay:
                    time.sleep(delay)
                if payload is None:
                    payload = completion("Ambivalent")
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(text, top=None):
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": top[0][0], "logprob": top[0][1],
                                           "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    return {"id": "x", "object": "chat.completion", "choices": [choice],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1}}


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def item():
    book = load_prompts()
    frames = [np.full((24, 32, 3), 10 * i, dtype=np.uint8) for i in range(3)]
    return Item("v1", frames, "hello", book.render("td1", "hello", style="chat", video=False), book.candidates)


def backend(server, **kw):
    base = dict(base_url=server.base_url, model="tiny-vlm", retries=2, backoff_s=0.01, timeout_s=5.0)
    base.update(kw)
    return OpenAIBackend(**base)


def test_request_body_headers_and_logprobs(server, item, monkeypatch):
    monkeypatch.setenv("BAH_TEST_KEY", "sekret")
    server.script = [(200, completion("Ambivalent", [("Amb", -0.1), ("Non", -2.5), ("The", -4.0)]), 0)]
    ans = backend(server, api_key_env="BAH_TEST_KEY", max_new_tokens=7).predict(item)
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sekret"
    b = req["body"]
    assert b["model"] == "tiny-vlm" and b["temperature"] == 0 and b["max_tokens"] == 7
    assert b["logprobs"] is True and b["top_logprobs"] == 5
    parts = b["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"]
    assert parts[-1]["text"] == item.prompt.content
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:2] == b"\xff\xd8"  # a JPEG
    assert "guided_choice" not in b and "structured_outputs" not in b
    assert ans.text == "Ambivalent" and ans.scores == (-2.5, -0.1)
    assert ans.meta["attempts"] == 1


def test_no_key_variable_means_no_authorization_header(server, item):
    backend(server).predict(item)
    assert "Authorization" not in server.requests[0]["headers"]


def test_missing_key_variable_is_refused(server, monkeypatch):
    monkeypatch.delenv("BAH_TEST_NOPE", raising=False)
    with pytest.raises(BackendUnavailable, match="BAH_TEST_NOPE"):
        backend(server, api_key_env="BAH_TEST_NOPE")


@pytest.mark.parametrize("mode,key,value", [
    ("vllm-guided", "guided_choice", ["Non-Ambivalent", "Ambivalent"]),
    ("vllm-structured", "structured_outputs", {"choice": ["Non-Ambivalent", "Ambivalent"]}),
])
def test_constrained_choice_fields(server, item, mode, key, value):
    backend(server, constrain=mode).predict(item)
    assert server.requests[0]["body"][key] == value


def test_retries_on_500_then_succeeds(server, item):
    server.script = [(500, {"error": "busy"}, 0), (503, {"error": "busy"}, 0), (200, completion("Non-Ambivalent"), 0)]
    ans = backend(server).predict(item)
    assert ans.text == "Non-Ambivalent" and len(server.requests) == 3 and ans.meta["attempts"] == 3


def test_retries_are_bounded(server, item):
    server.script = [(429, {"error": "slow down"}, 0)]
    with pytest.raises(BackendError, match="gave up after 3 attempts: HTTP 429"):
        backend(server).predict(item)
    assert len(server.requests) == 3


def test_400_fails_at_once(server, item):
    server.script = [(400, {"error": "bad"}, 0)]
    with pytest.raises(BackendError, match="HTTP 400"):
        backend(server).predict(item)
    assert len(server.requests) == 1


def test_timeout_on_a_sleeping_handler(server, item):
    server.script = [(200, None, 1.0)]
    # the handler answers after 1 s: only a 0.2 s timeout turns both attempts into "timed out"
    with pytest.raises(BackendError, match="timed out"):
        backend(server, timeout_s=0.2, retries=1).predict(item)
    assert len(server.requests) == 2


@pytest.mark.parametrize("payload", ["not json", {"choices": []}, {"choices": [{"message": {"content": 3}}]}])
def test_malformed_response_is_a_per_item_error(server, item, payload):
    server.script = [(200, payload, 0)]
    with pytest.raises(BackendError):
        backend(server).predict(item)


def test_unreachable_server_stops_the_run(item):
    # a port that was just free: connection refused
    s = FakeServer()
    url = s.base_url
    s.close()
    with pytest.raises(BackendUnavailable, match="unreachable"):
        OpenAIBackend(base_url=url, model="m", retries=1, backoff_s=0.01).predict(item)


def test_first_token_scores_mapping():
    cands = ("Non-Ambivalent", "Ambivalent")
    assert first_token_scores([{"token": " Amb", "logprob": -0.2}, {"token": "Non", "logprob": -1.7}], cands) == (-1.7, -0.2)
    # a missing candidate gets the lowest listed log-probability
    assert first_token_scores([{"token": "Non", "logprob": -0.1}, {"token": "The", "logprob": -5.0}], cands) == (-0.1, -5.0)
    assert first_token_scores([{"token": "The", "logprob": -0.1}], cands) is None


def test_video_url_mode_sends_one_decodable_mp4(server, item, tmp_path):
    from bah.core.media import probe

    backend(server, video_as="video_url").predict(item)
    parts = server.requests[0]["body"]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["video_url", "text"]
    url = parts[0]["video_url"]["url"]
    assert url.startswith("data:video/mp4;base64,")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    assert probe(clip).n_frames == 3
