"""The seven trainers share one API (course_lib/trainers/_loop.py): each is called the same way
here, from_profile -> train -> Run -> save_checkpoint -> reload; the shared loop pieces, the
checkpoint names and the one table of TRL argument names are checked."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import random

import pytest
import torch

from course_lib.core.config import TINY
from course_lib.trainers import _loop
from course_lib.trainers._loop import Run

CONFIGS = {
    "sft": "SFTConfig",
    "reward_model": "RewardConfig",
    "ppo": "PPOConfig",
    "grpo": "GRPOConfig",
    "dpo": "DPOConfig",
    "rlvr": "RLVRConfig",
    "tools": "ToolConfig",
}
TINY_SIZES = {
    "sft": {"max_steps": 2, "per_device_train_batch_size": 4},
    "reward_model": {"max_steps": 2, "per_device_train_batch_size": 4},
    "ppo": {"max_steps": 2, "batch_size": 4, "num_mini_batches": 2, "max_new_tokens": 6},
    "grpo": {"max_steps": 2, "prompts_per_step": 2, "num_generations": 2, "max_completion_length": 6},
    "dpo": {"max_steps": 2, "per_device_train_batch_size": 4, "pair_source": "synthetic", "num_pairs": 16},
    "rlvr": {
        "max_steps": 2,
        "prompts_per_step": 2,
        "num_generations": 2,
        "max_completion_length": 6,
        "eval_size": 4,
        "train_size": 16,
    },
    "tools": {
        "max_steps": 2,
        "prompts_per_step": 2,
        "num_generations": 2,
        "max_completion_length": 6,
        "eval_size": 4,
        "train_size": 16,
    },
}
# the folders later units, `course serve` and the notebooks look for
FOLDERS = {
    "sft": "sft",
    "reward_model": "reward_model",
    "ppo": "ppo",
    "grpo": "grpo",
    "dpo": "dpo",
    "rlvr": "rlvr_addition",
    "tools": "tools",
}
SHARED_KEYS = {"step", "loss", "lr", "seconds"}
TEXTS = ["Question: What is 2 + 3?\nAnswer: 5", "The movie was great fun"]


def _trainer(name):
    module = importlib.import_module(f"course_lib.trainers.{name}")
    return module, getattr(module, CONFIGS[name])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_trainer_trains_saves_and_reloads_the_same_way(name, tmp_path, monkeypatch, solutions_on):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "ck"))  # no SFT checkpoint: base model
    module, config_cls = _trainer(name)
    config = config_cls.from_profile(TINY, "quick", **TINY_SIZES[name])
    run = module.train(config, profile=TINY, show_progress=False)

    assert isinstance(run, Run) and run.trainer == name and run.config.max_steps == 2
    assert [h["step"] for h in run.history] == [1, 2]
    for row in run.history:
        assert SHARED_KEYS <= set(row), (name, sorted(row))
        assert math.isfinite(row["loss"]) and row["lr"] > 0
        assert 0 < row["seconds"] < run.seconds  # the step's own wall time
    assert sum(h["seconds"] for h in run.history) <= run.seconds
    assert not run.model.training

    path = module.save_checkpoint(run)
    assert path == tmp_path / "ck" / FOLDERS[name]
    info = json.loads((path / "training_info.json").read_text())
    assert info["trainer"] == name and info["steps"] == 2 and info["config"]["max_steps"] == 2
    assert info["final"]["loss"] == run.history[-1]["loss"] and info["profile"] == "tiny"

    tok = run.tokenizer
    enc = tok(TEXTS, return_tensors="pt", padding=True, add_special_tokens=False)
    if name == "reward_model":
        from course_lib.core.models import RewardModel

        again = RewardModel.from_pretrained(path)
        assert again.score_texts(TEXTS, tok) == pytest.approx(run.model.score_texts(TEXTS, tok), abs=1e-5)
    else:
        from course_lib.core.models import load_policy

        again, tok2 = load_policy(path, profile=TINY, device="cpu")
        lm = run.model.lm if name == "ppo" else run.model
        with torch.no_grad():
            a = again(**enc).logits
            b = lm.to("cpu")(**enc).logits
        assert torch.allclose(a, b, atol=1e-5) and tok2.eos_token == tok.eos_token


@pytest.mark.parametrize("name", list(CONFIGS))
def test_from_profile_names_an_unknown_field(name):
    _, config_cls = _trainer(name)
    with pytest.raises(
        ValueError,
        match=rf"{config_cls.__name__}\.from_profile: unknown field 'max_stepz' "
        r"\(did you mean 'max_steps'\?\)",
    ):
        config_cls.from_profile(TINY, "quick", max_stepz=3)
    from course_lib.trainers.tools import UNIT10_TINY_STEPS

    own = {"dpo": TINY.preset("quick").steps * 5, "tools": UNIT10_TINY_STEPS["max_steps"]}
    assert config_cls.from_profile(TINY, "quick").max_steps == own.get(name, TINY.preset("quick").steps)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_max_steps_none_is_the_default_or_a_clear_error(name):
    """None means "the preset's steps" only where the field's own default is None (GRPO, RLVR);
    elsewhere it is refused with the field's name, not a TypeError from deep in the loop."""
    _, config_cls = _trainer(name)
    if name in ("grpo", "rlvr", "tools"):
        assert config_cls(max_steps=None).resolved(TINY, "medium").max_steps == TINY.preset("medium").steps
        return
    with pytest.raises(ValueError, match=rf"{config_cls.__name__}: max_steps must be an int >= 1, got None"):
        config_cls.from_profile(TINY, "quick", max_steps=None)
    with pytest.raises(ValueError, match=r"max_steps must be an int >= 1, got 2.5"):
        config_cls.from_profile(TINY, "quick", max_steps=2.5)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_config_is_a_trainer_config_checked_when_made(name):
    """One config pattern: a bad count is refused where the config is made (or replaced), with
    the config's and the field's names, whichever trainer it is."""
    _, config_cls = _trainer(name)
    assert issubclass(config_cls, _loop.TrainerConfig)
    with pytest.raises(ValueError, match=rf"{config_cls.__name__}: max_steps must be an int >= 1, got 0"):
        config_cls(max_steps=0)
    cfg = config_cls.from_profile(TINY, "quick")
    with pytest.raises(ValueError, match=r"max_steps must be an int >= 1, got -1"):
        dataclasses.replace(cfg, max_steps=-1)


