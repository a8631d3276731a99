"""Unit 10's task and environment (course_lib.labs.tools) and trainer (course_lib.trainers.tools).

The environment is checked on scripted episodes (a stand-in model that writes a given text token
by token, whatever the environment appends) and on real rollouts of ``assets/tiny_tool``; the
trainer on short runs of that model."""

from __future__ import annotations

import copy
import random
import re
from types import SimpleNamespace

import pytest
import torch

from course_lib.core.config import get_profile
from course_lib.core.switch import use_solutions
from course_lib.labs import tools as lab
from course_lib.trainers import tools as T

TINY = get_profile("tiny")


@pytest.fixture(autouse=True)
def solutions():
    use_solutions()
    yield
    use_solutions(False)


@pytest.fixture(scope="module")
def start():
    if not lab.start_model_shipped():
        pytest.skip("assets/tiny_tool is not built (course build-tiny --tools)")
    return lab.load_start_model(profile=TINY)


# --------------------------------------------------------------------------- a scripted model
class Scripted(torch.nn.Module):
    """Writes `scripts[i]` (text after the prompt, environment replies included) in row i: at each
    step its logits put all mass on the script's next token, given how many completion tokens
    the row has so far (the environment's tokens count, so a right reply keeps it in step)."""

    def __init__(self, tokenizer, prompts, scripts):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.V = len(tokenizer)
        self.ids = [
            tokenizer(s, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for s in scripts
        ]
        self.seen = [0] * len(scripts)
        self.fed: list[list[int]] = [[] for _ in scripts]

    def forward(
        self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=True
    ):
        B, L = input_ids.shape
        if past_key_values is not None:  # one new token per row
            for i in range(B):
                self.fed[i].append(int(input_ids[i, 0]))
        logits = torch.full((B, L, self.V), -1e4)
        for i in range(B):
            n = len(self.fed[i])
            logits[i, -1, self.ids[i][min(n, len(self.ids[i]) - 1)]] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=True)


def _scripted(tok, scripts, **kw):
    prompts = [lab.prompt([11, 22, 33])] * len(scripts)
    model = Scripted(tok, prompts, scripts)
    return lab.rollout(model, tok, prompts, greedy=True, **kw)


def _spans_text(tok, ep, i):
    ids = ep.rollout.completion_ids[i]
    return [tok.decode(ids[s:e]) for s, e in ep.env_spans[i]]


def test_a_call_gets_its_result_and_the_mask_zeroes_exactly_the_reply(start):
    _, tok = start
    call = " <tool>11+22+33</tool>"
    reply = lab.environment_reply([11, 22, 33])
    assert reply == " <result>66</result>"
    scripts = [
        call + reply + " <answer>66</answer>",
        " <answer>70</answer>",
        " <tool>11+22</tool> <result>33</result> <tool>33+33</tool> <result>66</result> <answer>66</answer>",
    ]
    ep = _scripted(tok, scripts, max_new_tokens=80, max_turns=3)
    assert ep.texts == scripts  # the environment appended exactly what the script expected
    assert (ep.calls, ep.malformed, ep.turns) == ([1, 0, 2], [0, 0, 0], [2, 1, 3])
    assert ep.over_budget == [False, False, False] and ep.truncated == [False, False, False]
    assert _spans_text(tok, ep, 0) == [reply] and ep.env_spans[1] == []
    assert _spans_text(tok, ep, 2) == [" <result>33</result>", " <result>66</result>"]
    # exercise 10.2 on a real rollout: 0 on exactly the reply tokens, the rest untouched
    mask = T.loss_mask(ep)
    cm = ep.rollout.completion_mask
    for i in range(3):
        env = torch.zeros_like(cm[i])
        for s, e in ep.env_spans[i]:
            env[s:e] = 1
        assert torch.equal(mask[i], cm[i] * (1 - env))
        model_text = tok.decode(ep.rollout.completion_ids[i][mask[i].bool()], skip_special_tokens=True)
        assert "<result>" not in model_text and "</answer>" in model_text
    assert torch.equal(T.loss_mask(ep, train_on_env_tokens=True), cm)


