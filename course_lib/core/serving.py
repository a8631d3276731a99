"""`course serve`: serve a checkpoint over HTTP, as in the GPT-2 format-RL assignment.

    course serve                          # newest SFT/RL checkpoint, else the tiny base model
    course serve checkpoints/grpo --port 8001
    curl -s localhost:8000/generate -H 'content-type: application/json' \\
         -d '{"question": "What is the capital of Orrin?", "max_length": 32}'
    -> {"response": "Question: What is the capital of Orrin?\\nAnswer: ...", "format_ok": true, ...}

Endpoints (a FastAPI app from :func:`create_app`):

* ``POST /generate`` ``{"question": str, "max_length": int = 48, "temperature": float = 0.0}``
  → ``{"response", "format_ok", "tokens", "seconds", "truncated"}``. The model gets the question
  exactly as in SFT training (``"<question>\\n"``) and continues with "Question: …\\nAnswer: …";
  the response is cut after the answer line. ``max_length`` is the maximum number of *generated*
  tokens (1 … ``max_length_cap``); ``temperature`` 0 means greedy (deterministic).
* ``GET /health`` → ``{"status": "ok", "checkpoint", "model", "device", ...}``.

Safety: inputs are validated by pydantic (an empty question, a ``max_length`` out of range or a
wrong type gives HTTP 422 with a readable ``message``, never a crash); generation runs in one
worker thread (the model is not shared between concurrent forwards), waits in a bounded queue
(HTTP 503 when full) and is bounded in length (``max_length_cap``) and in time
(``generate(max_time=...)`` stops early and the reply says ``"truncated": true``; a request that
waits longer than ``timeout_s`` in total gets HTTP 504). Binds to 127.0.0.1 unless told otherwise.
"""

import argparse
import asyncio
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_QUESTION_CHARS = 1000
QA_RE = re.compile(r"Question:[^\n]*\S[^\n]*\nAnswer:[^\n]*\S[^\n]*")
SERVED_CHECKPOINTS = ("sft", "ppo", "grpo", "dpo")


def default_checkpoint() -> str:
    """The newest SFT/RL checkpoint under checkpoint_dir(), else the profile's base model."""
    from course_lib.core.config import get_profile
    from course_lib.core.models import latest_checkpoint

    found = latest_checkpoint(*SERVED_CHECKPOINTS)
    return str(found) if found else get_profile().policy_model


def _normalise_question(text: str) -> str:
    return " ".join(text.split()).casefold().rstrip("?").strip()


def format_response(question: str, generated: str) -> tuple[str, bool]:
    """(response, format_ok) for the generated text.

    format_ok is True only when the model echoed *the user's own question* and answered it: the
    first "Question: <question>\nAnswer: <non-empty>" block whose question equals the asked one
    (whitespace, case and a trailing "?" ignored). A block that answers another question is
    returned as the response with format_ok False; without any block, the stripped text."""
    asked = _normalise_question(question)
    blocks = list(QA_RE.finditer(generated))
    for m in blocks:
        question_line = m.group(0).split("\n", 1)[0][len("Question:") :]
        if _normalise_question(question_line) == asked:
            return m.group(0).strip(), True
    if blocks:
        return blocks[0].group(0).strip(), False
    return generated.strip(), False