def test_a_none_override_keeps_the_units_own_default_but_none_values_still_win():
    """RLVR's tiny base sets 60 steps whatever the preset: ``from_profile(max_steps=None)`` (a
    notebook's ``STEPS = None``) must give those 60, not the preset's 150 -- while PPO's
    ``clip_range=None`` (a value: no clipping) still replaces the default 0.2."""
    from course_lib.trainers.ppo import PPOConfig
    from course_lib.trainers.rlvr import UNIT09_TINY_STEPS, RLVRConfig

    assert TINY.preset("medium").steps != UNIT09_TINY_STEPS["max_steps"]
    left_out = RLVRConfig.from_profile(TINY, "medium")
    assert RLVRConfig.from_profile(TINY, "medium", max_steps=None).max_steps == left_out.max_steps == 60
    assert RLVRConfig.from_profile(TINY, "medium", max_steps=7).max_steps == 7
    assert PPOConfig.from_profile(TINY, "quick", clip_range=None).clip_range is None
    assert PPOConfig.from_profile(TINY, "quick").clip_range == 0.2


def test_train_with_trl_has_one_signature_where_trl_has_the_trainer():
    for name in ("sft", "reward_model", "grpo", "dpo", "rlvr"):
        params = list(inspect.signature(_trainer(name)[0].train_with_trl).parameters)
        assert params[:5] == ["config", "model", "tokenizer", "dataset", "output_dir"], (name, params)
    assert not hasattr(_trainer("ppo")[0], "train_with_trl")  # TRL 1.16 has no PPOTrainer
    assert not hasattr(_trainer("tools")[0], "train_with_trl")  # refused: engine="trl"


def test_checkpoint_names_are_the_trainer_plus_a_non_default_task():
    assert [_loop.checkpoint_name(t) for t in CONFIGS] == list(CONFIGS)
    assert _loop.checkpoint_name("grpo", "sentiment") == "grpo"
    assert _loop.checkpoint_name("grpo", "arithmetic") == "grpo_arithmetic"
    assert _loop.checkpoint_name("rlvr", "gsm8k") == "rlvr_gsm8k"