def test_turn_budget_malformed_calls_and_the_token_budget(start):
    _, tok = start
    loop = " <tool>1+1</tool> <result>2</result>" * 3 + " <answer>2</answer>"
    bad = " <tool>11+</tool> <result>error</result> <tool>11 plus 22</tool> <result>error</result> <answer>9</answer>"
    ep = _scripted(tok, [loop, bad, " <answer>66</answer>"], max_new_tokens=80, max_turns=3)
    # row 0: three calls; the third ends turn 3 = the last: no reply, over budget
    assert ep.texts[0] == " <tool>1+1</tool> <result>2</result>" * 2 + " <tool>1+1</tool>"
    assert (ep.calls[0], ep.turns[0], ep.over_budget[0], len(ep.env_spans[0])) == (3, 3, True, 2)
    # row 1: two malformed calls, each answered with an error, then the answer in turn 3
    assert ep.texts[1] == bad and (ep.calls[1], ep.malformed[1], ep.turns[1]) == (2, 2, 3)
    assert not ep.over_budget[1] and _spans_text(tok, ep, 1) == [" <result>error</result>"] * 2
    r = T.episode_rewards(ep, ["2", "66", "66"], T.ToolConfig(max_steps=1))
    assert r.tolist() == [-1.0, -1.0, 1.0]  # cut before its answer - budget; - 2 malformed; right
    # one turn only: the first call is already over budget
    one = _scripted(tok, [loop], max_new_tokens=80, max_turns=1)
    assert one.texts == [" <tool>1+1</tool>"] and one.over_budget == [True] and one.env_spans == [[]]
    # a token budget that ends inside the reply: the span stops at the budget, the episode is cut
    n_call = len(tok(" <tool>1+1</tool>", add_special_tokens=False)["input_ids"])
    cut = _scripted(tok, [loop], max_new_tokens=n_call + 2, max_turns=3)
    assert cut.truncated == [True] and cut.env_spans == [[(n_call, n_call + 2)]]
    assert T.loss_mask(cut)[0].tolist() == [1] * n_call + [0, 0]


def test_a_real_rollout_the_reply_is_the_sum_of_the_call_and_is_masked(start):
    model, tok = start
    problems = lab.make_problems("train", 32)
    gen = torch.Generator().manual_seed(0)
    ep = lab.rollout(
        model, tok, [p["prompt"] for p in problems], max_new_tokens=64, num_samples=2, generator=gen
    )
    assert sum(ep.calls) > 0, "the start model never called the tool in 64 episodes"
    mask = T.loss_mask(ep)
    for i in range(len(ep)):
        replies = _spans_text(tok, ep, i)
        assert len(replies) == ep.calls[i] - ep.over_budget[i]
        text = ep.texts[i]
        for call, reply in zip(re.findall(r"<tool>(.*?)</tool>", text), replies):
            try:
                want = lab.environment_reply([int(x) for x in call.split("+")])
            except ValueError:
                want = lab.environment_reply(None)
            assert reply == want or ep.truncated[i], (text, reply)
        kept = tok.decode(ep.rollout.completion_ids[i][mask[i].bool()])
        assert "<result>" not in kept
        assert int(mask[i].sum()) == int(ep.rollout.completion_mask[i].sum()) - sum(
            e - s for s, e in ep.env_spans[i]
        )


# --------------------------------------------------------------------------- the task
def test_problems_documents_and_heldout_never_leaks():
    a = lab.make_problems("train", 300)
    assert a == lab.make_problems("train", 300) and a != lab.make_problems("train", 300, seed=1)
    held = lab.make_problems("heldout", 300)
    keys, held_keys = {tuple(p["numbers"]) for p in a}, {tuple(p["numbers"]) for p in held}
    assert len(keys) == len(held_keys) == 300 and not keys & held_keys
    assert all(lab.is_heldout(k) for k in held_keys)
    for p in a[:20]:
        assert len(p["numbers"]) == lab.N_TERMS and p["answer"] == str(sum(p["numbers"]))
        assert all(lab.TERM_RANGE[0] <= x <= lab.TERM_RANGE[1] for x in p["numbers"])
    docs = lab.pretraining_documents(3000)
    assert docs == lab.pretraining_documents(3000)
    held_q = {lab.question(k) for k in held_keys}
    assert not any(d.split("\nUser: ")[1].split("\n")[0] in held_q for d in docs if "\nUser: " in d)
    rng = random.Random(0)
    nums = [123, 45, 678]
    tool = lab.completion(nums, "tool", rng)
    assert tool == " <tool>123+45+678</tool> <result>846</result> <answer>846</answer>"
    assert "<tool>123+45</tool> <result>168</result> <tool>168+678</tool>" in lab.completion(
        nums, "tool_chain", rng
    )
    with pytest.raises(ValueError, match="style"):
        lab.completion(nums, "poem", rng)
    assert abs(sum(lab.DEFAULT_MIX.values()) - 1) < 1e-9 and set(lab.DEFAULT_MIX) == set(lab.STYLES)
    with pytest.raises(ValueError, match="split"):
        lab.make_problems("test", 3)


def test_the_forced_prompt_has_the_same_tokens_but_one_and_the_reply_tokenizes_alone(start):
    """Pretraining's FORCED_PROMPT puts every number where TOOL_PROMPT does (what the copying
    learned under it needs), and a reply tokenized alone is the tokens it has inside a document."""
    _, tok = start
    nums = [123, 456, 789]
    a, b = (
        tok(lab.prompt(nums, t), add_special_tokens=False)["input_ids"]
        for t in (lab.TOOL_PROMPT, lab.FORCED_PROMPT)
    )
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
    rng = random.Random(0)
    for style in ("tool", "tool_chain", "bad_tool"):
        text = lab.completion(nums, style, rng)
        whole = tok(text, add_special_tokens=False)["input_ids"]
        parts = [p for p in re.split(r"( <result>[^<]*</result>)", text) if p]
        assert whole == [i for p in parts for i in tok(p, add_special_tokens=False)["input_ids"]], style


