"""`course serve`: a real uvicorn server on 127.0.0.1 (subprocess), queried with httpx."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from course_lib.core import serving
from course_lib.core.config import ASSET_DIR

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ckpt_root(tmp_path_factory):
    """A checkpoint folder whose only SFT/RL checkpoint is a copy of the tiny model at sft/."""
    root = tmp_path_factory.mktemp("serve_ckpts")
    shutil.copytree(ASSET_DIR, root / "sft")
    return root


@pytest.fixture(scope="module")
def server(ckpt_root):
    """`course serve --host 127.0.0.1 --port P` with no checkpoint argument (uses the default)."""
    port = _free_port()
    env = dict(
        os.environ,
        COURSE_CHECKPOINTS=str(ckpt_root),
        COURSE_PROFILE="tiny",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "course_lib.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--time-limit",
            "20",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                pytest.fail("server did not come up within 120 s")
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_health_reports_the_default_checkpoint(server, ckpt_root):
    h = server.get("/health").json()
    assert h["status"] == "ok"
    assert Path(h["checkpoint"]) == ckpt_root / "sft"  # newest SFT/RL checkpoint
    assert h["max_length_cap"] >= 32


def test_generate_answers_in_the_trained_format(server):
    from course_lib.core import data

    questions = list(data.load_task("qa", "train", n=12)["question"])
    replies = []
    for q in questions:
        r = server.post("/generate", json={"question": q, "max_length": 32})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"response", "format_ok", "tokens", "seconds", "truncated"}
        assert 1 <= body["tokens"] <= 32
        replies.append((q, body))
    formatted = [(q, b) for q, b in replies if b["format_ok"]]
    assert formatted, "the model never produced the Q&A format on training questions"
    for _q, b in formatted:
        question_line, answer_line = b["response"].split("\n")
        assert question_line.startswith("Question: ") and answer_line.startswith("Answer: ")
        assert answer_line[len("Answer: ") :].strip()


def test_max_length_bounds_the_response(server):
    r = server.post("/generate", json={"question": "Tell me a long story about Orrin", "max_length": 3})
    assert r.status_code == 200
    assert r.json()["tokens"] <= 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"question": ""}, "question"),
        ({"question": "   \n"}, "question"),
        ({"max_length": 10}, "question"),
        ({"question": 42}, "question"),
        ({"question": ["a"]}, "question"),
        ({"question": "x" * 5000}, "question"),
        ({"question": "What is 2 + 2?", "max_length": 0}, "max_length"),
        ({"question": "What is 2 + 2?", "max_length": 100000}, "max_length"),
        ({"question": "What is 2 + 2?", "max_length": "ten"}, "max_length"),
        ({"question": "What is 2 + 2?", "max_length": 2.5}, "max_length"),
        ({"question": "What is 2 + 2?", "temperature": -1}, "temperature"),
        ({"question": "What is 2 + 2?", "prompt": "x"}, "prompt"),
    ],
)
def test_invalid_requests_get_422_with_a_clear_message(server, body, field):
    r = server.post("/generate", json=body)
    assert r.status_code == 422, r.text
    msg = r.json()["message"]
    assert msg.startswith("invalid request: ") and field in msg


def test_malformed_json_and_wrong_method(server):
    r = server.post("/generate", content=b'{"question": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["message"]
    assert server.get("/generate").status_code == 405
    assert server.get("/health").status_code == 200  # still alive


def test_concurrent_requests_are_safe(server):
    questions = ["What is the capital of Orrin?", "What is 3 + 4?"] * 4
    barrier = threading.Barrier(len(questions))

    def ask(q):
        barrier.wait()  # all requests in flight together
        return server.post("/generate", json={"question": q, "max_length": 24})

    with ThreadPoolExecutor(len(questions)) as pool:
        results = list(pool.map(ask, questions))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    by_q: dict[str, set] = {}
    for q, r in zip(questions, results):
        by_q.setdefault(q, set()).add(r.json()["response"])
    # greedy decoding + one generation at a time: identical questions give identical answers
    assert all(len(v) == 1 for v in by_q.values()), by_q
    assert server.get("/health").json()["pending"] == 0


# ----------------------------------------------------------------- in-process checks (no model)
class _SlowGenerator:
    checkpoint, device, max_length_cap = "fake", "cpu", 64
    model = object()

    def __init__(self, seconds):
        self.seconds = seconds

    def generate(self, question, max_length, temperature=0.0):
        time.sleep(self.seconds)
        return {
            "response": f"Question: {question}\nAnswer: ok",
            "format_ok": True,
            "tokens": 1,
            "seconds": self.seconds,
            "truncated": False,
        }


def test_a_request_that_takes_too_long_gets_504():
    from fastapi.testclient import TestClient

    app = serving.create_app(generator=_SlowGenerator(1.0), timeout_s=0.2)
    with TestClient(app) as c:
        r = c.post("/generate", json={"question": "slow?"})
        assert r.status_code == 504 and "did not finish" in r.json()["detail"]


def test_generation_time_limit_truncates(tiny):
    from fastapi.testclient import TestClient

    gen = serving.Generator(ASSET_DIR, device="cpu", time_limit_s=1e-4)
    with TestClient(serving.create_app(generator=gen)) as c:
        body = c.post("/generate", json={"question": "Describe Orrin in detail", "max_length": 100}).json()
    assert body["truncated"] is True and body["tokens"] < 100


def test_format_response_keeps_only_the_qa_block():
    text = "Question: Who?\nAnswer: Ada.\nQuestion: next one\nAnswer: more"
    assert serving.format_response("Who?", text) == ("Question: Who?\nAnswer: Ada.", True)
    assert serving.format_response("Who?", "  just words ") == ("just words", False)


def test_format_ok_only_when_the_users_own_question_is_answered():
    other = "Question: What is the capital of Norwick?\nAnswer: Dunmere."
    assert serving.format_response("What is 2 + 3?", other) == (other, False)
    own = "Question: what is 2 + 3\nAnswer: 5"
    assert serving.format_response("What is  2 + 3?", other + "\n" + own) == (own, True)
    assert serving.format_response("What is 2 + 3?", "Question: What is 2 + 3?\nAnswer:  ")[1] is False


def test_default_checkpoint_falls_back_to_the_base_model(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    assert serving.default_checkpoint() == str(ASSET_DIR)
    shutil.copytree(ASSET_DIR, tmp_path / "grpo")
    assert Path(serving.default_checkpoint()) == tmp_path / "grpo"


def test_serve_with_a_missing_checkpoint_exits_cleanly(capsys):
    assert serving.main(["/nonexistent/checkpoint"]) == 2
    assert "cannot load" in capsys.readouterr().err
