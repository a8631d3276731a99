"""Unit 08: the comparison notebook, gpu-profile readiness of every notebook, LoRA and tracking."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NB = ROOT / "notebooks" / "08_evaluation.ipynb"
MODELS = ("base", "sft", "ppo", "grpo", "dpo")
FIGURES = {"08_frontier.png", "08_metrics.png", "08_reward_distributions.png"}


# ------------------------------------------------------------------------------ the notebook file
def test_notebook_conventions():
    nb = nbformat.read(str(NB), as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "code" and 'setup_notebook(unit="08")' in first.source
    assert first.metadata["nbgrader"]["grade_id"] == "setup_08"
    assert all(
        not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
    ), "outputs must be cleared"
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert [c.metadata["nbgrader"]["grade_id"] for c in answers] == ["q_frontier", "q_budget", "q_ship"]
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for fig in FIGURES:
        assert f'save_figure(fig, "{fig[:-4]}")' in src
    assert re.search(r'report_metrics\(\s*"08"', src) and "FAST" in src and "progress(" in src
    from course_lib.core import registry as exercises

    assert exercises.for_unit("08") == []  # unit 08 has no code exercises, only questions


# ------------------------------------------------------------------------------ running it
@pytest.mark.notebook
def test_unit08_notebook_compares_five_models(run_notebook):
    run = run_notebook("08")
    m = run.metrics
    for algo in ("sft", "ppo", "grpo", "dpo"):
        for metric in ("positive_fraction", "kl_to_ref", "distinct_2"):
            assert f"{metric}_{algo}" in m, sorted(m)
    # "before" = each run's starting point: base for SFT, the SFT model (measured once) for the rest
    rl = ("ppo", "grpo", "dpo")
    assert len({m[f"positive_fraction_{a}"]["before"] for a in rl}) == 1
    assert m["positive_fraction_ppo"]["before"] == m["positive_fraction_sft"]["after"]
    # the SFT model is the KL reference: its own KL is zero; the RL runs moved away from it
    assert m["kl_to_ref_sft"]["after"] == pytest.approx(0.0, abs=1e-6)
    assert all(m[f"kl_to_ref_{a}"]["before"] == pytest.approx(0.0, abs=1e-6) for a in rl)
    assert all(m[f"kl_to_ref_{a}"]["after"] > 0 for a in rl)
    assert m["kl_to_ref_sft"]["before"] > 0  # base vs SFT
    # optimising for sentiment beat its starting point for at least one algorithm
    assert max(m[f"positive_fraction_{a}"]["after"] for a in rl) > m["positive_fraction_sft"]["after"]
    assert FIGURES <= set(run.figures), run.figures
    samples = sorted((run.dir / "samples").glob("*.jsonl"))
    assert [p.stem for p in samples] == sorted(MODELS)
    for p in samples:
        rows = [json.loads(line) for line in p.read_text().splitlines()]
        assert 1 <= len(rows) <= 20 and all(set(r) == {"prompt", "response"} for r in rows)
    text = run.outputs_text()
    assert "on the frontier:" in text and "invalid request" in text
    print(f"unit 08 headless: {run.seconds:.0f} s")


# ------------------------------------------------------------------------------ gpu readiness
NOTEBOOK_UNITS = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.notebook
@pytest.mark.parametrize("unit", NOTEBOOK_UNITS)
def test_gpu_code_path_runs_with_local_standins(run_notebook, unit):
    """Every notebook's gpu profile (hub model/tokenizer/datasets/classifier replaced by local
    stand-ins, presets shrunk to 2 steps) runs top to bottom offline."""
    run = run_notebook(unit, profile="gpu")
    assert "profile gpu" in run.outputs_text()


def test_shared_evaluation_on_the_gpu_profile(gpu_profile, solutions_on):
    from course_lib import rewards
    from course_lib.core import data, evaluation
    from course_lib.core.models import frozen_copy, load_policy
    from course_lib.core.sentiment import get_scorer

    assert gpu_profile.name == "gpu" and get_scorer().name.endswith("classifier")
    model, tok = load_policy(profile=gpu_profile, device="cpu")
    prompts = list(data.load_task("sentiment", "eval", n=4, profile=gpu_profile)["prompt"])
    res = evaluation.evaluate_policy(model, tok, prompts, rewards.sentiment_reward, ref=frozen_copy(model))
    assert res["n"] == 4 and res["tokens_mean"] <= gpu_profile.max_completion_length
    assert 0.0 <= res["positive_fraction"] <= 1.0 and res["kl_to_ref"] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------ LoRA (optional peft)
def _peft_missing(monkeypatch):
    from course_lib.core import lora

    monkeypatch.setattr(lora, "peft_available", lambda: False)
    return lora


def test_lora_without_peft_says_how_to_install(tiny, monkeypatch):
    lora = _peft_missing(monkeypatch)
    model, _ = tiny
    with pytest.raises(ImportError, match="pip install peft"):
        lora.apply_lora(model)
    monkeypatch.delenv("COURSE_LORA", raising=False)
    assert lora.maybe_lora(model) is model  # not requested: unchanged, silent
    with pytest.warns(UserWarning, match="Training the full model"):
        assert lora.maybe_lora(model, enabled=True) is model
    monkeypatch.setenv("COURSE_LORA", "1")
    with pytest.warns(UserWarning):
        assert lora.maybe_lora(model) is model


def test_lora_wraps_the_language_model(tiny, monkeypatch):
    """With peft present (a recording stand-in here: peft is an optional dependency), the config
    names the architecture's projections and a PolicyWithValueHead keeps its value head."""
    from course_lib.core import lora
    from course_lib.core.models import PolicyWithValueHead, frozen_copy

    seen = []

    class LoraConfig(dict):
        def __init__(self, **kw):
            super().__init__(**kw)

    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.wrapped, self.config = m, m.config

    def get_peft_model(m, config):
        seen.append(config)
        return Wrapped(m)

    monkeypatch.setitem(
        sys.modules, "peft", types.SimpleNamespace(LoraConfig=LoraConfig, get_peft_model=get_peft_model)
    )
    monkeypatch.setattr(lora, "peft_available", lambda: True)
    model, _ = tiny
    out = lora.apply_lora(frozen_copy(model), r=4)
    assert out.wrapped is not None
    assert seen[-1]["r"] == 4 and seen[-1]["target_modules"] == ["c_attn", "c_proj", "c_fc"]
    assert seen[-1]["task_type"] == "CAUSAL_LM"
    policy = PolicyWithValueHead(frozen_copy(model))
    head = policy.value_head
    assert lora.apply_lora(policy) is policy and policy.value_head is head and hasattr(policy.lm, "wrapped")
    with pytest.raises(ValueError, match="rank r must be >= 1"):
        lora.apply_lora(model, r=0)