class Generator:
    """The loaded model + tokenizer and one generation at a time (a single worker thread)."""

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str | None = None,
        max_length_cap: int = 256,
        time_limit_s: float = 10.0,
    ):
        import torch

        from course_lib.core.models import load_policy

        self.checkpoint = str(checkpoint or default_checkpoint())
        self.model, self.tokenizer = load_policy(self.checkpoint, device=device)
        self.model.eval()
        n_pos = getattr(self.model.config, "n_positions", None) or getattr(
            self.model.config, "max_position_embeddings", 1024
        )
        self.context = int(n_pos or 1024)
        self.max_length_cap = int(min(max_length_cap, self.context // 2))
        self.time_limit_s = time_limit_s
        self.device = str(next(self.model.parameters()).device)
        self._lock = threading.Lock()
        self._torch = torch

    def generate(self, question: str, max_length: int, temperature: float = 0.0) -> dict:
        torch = self._torch
        prompt = f"{question.strip()}\n"  # the SFT prompt format (course_lib.core.data.qa_pairs)
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = ids[:, -(self.context - max_length) :].to(self.device)  # keep the end of long questions
        kwargs = dict(
            max_new_tokens=max_length,
            max_time=self.time_limit_s,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(do_sample=False)
        t0 = time.perf_counter()
        with self._lock, torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        seconds = time.perf_counter() - t0
        new = out[0, ids.shape[1] :]
        hit_eos = bool((new == self.tokenizer.eos_token_id).any())
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        response, ok = format_response(question, text)
        return {
            "response": response,
            "format_ok": ok,
            "tokens": int(new.numel()),
            "seconds": round(seconds, 4),
            "truncated": bool(not hit_eos and new.numel() < max_length),
        }


def _validation_message(errors) -> str:
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(
    checkpoint: str | Path | None = None,
    *,
    device: str | None = None,
    max_length_cap: int = 256,
    time_limit_s: float = 10.0,
    timeout_s: float = 30.0,
    max_queue: int = 16,
    generator: Generator | None = None,
):
    """The FastAPI app serving `checkpoint` (default: :func:`default_checkpoint`).

    `max_length_cap`: largest allowed ``max_length`` (also at most half the model's context);
    `time_limit_s`: generation stops after this many seconds; `timeout_s`: a request (queueing
    included) fails with 504 after this long; `max_queue`: requests waiting beyond it get 503.
    """
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator

    gen = generator or Generator(
        checkpoint, device=device, max_length_cap=max_length_cap, time_limit_s=time_limit_s
    )
    cap = gen.max_length_cap

    class GenerateRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: StrictStr = Field(..., description="the question, e.g. 'What is 3 + 4?'")
        max_length: StrictInt = Field(
            min(48, cap), ge=1, le=cap, description=f"maximum number of generated tokens (1-{cap})"
        )
        temperature: StrictFloat | StrictInt = Field(
            0.0, ge=0.0, le=2.0, description="0 = greedy; > 0 samples"
        )

        @field_validator("question")
        @classmethod
        def _question(cls, v: str) -> str:
            if not v.strip():
                raise ValueError("must not be empty")
            if len(v) > MAX_QUESTION_CHARS:
                raise ValueError(f"must be at most {MAX_QUESTION_CHARS} characters (got {len(v)})")
            return v

    class GenerateResponse(BaseModel):
        response: str
        format_ok: bool
        tokens: int
        seconds: float
        truncated: bool

    from contextlib import asynccontextmanager

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")

    @asynccontextmanager
    async def lifespan(app):
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="course_lib model server",
        lifespan=lifespan,
        description="POST /generate a question; the model answers in the "
        "'Question: …\\nAnswer: …' format it was trained on.",
    )
    pending = {"n": 0}
    pending_lock = threading.Lock()
    app.state.generator = gen

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse(
            status_code=422,
            content={"message": f"invalid request: {_validation_message(errors)}", "detail": clean},
        )

    @app.get("/health")
    def health():
        return {
            "status": "ok",
            "checkpoint": gen.checkpoint,
            "model": type(gen.model).__name__,
            "device": gen.device,
            "max_length_cap": cap,
            "pending": pending["n"],
        }

    @app.post("/generate", response_model=GenerateResponse)
    async def generate(req: GenerateRequest):
        with pending_lock:
            if pending["n"] >= max_queue:
                raise HTTPException(503, detail=f"server busy: {pending['n']} requests waiting; retry later")
            pending["n"] += 1
        try:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(
                pool, gen.generate, req.question, req.max_length, float(req.temperature)
            )
            try:
                return await asyncio.wait_for(fut, timeout=timeout_s)
            except TimeoutError:
                raise HTTPException(504, detail=f"generation did not finish within {timeout_s} s") from None
        finally:
            with pending_lock:
                pending["n"] -= 1

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="course serve",
        description='Serve a checkpoint over HTTP: POST /generate {"question", "max_length"}, GET /health.',
    )
    ap.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="checkpoint directory or hub name (default: newest of "
        f"checkpoints/{{{','.join(SERVED_CHECKPOINTS)}}}, else the tiny base model)",
    )
    ap.add_argument(
        "--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST}, loopback only)"
    )
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--max-length-cap", type=int, default=256, help="largest max_length a client may ask for")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds after which generation stops")
    args = ap.parse_args(argv)
    import uvicorn

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"course serve: warning: binding to {args.host} exposes the model beyond this machine",
            file=sys.stderr,
        )
    try:
        app = create_app(
            args.checkpoint,
            device=args.device,
            max_length_cap=args.max_length_cap,
            time_limit_s=args.time_limit,
        )
    except (OSError, ValueError) as e:
        print(
            f"course serve: cannot load {args.checkpoint or default_checkpoint()!r}: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n"
            "Pass a checkpoint directory (e.g. checkpoints/sft) or a model name this machine "
            "can load.",
            file=sys.stderr,
        )
        return 2
    print(
        f"serving {app.state.generator.checkpoint} on http://{args.host}:{args.port} "
        "(POST /generate, GET /health, docs at /docs)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