@pytest.mark.parametrize("name", sorted(_loop.TRL_NAMES))
def test_every_trl_name_in_the_table_is_an_argument_of_trls_config(name):
    """The one table of our field -> TRL argument names: each of ours is a field (or property) of
    our config, each of TRL's an argument of the TRL 1.16 config class the side by side uses."""
    trl = pytest.importorskip("trl")
    theirs = {f.name for f in dataclasses.fields(getattr(trl, _loop.TRL_CONFIGS[name]))}
    missing = set(_loop.TRL_NAMES[name].values()) - theirs
    assert not missing, f"{_loop.TRL_CONFIGS[name]} has no {sorted(missing)}"
    assert set(_loop.TRL_RUN) <= theirs
    config_cls = _trainer(name)[1]
    ours = {f.name for f in dataclasses.fields(config_cls)}
    ours |= {n for n, v in inspect.getmembers(config_cls) if isinstance(v, property)}
    assert set(_loop.TRL_NAMES[name]) <= ours, sorted(set(_loop.TRL_NAMES[name]) - ours)
    assert {t for t, _ in _loop.TRL_VALUES} <= set(_loop.TRL_NAMES)
    assert all(f in _loop.TRL_NAMES[t] for t, f in _loop.TRL_VALUES)


def test_the_table_covers_every_trainer_with_a_side_by_side():
    with_trl = {n for n in CONFIGS if hasattr(_trainer(n)[0], "train_with_trl")}
    # TRL 1.16 has no PPOTrainer; its tool loop needs a chat template (tools refuses engine="trl")
    assert with_trl == set(_loop.TRL_NAMES) == set(_loop.TRL_CONFIGS) == set(CONFIGS) - {"ppo", "tools"}


def test_trl_config_carries_our_values_in_trls_form(tmp_path):
    from course_lib.trainers.dpo import DPOConfig
    from course_lib.trainers.rlvr import RLVRConfig
    from course_lib.trainers.sft import SFTConfig

    dapo = RLVRConfig.from_profile(TINY, "quick", variant="dapo", dynamic_sampling=False, format_weight=0.3)
    args = _loop.trl_config("rlvr", dapo, tmp_path, use_cpu=True, delta=None)
    assert (args.epsilon, args.epsilon_high, args.loss_type) == (0.2, 0.28, "dapo")
    assert args.per_device_train_batch_size == dapo.prompts_per_step * dapo.num_generations
    assert args.reward_weights == [1.0, 0.3] and args.scale_rewards == "group"
    gspo = RLVRConfig.from_profile(TINY, "quick", variant="gspo", scale_rewards=False, clip=False)
    args = _loop.trl_arguments("rlvr", gspo)
    assert args["importance_sampling_level"] == "sequence" and args["scale_rewards"] == "none"
    assert args["epsilon"] == args["epsilon_high"] == math.inf
    assert _loop.trl_arguments("dpo", DPOConfig(loss_type="ipo"))["loss_type"] == ["ipo"]
    sft_args = _loop.trl_config("sft", SFTConfig(max_grad_norm=None, max_steps=3), tmp_path, use_cpu=True)
    assert sft_args.max_grad_norm == 0.0 and sft_args.max_steps == 3 and sft_args.logging_steps == 1
    with pytest.raises(ValueError, match="no TRL side by side for 'ppo'"):
        _loop.trl_arguments("ppo", None)


def test_shuffled_batches_variants_give_the_expected_orders():
    rng = random.Random(0)
    first, second = random.Random(0), list(range(10))
    perm = list(range(10))
    first.shuffle(perm)
    first.shuffle(second)
    got = [b for _, b in zip(range(4), _loop.shuffled_batches(10, 4, rng))]
    assert got == [perm[:4], perm[4:8], second[:4], second[4:8]]  # remainder dropped
    kept = [b for _, b in zip(range(3), _loop.shuffled_batches(10, 4, random.Random(0), keep_remainder=True))]
    assert kept == [perm[:4], perm[4:8], perm[8:] + second[:2]]  # remainder carried over
    popped = next(_loop.shuffled_batches(10, 4, random.Random(0), from_end=True))
    assert popped == perm[::-1][:4]
    g = torch.Generator().manual_seed(3)
    assert (
        next(_loop.shuffled_batches(6, 3, g))
        == torch.randperm(6, generator=torch.Generator().manual_seed(3)).tolist()[:3]
    )
    assert next(_loop.shuffled_batches(6, 8, None)) == list(range(6))  # fewer than a batch: all


def test_lr_schedule_warmup_variants_and_median_step_time():
    def lrs(kind, warmup, steps, offset=0):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        sched = _loop.lr_schedule(opt, kind, warmup, steps, warmup_offset=offset)
        out = []
        for _ in range(steps):
            out.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return out

    assert lrs("linear", 2, 6) == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])
    assert lrs("constant", 2, 4, offset=1) == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        lrs("cosine_with_restarts", 0, 2)
    rows = [{"seconds": 9.0}, {"seconds": 1.0}, {"seconds": float("nan")}, {"seconds": 3.0}, {"seconds": 2.0}]
    assert _loop.median_step_seconds(rows) == 2.0  # first (warm-up) step and NaN left out