def test_trainable_parameters_counts_frozen_ones(tiny):
    from course_lib.core import lora
    from course_lib.core.models import frozen_copy

    model, _ = tiny
    ref = frozen_copy(model)
    trainable, total = lora.trainable_parameters(ref)
    assert trainable == 0 and total == sum(p.numel() for p in model.parameters())
    ref.lm_head.weight.requires_grad_(True)
    assert lora.trainable_parameters(ref)[0] == ref.lm_head.weight.numel()


# ------------------------------------------------------------------------------ tracking (optional)
def test_tracking_falls_back_to_a_no_op(monkeypatch):
    from course_lib.core import tracking

    monkeypatch.setattr(tracking, "_installed", lambda name: False)
    monkeypatch.delenv("COURSE_TRACKING", raising=False)
    assert tracking.choose_backend() == "none"
    t = tracking.make_tracker("unit 05 / ppo")
    assert t.backend == "none" and t.name == "unit_05_ppo"
    with pytest.raises(ImportError, match="pip install tensorboard"):
        tracking.make_tracker("x", backend="tensorboard")
    with pytest.raises(ImportError, match="pip install wandb"):
        tracking.make_tracker("x", backend="wandb")
    with pytest.raises(ValueError, match="unknown backend 'mlflow'"):
        tracking.choose_backend("mlflow")


def test_tracker_logs_numeric_finite_values_per_step():
    from course_lib.core import tracking

    class Recorder(tracking.Tracker):
        def __init__(self):
            super().__init__("rec")
            self.calls = []

        def _log(self, scalars, step):
            self.calls.append((step, scalars))

    t = Recorder()
    history = [
        {"step": 1, "loss": 0.5, "reward": 0.1, "text": "hi", "done": True},
        {"step": 2, "loss": float("nan"), "reward": 0.3},
    ]
    assert tracking.log_history(history, t) == 2
    assert t.calls == [(1, {"step": 1.0, "loss": 0.5, "reward": 0.1}), (2, {"step": 2.0, "reward": 0.3})]
    t.callback()({"step": 7, "kl": 0.02})
    assert t.calls[-1] == (7, {"step": 7.0, "kl": 0.02})