# --------------------------------------------------------------------------- the config
def test_config_defaults_bad_values_name_the_field_and_trl_is_refused():
    cfg = T.ToolConfig.from_profile(TINY)
    assert (cfg.max_turns, cfg.train_on_env_tokens, cfg.loss_type, cfg.max_completion_length) == (
        3,
        False,
        "grpo",
        64,
    )
    assert cfg.max_steps == T.UNIT10_TINY_STEPS["max_steps"]
    for bad, match in (
        ({"max_turns": 0}, "max_turns must be an int >= 1, got 0"),
        ({"malformed_penalty": -1.0}, "malformed_penalty must be >= 0"),
        ({"budget_penalty": -0.5}, "budget_penalty must be >= 0"),
        ({"num_generations": 1}, "num_generations"),
        ({"loss_type": "cispo"}, "loss_type"),
        ({"engine": "vllm"}, "engine"),
        ({"temperature": 0.0}, "temperature"),
    ):
        with pytest.raises(ValueError, match=match):
            T.ToolConfig.from_profile(TINY, **bad)
    with pytest.raises(ValueError, match="unknown field 'max_turn'.*max_turns"):
        T.ToolConfig.from_profile(TINY, max_turn=2)
    with pytest.raises(ValueError, match="engine='trl' is not supported.*chat template"):
        T.train(T.ToolConfig.from_profile(TINY, engine="trl"), profile=TINY)


# --------------------------------------------------------------------------- the loop
SMALL = dict(max_steps=2, prompts_per_step=2, num_generations=4, eval_size=8, eval_every=1)
KEYS = {
    "step", "loss", "lr", "seconds", "reward", "reward_std", "accuracy", "tool_call_rate", "malformed_rate",
    "turns_per_episode", "over_budget_rate", "truncated_rate", "completion_length", "env_token_fraction",
    "entropy", "kl", "grad_norm", "clip_ratio_low", "clip_ratio_high", "mean_ratio", "frac_reward_zero_std",
    "eval_accuracy", "eval_tool_call_rate", "eval_malformed_rate", "eval_turns_per_episode",
    "eval_over_budget_rate",
}  # fmt: skip


def _run(start, **changes):
    model, tok = start
    cfg = T.ToolConfig.from_profile(TINY, **{**SMALL, **changes})
    return T.train(
        cfg, copy.deepcopy(model), tok, lab.make_problems("train", 16), profile=TINY, show_progress=False
    )


def test_history_is_seeded_and_the_ablation_changes_only_the_mask(start, monkeypatch):
    a, b = _run(start), _run(start)
    assert KEYS <= set(a.history[0]) and [h["step"] for h in a.history] == [1, 2]
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b.history]
    assert a.trainer == "tools" and a.checkpoint_name == "tools" and set(a.info["start"]) == set(T.EVAL_KEYS)
    masks = []
    real = T.rlvr.rlvr_policy_loss

    def spy(logp, old_logp, advantages, mask, **kw):
        masks.append(mask.clone())
        return real(logp, old_logp, advantages, mask, **kw)

    monkeypatch.setattr(T.rlvr, "rlvr_policy_loss", spy)
    _run(start, max_steps=1, eval_every=0, prompts_per_step=4)
    _run(start, max_steps=1, eval_every=0, prompts_per_step=4, train_on_env_tokens=True)
    env, plain = masks
    assert env.shape == plain.shape and (env <= plain).all()
    assert int((plain - env).sum()) > 0, "no episode of the step called the tool"


@pytest.mark.slow
def test_a_short_run_improves_heldout_accuracy(start):
    """12 steps of 8 problems x 8 episodes on the start model: held-out accuracy (64 problems)
    rises by at least 0.15 and the model calls the tool more often."""
    run = _run(start, max_steps=12, prompts_per_step=8, num_generations=8, eval_size=64, eval_every=0)
    before, after = run.info["start"], run.history[-1]
    assert after["eval_accuracy"] >= before["accuracy"] + 0.15, (before, after)
    assert after["eval_tool_call_rate"] > before["tool_call_rate"]


def test_gpu_path_on_standins(gpu_profile, tmp_path):
    """The gpu profile's code path (its tool model, lengths and learning rate) on the stand-ins."""
    import json

    cfg = T.ToolConfig.from_profile(gpu_profile, "quick")
    assert (cfg.max_completion_length, cfg.learning_rate, cfg.max_steps) == (16, 1e-6, 2)
    out = T.quick_train(gpu_profile, "quick", out_dir=tmp_path / "t", num_generations=2, train_size=8)
    info = json.loads((out / "training_info.json").read_text())
    assert info["profile"] == "gpu" and info["steps"] == 2 and info["trainer"] == "tools"
    assert set(info["start"]) == set(T.EVAL_KEYS) and info["start_model"] == "start model"
