"""Plausible wrong implementations of every exercise, the catalogue that two tests share:
test_checks.py asserts that each fails its visible check with a hint naming the property, and
test_hidden_cases.py that each loses points on the grader's hidden cases.

Each entry of WRONG / VISIBLE_ONLY: (exercise, what is wrong, the wrong function, a phrase the
failure's hint must contain -- the property that failed, never the answer). Most wrap the
solution and change one thing. Instructor-only: it imports solutions/."""

from __future__ import annotations

import functools
import math
import re

import torch
import torch.nn.functional as F

from solutions import dpo as S_dpo
from solutions import grpo as S_grpo
from solutions import kl as S_kl
from solutions import ppo as S_ppo
from solutions import reward_model as S_rm
from solutions import rewards as S_rw
from solutions import rlvr as S_rlvr
from solutions import sft as S_sft
from solutions import tools as S_tools

WRONG: list[tuple[str, str, object, str]] = []


def wrong(name: str, label: str, phrase: str):
    def deco(f):
        WRONG.append((name, label, f, phrase))
        return f

    return deco


def variants(name: str, impl, rows) -> None:
    """Register impl(..., bug=b) for each (label, b, phrase) row: one function, several bugs."""
    for label, bug, phrase in rows:
        WRONG.append((name, label, functools.partial(impl, bug=bug), phrase))


def _texts(completions):
    return S_rw.as_text(completions)


def _last_int(x, pattern=r"-?\d+", commas=True):
    s = str(x).replace(",", "") if commas else str(x)
    found = re.findall(pattern, s)
    return int(found[-1]) if found else None


# 1.1 format_reward
@wrong("format_reward", "re.search: text after the answer accepted", "WHOLE")
def _w_format_search(completions, **kw):
    return [1.0 if re.search(S_rw.FORMAT_PATTERN, t.strip()) else -1.0 for t in _texts(completions)]


@wrong("format_reward", "no strip", "whitespace")
def _w_format_nostrip(completions, **kw):
    return [1.0 if re.fullmatch(S_rw.FORMAT_PATTERN, t) else -1.0 for t in _texts(completions)]


@wrong("format_reward", "1 / 0 instead of +1 / -1", "penalty")
def _w_format_01(completions, **kw):
    return [max(v, 0.0) for v in S_rw.format_reward(completions)]


# 1.2 correctness_reward
def _correct(completions, answer, pick=-1, pattern=r"-?\d+", commas=True):
    if len(completions) != len(answer):
        raise ValueError("length mismatch")
    out = []
    for c, a in zip(_texts(completions), answer):
        s = c.replace(",", "") if commas else c
        got = re.findall(pattern, s)
        want = a if isinstance(a, int) else _last_int(a, pattern, commas)
        out.append(1.0 if got and want is not None and int(got[pick]) == int(want) else 0.0)
    return out


wrong("correctness_reward", "first integer", "LAST")(
    lambda completions, answer, **kw: _correct(completions, answer, pick=0)
)
wrong("correctness_reward", r"\d+ without the minus sign", "minus")(
    lambda completions, answer, **kw: _correct(completions, answer, pattern=r"\d+")
)
wrong("correctness_reward", "commas kept ('1,000' read as 000)", "comma")(
    lambda completions, answer, **kw: _correct(completions, answer, commas=False)
)

# 1.3 sentiment_reward
wrong("sentiment_reward", "a score in [-1, 1]", "PROBABILITY")(
    lambda completions, **kw: [2 * p - 1 for p in S_rw.sentiment_reward(completions)]
)
wrong("sentiment_reward", "negative probability 1 - p", "PROBABILITY")(
    lambda completions, **kw: [1 - p for p in S_rw.sentiment_reward(completions)]
)


# 1.4 repetition_penalty
def _rep(completions, lower=True, sep=None, one_minus=True):
    out = []
    for text in _texts(completions):
        words = (text.lower() if lower else text).split(sep) if text else []
        share = len(set(words)) / len(words) if words else 1.0
        out.append((1.0 - share) if one_minus else (share if words else 0.0))
    return out


wrong("repetition_penalty", "case-sensitive", "case")(
    lambda completions, **kw: _rep(completions, lower=False)
)
wrong("repetition_penalty", "split(' ') instead of split()", "ANY run of whitespace")(
    lambda completions, **kw: _rep(completions, sep=" ")
)
wrong("repetition_penalty", "unique / total (no 1 -)", "NO penalty")(
    lambda completions, **kw: _rep(completions, one_minus=False)
)


# 1.5 length_penalty
@wrong("length_penalty", "exclusive bounds", "inclusive")
def _w_length_exclusive(completions, min_words=4, max_words=40, **kw):
    return [0.0 if min_words < len(t.split()) < max_words else -1.0 for t in _texts(completions)]


@wrong("length_penalty", "ignores min_words / max_words", "min_words")
def _w_length_fixed(completions, min_words=4, max_words=40, **kw):
    return S_rw.length_penalty(completions)


@wrong("length_penalty", "split(' ') instead of split()", "ANY run of whitespace")
def _w_length_split(completions, min_words=4, max_words=40, **kw):
    return [0.0 if min_words <= len(t.split(" ")) <= max_words else -1.0 for t in _texts(completions)]


# 1.6 exponential_shaping
def _shape(scores, temperature, f):
    if temperature <= 0:
        raise ValueError("temperature")
    if isinstance(scores, torch.Tensor):
        return f(scores, temperature)
    return [float(f(torch.tensor(float(s)), temperature)) for s in scores]


wrong("exponential_shaping", "multiplies by the temperature", "DIVIDED")(
    lambda scores, temperature=1.0: _shape(scores, temperature, lambda s, T: torch.exp(s * T) - 1)
)
wrong("exponential_shaping", "forgets the - 1", "MINUS 1")(
    lambda scores, temperature=1.0: _shape(scores, temperature, lambda s, T: torch.exp(s / T))
)


@wrong("exponential_shaping", "a tensor in, a list out", "tensor in")
def _w_shaping_list(scores, temperature=1.0):
    s = scores.tolist() if isinstance(scores, torch.Tensor) else scores
    return S_rw.exponential_shaping(s, temperature)


# 1.7 combine_rewards
def _combine(reward_funcs, weights, use_weights=True, pass_kwargs=True, mean=False):
    funcs, ws = list(reward_funcs), [float(w) for w in weights]
    if not funcs or len(funcs) != len(ws):
        raise ValueError("bad")

    def combined(completions, **kwargs):
        total = [0.0] * len(completions)
        for f, w in zip(funcs, ws):
            vals = f(completions, **kwargs) if pass_kwargs else f(completions)
            total = [t + (w if use_weights else 1.0) * float(v) for t, v in zip(total, vals)]
        return [t / len(funcs) for t in total] if mean else total

    return combined


wrong("combine_rewards", "ignores the weights", "ITS weight")(lambda f, w: _combine(f, w, use_weights=False))
wrong("combine_rewards", "keyword arguments not passed on", "keyword arguments")(
    lambda f, w: _combine(f, w, pass_kwargs=False)
)
wrong("combine_rewards", "weighted mean instead of sum", "summed")(lambda f, w: _combine(f, w, mean=True))


# 1.8 reinforce_loss
def _reinforce(logprobs, rewards, baseline=None, *, bug):
    if logprobs.dim() != 1 or rewards.shape != logprobs.shape or baseline not in (None, "mean"):
        if not isinstance(baseline, (int, float)):
            raise ValueError("reinforce_loss: bad input")
    R = rewards.float()
    b = R.mean() if baseline == "mean" else float(baseline or 0.0)
    if bug == "ignored" or (bug == "float-ignored" and not isinstance(b, torch.Tensor)):
        b = 0.0
    if bug == "attached":
        A = R - b  # nothing detached
    elif bug == "baseline-attached":
        A = R.detach() - b  # the batch mean keeps its graph
    else:
        A = (R + b if bug == "added" else R - b).detach()
    if bug == "std" and baseline == "mean" and len(R) > 1:
        A = A / R.detach().std()
    if bug == "outer":
        A = A.unsqueeze(-1)  # [B, 1] * [B] broadcasts to [B, B]
    per_sample = -(A * logprobs)
    return {"sign": -per_sample.mean(), "sum": per_sample.sum(), "vector": per_sample}.get(
        bug, per_sample.mean()
    )


variants(
    "reinforce_loss",
    _reinforce,
    [
        ("wrong sign (gradient ascent on the loss)", "sign", "sign"),
        ("sum instead of mean", "sum", "MEAN (not the sum)"),
        ("one loss per sample, no mean", "vector", "a scalar"),
        ("advantages not detached", "attached", "constants of the update"),
        ("baseline not detached", "baseline-attached", "constants of the update"),
        ("baseline ignored", "ignored", "subtracts the batch mean"),
        ("a number as baseline ignored", "float-ignored", "SUBTRACTED"),
        ("baseline added", "added", "subtracts the batch mean"),
        ("divides by the std (GRPO habit)", "std", "standard deviation"),
        (
            "rewards [B, 1]: outer product, mean over the wrong axes",
            "outer",
            "advantage times log-probability",
        ),
    ],
)

# 2.1 token_logprobs
wrong("token_logprobs", "probabilities, not log-probabilities", "log-probabilities")(
    lambda logits, tokens: S_kl.token_logprobs(logits, tokens).exp()
)


@wrong("token_logprobs", "softmax().log() (-inf for large logits)", "not finite")
def _w_tlp_unstable(logits, tokens):
    S_kl.token_logprobs(logits, tokens)  # shape checks
    return torch.softmax(logits, -1).log().gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@wrong("token_logprobs", "shifts by one like a causal-LM loss", "SAME position")
def _w_tlp_shift(logits, tokens):
    return S_kl.token_logprobs(logits[:, :-1], tokens[:, 1:])


@wrong("token_logprobs", "normalises over time instead of the vocabulary", "vocabulary")
def _w_tlp_dim(logits, tokens):
    S_kl.token_logprobs(logits, tokens)
    return F.log_softmax(logits, dim=1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


# 2.2 kl_estimate
wrong("kl_estimate", "log r = logp - ref_logp", "ref_logp - logp")(
    lambda logp, ref_logp, kind="k3": S_kl.kl_estimate(ref_logp, logp, kind)
)
wrong("kl_estimate", "k2 without the 1/2", "HALF")(
    lambda logp, ref_logp, kind="k3": S_kl.kl_estimate(logp, ref_logp, kind) * (2 if kind == "k2" else 1)
)
wrong("kl_estimate", "default kind k1", "default")(
    lambda logp, ref_logp, kind="k1": S_kl.kl_estimate(logp, ref_logp, kind)
)

# 2.3 exact_kl
wrong("exact_kl", "KL(q || p)", "FIRST argument")(
    lambda p_logits, q_logits: S_kl.exact_kl(q_logits, p_logits)
)


@wrong("exact_kl", "softmax().log() (nan for large logits)", "not finite")
def _w_exact_kl_unstable(p_logits, q_logits):
    S_kl.exact_kl(p_logits, q_logits)
    p, q = torch.softmax(p_logits, -1), torch.softmax(q_logits, -1)
    return (p * (p.log() - q.log())).sum(-1)


wrong("exact_kl", "sums over every dimension", "LAST dimension")(
    lambda p_logits, q_logits: S_kl.exact_kl(p_logits, q_logits).sum()
)


# 2.4 kl_penalized_rewards
@wrong("kl_penalized_rewards", "score at index -1 (padding)", "LAST")
def _w_klr_minus1(scores, logp, ref_logp, mask, beta):
    r = S_kl.kl_penalized_rewards(torch.zeros_like(scores), logp, ref_logp, mask, beta)
    r[:, -1] += scores
    return r


@wrong("kl_penalized_rewards", "penalty on padding too", "padding stays exactly 0")
def _w_klr_nomask(scores, logp, ref_logp, mask, beta):
    r = S_kl.kl_penalized_rewards(scores, logp, ref_logp, mask, beta)
    return r - beta * (logp - ref_logp) * (1 - mask.to(logp.dtype))


wrong("kl_penalized_rewards", "+beta: rewards the drift", "MORE likely")(
    lambda scores, logp, ref_logp, mask, beta: S_kl.kl_penalized_rewards(scores, logp, ref_logp, mask, -beta)
)


@wrong("kl_penalized_rewards", "accepts an all-zero mask row", "ValueError")
def _w_klr_empty(scores, logp, ref_logp, mask, beta):
    keep = mask.sum(-1) > 0
    r = torch.zeros_like(logp)
    r[keep] = S_kl.kl_penalized_rewards(scores[keep], logp[keep], ref_logp[keep], mask[keep], beta)
    return r


# 3.1 tokenize_prompt_and_completion
def _tok(prompts, completions, tokenizer, *, bug):
    eos, joined, left = bug == "eos", bug == "joined", bug == "left"
    shift_labels, shift_mask = bug != "labels-unshifted", bug != "mask-unshifted"
    if len(prompts) != len(completions):
        raise ValueError("mismatch")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seqs, comp = [], []
    for p, c in zip(prompts, completions):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(c + (tokenizer.eos_token if eos else ""), add_special_tokens=False)["input_ids"]
        full = tokenizer(p + c, add_special_tokens=False)["input_ids"] if joined else p_ids + c_ids
        seqs.append(full)
        comp.append([0] * len(p_ids) + [1] * (len(full) - len(p_ids)))
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    cm = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, comp)):
        sl = slice(L - len(s), L) if left else slice(0, len(s))
        ids[i, sl], cm[i, sl] = torch.tensor(s), torch.tensor(m)
    return {
        "input_ids": ids[:, :-1],
        "labels": ids[:, 1:] if shift_labels else ids[:, :-1],
        "completion_mask": cm[:, 1:] if shift_mask else cm[:, :-1],
    }


variants(
    "tokenize_prompt_and_completion",
    _tok,
    [
        ("labels not shifted", "labels-unshifted", "shifted by one"),
        ("appends EOS", "eos", "EOS token"),
        ("tokenizes the joined string", "joined", "ONE string"),
        ("mask not shifted with the labels", "mask-unshifted", "LABELS"),
        ("left padding", "left", "RIGHT"),
    ],
)


# 3.2 masked_mean
def _mm(x, mask, dim, how):
    S_sft.masked_mean(x, mask, dim)  # the solution's input checks
    m = mask.to(x.dtype)
    if how == "numel":
        return (x * m).mean() if dim is None else (x * m).mean(dim)
    if how == "row-means" and dim is None:
        return ((x * m).sum(-1) / m.sum(-1)).mean()
    if how == "no-dim":
        return (x * m).sum() / m.sum()
    return S_sft.masked_mean(x, mask, dim)


wrong("masked_mean", "divides by every element", "number of masked entries")(
    lambda x, mask, dim=None: _mm(x, mask, dim, "numel")
)
wrong("masked_mean", "dim=None as a mean of per-row means", "weighs the same")(
    lambda x, mask, dim=None: _mm(x, mask, dim, "row-means")
)
wrong("masked_mean", "ignores dim", "one mean per row")(lambda x, mask, dim=None: _mm(x, mask, dim, "no-dim"))


# 3.3 sft_loss
def _nll(logits, labels, mask):
    safe = torch.where(mask != 0, labels, torch.zeros_like(labels))
    return -F.log_softmax(logits, -1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)


wrong("sft_loss", "mean of per-sequence means", "weighs the same")(
    lambda logits, labels, mask: -S_dpo.sequence_logprobs(logits, labels, mask, average=True).mean()
)
wrong("sft_loss", "mean over every position (padding too)", "completion tokens")(
    lambda logits, labels, mask: _nll(logits, labels, mask).mean()
)
wrong("sft_loss", "sum instead of mean", "completion tokens")(
    lambda logits, labels, mask: (_nll(logits, labels, mask) * mask).sum()
)
wrong("sft_loss", "looks up the -100 labels", "-100")(
    lambda logits, labels, mask: S_sft.masked_mean(
        -F.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1), mask
    )
)


# 3.4 sft_train_step
def _sft_step(model, batch, optimizer, max_grad_norm=1.0, order="right", clip=True, all_tokens=False):
    for k in ("input_ids", "labels", "completion_mask"):
        batch[k]
    model.train()
    mask = torch.ones_like(batch["completion_mask"]) if all_tokens else batch["completion_mask"]
    loss = S_sft.sft_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"], mask)
    if order == "right":
        optimizer.zero_grad()
    loss.backward()
    if order == "after-backward":
        optimizer.zero_grad()
    if clip and max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


wrong("sft_train_step", "zero_grad after backward", "did not move")(
    lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
        model, batch, optimizer, max_grad_norm, order="after-backward"
    )
)
wrong("sft_train_step", "no gradient clipping", "clipped")(
    lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
        model, batch, optimizer, max_grad_norm, clip=False
    )
)
wrong("sft_train_step", "loss on every token", "completion tokens only")(
    lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
        model, batch, optimizer, max_grad_norm, all_tokens=True
    )
)

# 4.1 bradley_terry_loss
wrong("bradley_terry_loss", "adds the margin", "LARGER")(
    lambda r_chosen, r_rejected, margin=None: S_rm.bradley_terry_loss(
        r_chosen, r_rejected, None if margin is None else -margin
    )
)
wrong("bradley_terry_loss", "rejected minus chosen", "CHOSEN")(
    lambda r_chosen, r_rejected, margin=None: S_rm.bradley_terry_loss(r_rejected, r_chosen, margin)
)
wrong("bradley_terry_loss", "log(sigmoid()) (inf for a large gap)", "not finite")(
    lambda r_chosen, r_rejected, margin=None: (
        -torch.log(torch.sigmoid(r_chosen - r_rejected - (0.0 if margin is None else margin))).mean()
        if r_chosen.shape == r_rejected.shape
        else S_rm.bradley_terry_loss(r_chosen, r_rejected)
    )
)
wrong("bradley_terry_loss", "sum over pairs", "mean over pairs")(
    lambda r_chosen, r_rejected, margin=None: (
        S_rm.bradley_terry_loss(r_chosen, r_rejected, margin) * r_chosen.numel()
    )
)


# 4.2 preference_accuracy
@wrong("preference_accuracy", "ties count as right", "tie")
def _w_pref_acc(r_chosen, r_rejected):
    if r_chosen.numel() == 0 or r_chosen.shape != r_rejected.shape:
        raise ValueError("empty / shapes")
    return (r_chosen >= r_rejected).float().mean().item()


wrong("preference_accuracy", "a count, not a fraction", "fraction")(
    lambda r_chosen, r_rejected: S_rm.preference_accuracy(r_chosen, r_rejected) * r_chosen.numel()
)


# 4.3 last_token_pool
def _pool(values, attention_mask, index):
    if (attention_mask.sum(-1) == 0).any() or values.shape[:2] != attention_mask.shape:
        raise ValueError("empty row / shapes")
    return values[torch.arange(values.shape[0]), index(attention_mask)]


wrong("last_token_pool", "position -1 (padding)", "padding")(
    lambda values, attention_mask: _pool(values, attention_mask, lambda m: torch.full((m.shape[0],), -1))
)
wrong("last_token_pool", "index = number of real tokens (off by one)", "LAST real token")(
    lambda values, attention_mask: _pool(
        values, attention_mask, lambda m: m.sum(-1).clamp(max=m.shape[1] - 1)
    )
)


# 5.1 compute_gae
def _gae(rewards, values, mask, gamma=1.0, lam=0.95, *, bug):
    use_mask, backward, add_values, use_lam = (
        bug != b for b in ("no-mask", "forward", "no-values", "no-lam")
    )
    m = mask.to(rewards.dtype) if use_mask else torch.ones_like(rewards)
    r, v = rewards.detach() * m, values.detach() * m
    if bug == "outputs-only":  # padding's rewards and values flow into the recursion
        r, v = rewards.detach(), values.detach()
    T = r.shape[-1]
    adv, last = torch.zeros_like(r), torch.zeros_like(r[..., 0])
    for t in reversed(range(T)) if backward else range(T):
        next_v = v[..., t + 1] if t + 1 < T else torch.zeros_like(last)
        last = r[..., t] + gamma * next_v - v[..., t] + gamma * (lam if use_lam else 1.0) * last
        adv[..., t] = last
    adv = adv * m
    return adv, (adv + v) if add_values else adv


variants(
    "compute_gae",
    _gae,
    [
        ("ignores the mask", "no-mask", "padding"),
        ("runs forward in time", "forward", "FUTURE"),
        ("returns = advantages", "no-values", "PLUS"),
        ("ignores lam", "no-lam", "gamma * lam"),
        ("masks the outputs only, not the rewards and values", "outputs-only", "padding"),
    ],
)


# 5.2 whiten
def _whiten(x, mask, shift_mean=True, ddof=1, use_mask=True, shift=True):
    m = mask.to(x.dtype) if use_mask else torch.ones_like(x)
    n = mask.to(x.dtype).sum()
    if n < 2:
        raise ValueError("too few")
    n = m.sum()
    mean = (x * m).sum() / n
    var = ((x - mean) ** 2 * m).sum() / (n - ddof)
    out = (x - mean) / torch.sqrt(var + 1e-8)
    return out if (shift_mean or not shift) else out + mean


wrong("whiten", "biased variance", "Bessel")(
    lambda x, mask, shift_mean=True: _whiten(x, mask, shift_mean, ddof=0)
)
wrong("whiten", "statistics over every entry", "masked entries only")(
    lambda x, mask, shift_mean=True: _whiten(x, mask, shift_mean, use_mask=False)
)
wrong("whiten", "ignores shift_mean", "original mean")(
    lambda x, mask, shift_mean=True: _whiten(x, mask, shift_mean, shift=False)
)


# 5.3 ppo_policy_loss
def _pg(logp, old_logp, advantages, mask, clip_eps=0.2, *, bug):
    how = bug
    ratio = torch.exp(logp - old_logp)
    un, cl = -advantages * ratio, -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    per = {"min": torch.minimum(un, cl), "unclipped": un, "clipped": cl}.get(how, torch.maximum(un, cl))
    loss = per.mean() if how == "unmasked" else S_sft.masked_mean(per, mask)
    frac = S_sft.masked_mean(((cl >= un) if how == "ties-clipped" else (cl > un)).float(), mask)
    return loss, frac


variants(
    "ppo_policy_loss",
    _pg,
    [
        ("min instead of max", "min", "LARGER"),
        ("unclipped term only", "unclipped", "LARGER"),
        ("clipped term only", "clipped", "LARGER"),
        ("mean over padding too", "unmasked", "response tokens only"),
        ("clip fraction counts ties", "ties-clipped", "strictly larger"),
    ],
)


# 5.4 ppo_value_loss
def _vl(values, old_values, returns, mask, clip_range=0.2, *, bug):
    how = bug
    v_clip = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    a, b = (values - returns) ** 2, (v_clip - returns) ** 2
    per = {"min": torch.minimum(a, b), "unclipped": a}.get(how, torch.maximum(a, b))
    if how == "unmasked":
        return 0.5 * per.mean()
    return (1.0 if how == "no-half" else 0.5) * S_sft.masked_mean(per, mask)


variants(
    "ppo_value_loss",
    _vl,
    [
        ("no 0.5", "no-half", "times 0.5"),
        ("min instead of max", "min", "LARGER"),
        ("unclipped only", "unclipped", "LARGER"),
        ("mean over padding too", "unmasked", "response tokens"),
    ],
)


# 5.5 entropy_from_logits
@wrong("entropy_from_logits", "-sum p log p (nan for large logits)", "not finite")
def _w_entropy_naive(logits):
    p = torch.softmax(logits, -1)
    return -(p * p.log()).sum(-1)


wrong("entropy_from_logits", "sign flipped", ">= 0")(lambda logits: -S_ppo.entropy_from_logits(logits))
wrong("entropy_from_logits", "sums over every dimension", "last dimension")(
    lambda logits: S_ppo.entropy_from_logits(logits).sum()
)


# 5.6 ppo_minibatch_loss
def _mb(logits, values, batch, clip_range=0.2, cliprange_value=0.2, vf_coef=0.1, entropy_coef=0.0, *, bug):
    loss, stats = S_ppo.ppo_minibatch_loss(
        logits, values, batch, clip_range, cliprange_value, vf_coef, entropy_coef
    )
    if bug == "entropy-penalty":
        loss = loss + 2 * entropy_coef * S_sft.masked_mean(S_ppo.entropy_from_logits(logits), batch["mask"])
    if bug == "entropy-unmasked":  # the entropy bonus and stat averaged over every position
        ent = S_ppo.entropy_from_logits(logits)
        masked, every = S_sft.masked_mean(ent, batch["mask"]), ent.mean()
        loss = loss + entropy_coef * (masked - every)
        stats = {**stats, "entropy": every.detach()}
    if bug == "no-vf-coef":
        loss = loss + (1 - vf_coef) * S_ppo.ppo_value_loss(
            values, batch["old_values"], batch["returns"], batch["mask"], cliprange_value
        )
    if bug in ("kl-reversed", "kl-k1"):
        logp = S_kl.token_logprobs(logits, batch["response_ids"]).detach()
        args = (
            (logp, batch["old_logprobs"], "k3")
            if bug == "kl-reversed"
            else (batch["old_logprobs"], logp, "k1")
        )
        stats = {**stats, "approx_kl": S_sft.masked_mean(S_kl.kl_estimate(*args), batch["mask"])}
    return loss, stats


variants(
    "ppo_minibatch_loss",
    _mb,
    [
        ("entropy as a penalty", "entropy-penalty", "BONUS"),
        ("ignores vf_coef", "no-vf-coef", "vf_coef"),
        ("approx_kl = KL(current || old)", "kl-reversed", "KL(old || current)"),
        ("approx_kl with k1", "kl-k1", "k3"),
        ("entropy averaged over padding too", "entropy-unmasked", "must not reach the result"),
    ],
)


# 6.1 group_advantages
def _ga(rewards, group_size, scale="group", eps=1e-4, *, bug):
    if rewards.numel() % group_size or group_size < 2 or scale not in ("group", "batch", "none"):
        raise ValueError("bad input")
    g = rewards.view(group_size, -1).t() if bug == "interleaved" else rewards.view(-1, group_size)
    centre = rewards.mean() if bug == "batch-mean" and scale == "batch" else g.mean(-1, keepdim=True)
    adv = g - centre
    e = 0.0 if bug == "no-eps" else eps
    if scale == "group":
        adv = adv / (g.std(-1, unbiased=bug != "population", keepdim=True) + e)
    elif scale == "batch":
        adv = adv / (rewards.std(unbiased=bug != "population") + e)
    return adv.t().reshape(-1) if bug == "interleaved" else adv.reshape(-1)


variants(
    "group_advantages",
    _ga,
    [
        ("population std", "population", "Bessel"),
        ("interleaved groups", "interleaved", "one prompt's group"),
        ("no eps", "no-eps", "eps"),
        ("'batch' subtracts the batch mean", "batch-mean", "GROUP's mean"),
    ],
)


# 6.2 grpo_loss
def _gl(
    logp,
    old_logp,
    ref_logp,
    advantages,
    mask,
    clip_eps=0.2,
    beta=0.04,
    loss_type="grpo",
    max_completion_length=None,
    *,
    bug,
):
    if loss_type not in ("grpo", "bnpo", "dr_grpo", "dapo") or advantages.shape != logp.shape[:1]:
        raise ValueError("bad input")
    ratio = torch.exp(logp - old_logp)
    A = advantages.unsqueeze(-1)
    un, cl = ratio * A, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A
    per = -{"clipped": cl, "unclipped": un}.get(bug, torch.minimum(un, cl))
    if beta != 0 and bug == "kl-unmasked":  # KL averaged over every position, added at the end
        loss = _gl(
            logp,
            old_logp,
            ref_logp,
            advantages,
            mask,
            clip_eps,
            0.0,
            loss_type,
            max_completion_length,
            bug="",
        )
        return loss + beta * S_kl.kl_estimate(logp, ref_logp, "k3").mean()
    if beta != 0:
        per = per + beta * (
            S_kl.kl_estimate(ref_logp, logp, "k3")
            if bug == "kl-sign"
            else S_kl.kl_estimate(logp, ref_logp, "k3")
        )
    m = mask.to(per.dtype)
    if loss_type == "grpo" and bug == "bnpo":
        loss_type = "bnpo"
    if loss_type == "grpo":
        return per.mean(-1).mean() if bug == "unmasked" else S_sft.masked_mean(per, m, dim=-1).mean()
    if loss_type in ("bnpo", "dapo"):
        return S_sft.masked_mean(per, m)
    L = (
        mask.shape[-1]
        if (max_completion_length is None or bug == "ignore-max-len")
        else max_completion_length
    )
    return (per * m).sum() / (logp.shape[0] * L)


variants(
    "grpo_loss",
    _gl,
    [
        ("'grpo' reduced like 'bnpo'", "bnpo", "per sequence first"),
        ("clipped term alone, without the min", "clipped", "MINIMUM"),
        ("unclipped term alone", "unclipped", "MINIMUM"),
        ("KL with log r = logp - ref_logp", "kl-sign", "ref_logp - logp"),
        ("'dr_grpo' ignores max_completion_length", "ignore-max-len", "max_completion_length"),
        ("'grpo' averages over padding too", "unmasked", "ITS completion tokens"),
        ("KL averaged over every position, padding too", "kl-unmasked", "must not reach the result"),
    ],
)


# 6.3 grpo_step
def _gs(
    model,
    optimizer,
    rollout,
    advantages,
    old_logp=None,
    ref_logp=None,
    *,
    clip_eps=0.2,
    beta=0.04,
    loss_type="grpo",
    max_completion_length=None,
    max_grad_norm=1.0,
    temperature=1.0,
    bug=None,
):
    from course_lib.core.sampling import completion_logits

    ids = rollout.completion_ids
    if advantages.shape != ids.shape[:1]:
        raise ValueError("advantages")
    model.train()
    logp = S_kl.token_logprobs(
        completion_logits(model, rollout, 1.0 if bug == "no-temperature" else temperature), ids
    )
    if old_logp is None or bug == "ignore-old":
        old_logp = logp if bug == "not-detached" else logp.detach()
    loss = S_grpo.grpo_loss(
        logp,
        old_logp,
        ref_logp,
        advantages,
        rollout.completion_mask,
        clip_eps,
        beta,
        loss_type,
        max_completion_length,
    )
    optimizer.zero_grad()
    loss.backward()
    if bug == "no-clip":
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    else:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        if bug == "norm-after":
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    optimizer.step()
    return {"loss": loss.item(), "grad_norm": float(norm), "logp": logp.detach()}


variants(
    "grpo_step",
    _gs,
    [
        ("ignores old_logp", "ignore-old", "given"),
        ("ignores temperature", "no-temperature", "temperature"),
        ("old_logp = logp, not detached (zero gradient)", "not-detached", "ZERO"),
        ("no gradient clipping", "no-clip", "clipped to max_grad_norm"),
        ("grad_norm after clipping", "norm-after", "AFTER clipping"),
    ],
)


# 7.1 sequence_logprobs
def _slp(logits, labels, mask, average=False, *, bug):
    if labels.shape != logits.shape[:2]:
        raise ValueError("shapes")
    if bug == "lookup-100":
        tok = F.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    else:
        tok = -_nll(logits, labels, mask)
    m = torch.ones_like(tok) if bug == "unmasked" else mask.to(tok.dtype)
    avg = {"always-average": True, "never-average": False}.get(bug, average)
    return (tok * m).sum(-1) / (m.sum(-1) if avg else 1.0)


variants(
    "sequence_logprobs",
    _slp,
    [
        ("always averages", "always-average", "SUM"),
        ("ignores average", "never-average", "ITS number"),
        ("sums over padding too", "unmasked", "padding excluded"),
        ("looks up the -100 labels", "lookup-100", "-100"),
    ],
)


# 7.2 dpo_loss
def _dpo(
    pi_chosen,
    pi_rejected,
    ref_chosen,
    ref_rejected,
    beta=0.1,
    loss_type="sigmoid",
    label_smoothing=0.0,
    *,
    bug,
):
    pc, pr, rc, rr, ls = pi_chosen, pi_rejected, ref_chosen, ref_rejected, label_smoothing
    losses, c, r = S_dpo.dpo_loss(pc, pr, rc, rr, beta, loss_type, ls)  # the input checks
    h = (pc - pr) - (rc - rr)
    if bug == "h-sign":
        h = -h
    if loss_type == "sigmoid":
        sign = -1 if bug == "ls-sign" else 1
        losses = -(1 - ls) * F.logsigmoid(beta * h) - sign * ls * F.logsigmoid(-beta * h)
        if bug == "beta-outside":
            losses = -beta * F.logsigmoid(h)
    elif loss_type == "ipo":
        losses = (beta * h - 1 / (2 * beta)) ** 2 if bug == "ipo-beta-h" else (h - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - (h if bug == "hinge-no-beta" else beta * h))
    if bug == "rewards-no-beta":
        c, r = (pc - rc).detach(), (pr - rr).detach()
    return losses, c, r


variants(
    "dpo_loss",
    _dpo,
    [
        ("beta outside the sigmoid", "beta-outside", "INSIDE"),
        ("h = reference margin - policy margin", "h-sign", "policy's margin"),
        ("label-smoothing term with a plus sign", "ls-sign", "SWAPPED"),
        ("ipo with beta * h", "ipo-beta-h", "not beta*h"),
        ("hinge without beta", "hinge-no-beta", "relu(1 - beta * h)"),
        ("rewards without beta", "rewards-no-beta", "beta times"),
    ],
)


# 7.3 dpo_batch_loss
def _dpob(model, batch, beta=0.1, loss_type="sigmoid", label_smoothing=0.0, average=False, *, bug):
    if batch["input_ids"].shape[0] % 2 or batch["ref_logps"].shape != batch["input_ids"].shape[:1]:
        raise ValueError("bad batch")
    logps = S_dpo.sequence_logprobs(
        model(input_ids=batch["input_ids"]).logits,
        batch["labels"],
        batch["completion_mask"],
        False if bug == "ignore-average" else average,
    )
    ref = batch["ref_logps"]

    def split(x, interleave):
        return (x[0::2], x[1::2]) if interleave else x.chunk(2)

    pc, pr = split(logps, bug == "interleaved")
    rc, rr = split(ref, bug in ("interleaved", "ref-interleaved"))
    if bug == "swapped":
        pc, pr, rc, rr = pr, pc, rr, rc
    losses, c, r = S_dpo.dpo_loss(pc, pr, rc, rr, beta, loss_type, label_smoothing)
    return losses.mean(), {"chosen_rewards": c, "rejected_rewards": r, "logps": logps.detach()}


variants(
    "dpo_batch_loss",
    _dpob,
    [
        ("pairs as interleaved rows", "interleaved", "row B + i"),
        ("ignores average", "ignore-average", "average"),
        ("chosen and rejected swapped", "swapped", "chosen"),
        ("ref_logps split differently from the policy", "ref-interleaved", "alike"),
    ],
)


# 9.1 think_format_reward
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def _think(completion, *, bug):
    text = completion if bug == "no-strip" else completion.strip()
    flags = 0 if bug == "no-dotall" else re.DOTALL
    pat = r"<think>(.*)</think>\s*<answer>(.*)</answer>"
    m = re.search(pat, text, flags) if bug == "search" else re.fullmatch(pat, text, flags)
    if m is None:
        return False if bug == "bool" else 0.0
    parts = m.groups()
    ok = all(
        (bug == "empty-ok" or p.strip()) and (bug == "tags-ok" or not any(tg in p for tg in _TAGS))
        for p in parts
    )
    if bug == "bool":
        return ok
    return 1.0 if ok else 0.0


variants(
    "think_format_reward",
    _think,
    [
        ("re.search: text around the blocks accepted", "search", "WHOLE"),
        ("empty think / answer accepted", "empty-ok", "non-empty"),
        ("tags inside the blocks accepted", "tags-ok", "no tag inside"),
        ("wildcard does not match newlines", "no-dotall", "span lines"),
        ("outer whitespace not stripped", "no-strip", "whitespace"),
        ("returns a bool", "bool", "plain Python float"),
    ],
)


# 9.2 answer_reward
def _answer(completion, answer, *, bug):
    pat = {"greedy": r"<answer>(.*)</answer>", "unclosed-ok": r"<answer>(.*?)(?:</answer>|$)"}.get(
        bug, r"<answer>(.*?)</answer>"
    )
    blocks = re.findall(pat, completion, 0 if bug == "no-dotall" else re.DOTALL)
    if not blocks:
        return 0.0
    got = blocks[0] if bug == "first" else blocks[-1]
    want = str(answer).strip()
    if bug == "substring":
        return 1.0 if want in got else 0.0
    return 1.0 if (got if bug == "no-strip" else got.strip()) == want else 0.0


variants(
    "answer_reward",
    _answer,
    [
        ("the FIRST answer block", "first", "LAST"),
        ("a greedy block spans from the first <answer> to the last </answer>", "greedy", "LAST"),
        ("wildcard does not match newlines", "no-dotall", "span lines"),
        ("substring match", "substring", "exact"),
        ("block contents not stripped", "no-strip", "stripped"),
        ("an unclosed block counts", "unclosed-ok", "both tags"),
    ],
)


# 9.3 sequence_log_ratio
def _slr(logp, old_logp, mask, *, bug):
    S_rlvr.sequence_log_ratio(logp, old_logp, mask)  # the input checks
    d = old_logp - logp if bug == "sign" else logp - old_logp
    m = torch.ones_like(d) if bug == "unmasked" else mask.to(d.dtype)
    den = {"sum": 1.0, "by-T": float(mask.shape[-1])}.get(bug, m.sum(-1))
    s = (d * m).sum(-1) / den
    return s.exp() if bug == "ratio" else s


variants(
    "sequence_log_ratio",
    _slr,
    [
        ("summed, not length-normalised", "sum", "ITS number"),
        ("divided by T, not the row's length", "by-T", "ITS number"),
        ("padding counted", "unmasked", "ITS completion tokens"),
        ("the ratio instead of its log", "ratio", "log of the geometric mean"),
        ("old_logp - logp", "sign", "logp - old_logp"),
    ],
)


# 9.4 rlvr_policy_loss
def _rpl(
    logp,
    old_logp,
    advantages,
    mask,
    eps_low=0.2,
    eps_high=0.2,
    level="token",
    loss_type="grpo",
    ref_logp=None,
    beta=0.0,
    max_completion_length=None,
    *,
    bug,
):
    S_rlvr.rlvr_policy_loss(
        logp, old_logp, advantages, mask, eps_low, eps_high, level, loss_type, ref_logp, beta
    )
    if bug == "symmetric":
        eps_high = eps_low
    if bug == "swapped":
        eps_low, eps_high = eps_high, eps_low
    m = mask.to(logp.dtype)
    if level == "token" or bug == "level-ignored":
        log_w = logp - old_logp
    else:
        log_w = S_rlvr.sequence_log_ratio(logp, old_logp, mask)
        if bug == "seq-sum":
            log_w = log_w * m.sum(-1)
        log_w = log_w.unsqueeze(-1)
    rho = torch.exp(log_w)
    A = advantages.unsqueeze(-1)
    if loss_type == "cispo":
        cap = 1 + eps_high if bug == "cispo-1+eps" else eps_high
        w = torch.clamp(rho, max=cap)
        per = -(w if bug == "cispo-attached" else w.detach()) * A * logp
    else:
        per = -torch.minimum(rho * A, torch.clamp(rho, 1 - eps_low, 1 + eps_high) * A)
    if beta != 0:
        args = (ref_logp, logp) if bug == "kl-sign" else (logp, ref_logp)
        per = per + beta * S_kl.kl_estimate(*args, "k3")
    per = per.expand_as(logp)
    if loss_type == "grpo" or (loss_type == "cispo" and bug == "cispo-grpo"):
        loss = S_sft.masked_mean(per, m, dim=-1).mean()
    elif bug == "seq-dapo-rows" and level == "sequence":
        loss = per[:, 0].mean()
    elif loss_type == "dapo" and bug == "dapo-unmasked-sum":
        loss = per.sum() / m.sum()
    elif loss_type in ("dapo", "cispo"):
        loss = S_sft.masked_mean(per, m)
    else:
        L = max_completion_length or mask.shape[-1]
        loss = (per * m).sum() / (logp.shape[0] * L)
    with torch.no_grad():
        if loss_type == "cispo":
            low, high = torch.zeros_like(rho), ((rho > eps_high) & (A > 0)).to(rho.dtype)
        elif bug == "clip-any-sign":
            low = (rho < 1 - eps_low).to(rho.dtype) * torch.ones_like(A)
            high = (rho > 1 + eps_high).to(rho.dtype) * torch.ones_like(A)
        else:
            low = ((rho < 1 - eps_low) & (A < 0)).to(rho.dtype)
            high = ((rho > 1 + eps_high) & (A > 0)).to(rho.dtype)

        def mean(x):
            x = x.expand_as(logp)
            w = torch.ones_like(x) if bug == "stats-unmasked" else m
            if level == "sequence" and bug != "stats-by-token":
                x, w = x[:, :1], torch.ones_like(x[:, :1])
            return ((x * w).sum() / w.sum().clamp(min=1.0)).item()

        stats = {"clip_ratio_low": mean(low), "clip_ratio_high": mean(high), "mean_ratio": mean(rho)}
    return loss, stats


variants(
    "rlvr_policy_loss",
    _rpl,
    [
        ("symmetric clip: eps_high ignored", "symmetric", "clip-higher"),
        ("eps_low and eps_high swapped", "swapped", "LOWER bound 1 - eps_low acts where A < 0"),
        ("level ignored: always token ratios", "level-ignored", "ONE ratio per completion"),
        ("sequence ratio not length-normalised", "seq-sum", "length-normalised"),
        ("sequence-level 'dapo' averaged over rows", "seq-dapo-rows", "each of its tokens"),
        ("cispo: gradient through the weight", "cispo-attached", "NO gradient"),
        ("cispo: cap at 1 + eps_high", "cispo-1+eps", "cap"),
        ("cispo reduced like 'grpo'", "cispo-grpo", "reduced like 'dapo'"),
        ("KL with log r = logp - ref_logp", "kl-sign", "ref_logp - logp"),
        ("stats counted over padding", "stats-unmasked", "padding"),
        ("sequence-level stats counted per token", "stats-by-token", "over the B completions"),
        ("clipped tokens counted whatever the advantage's sign", "clip-any-sign", "the one the min keeps"),
        ("'dapo' sums the padding too", "dapo-unmasked-sum", "masked sum"),
    ],
)


# 9.5 dynamic_sampling_mask
def _dsm(rewards, group_size, *, bug):
    S_rlvr.dynamic_sampling_mask(rewards, group_size)  # the input checks
    if bug == "batch":
        return (rewards.max() != rewards.min()).repeat(rewards.numel())
    if bug == "interleaved":
        g = rewards.view(group_size, -1).t()
        return (g.amax(-1) != g.amin(-1)).repeat(group_size)
    g = rewards.view(-1, group_size)
    varied = g.amax(-1) != g.amin(-1)
    if bug == "inverted":
        varied = ~varied
    if bug == "per-group":
        return varied
    out = varied.repeat_interleave(group_size)
    return out.float() if bug == "float" else out


variants(
    "dynamic_sampling_mask",
    _dsm,
    [
        ("decided over the whole batch", "batch", "GROUP"),
        ("interleaved groups", "interleaved", "contiguous"),
        ("keeps the groups that agree", "inverted", "not all equal"),
        ("one flag per group", "per-group", "one flag per completion"),
        ("float flags", "float", "bool tensor"),
    ],
)


# 9.6 overlong_penalty
def _olp(lengths, max_completion_length, overlong_buffer, *, bug):
    S_rlvr.overlong_penalty(lengths, max_completion_length, overlong_buffer)  # the input checks
    Lmax, buf = max_completion_length, overlong_buffer
    L = lengths if bug == "int" else lengths.to(torch.float32)
    if bug == "no-eos":  # "the length should not count EOS"
        L = L - 1
    free = Lmax - buf
    ramp = (free - L) // buf if bug == "int" else (free - L) / (buf + 1 if bug == "buffer+1" else buf)
    if bug == "positive":
        ramp = -ramp
    out = torch.where(L <= free, torch.zeros_like(ramp), ramp)
    return out if bug == "no-floor" else torch.where(L <= Lmax, out, torch.full_like(out, -1))


variants(
    "overlong_penalty",
    _olp,
    [
        ("integer arithmetic", "int", "float32"),
        ("a positive ramp", "positive", "NEGATIVE"),
        ("EOS subtracted from the length", "no-eos", "EOS included"),
        ("ramp over buffer + 1 tokens: -1 one token late", "buffer+1", "off by one at a boundary"),
        ("keeps falling past Lmax", "no-floor", "stays at -1.0"),
    ],
)


# 9.7 mask_truncated_completions
def _mtc(completion_mask, is_truncated, *, bug):
    S_rlvr.mask_truncated_completions(completion_mask, is_truncated)  # the input checks
    keep = is_truncated if bug == "inverted" else ~is_truncated
    if bug == "last-token":
        out = completion_mask.clone()
        last = (completion_mask.sum(-1) - 1).clamp(min=0)
        rows = is_truncated.nonzero().squeeze(-1)
        out[rows, last[rows]] = 0
        return out
    if bug == "per-column":
        return completion_mask * keep.to(completion_mask.dtype)
    if bug == "bool":
        return completion_mask.bool() & keep.unsqueeze(1)
    return completion_mask * keep.unsqueeze(1).to(completion_mask.dtype)


variants(
    "mask_truncated_completions",
    _mtc,
    [
        ("keeps only the truncated rows", "inverted", "the flag True means truncated"),
        ("zeroes only the last token", "last-token", "EVERY token of a truncated row"),
        ("one flag per column", "per-column", "per ROW"),
        ("returns a bool mask", "bool", "its own dtype"),
    ],
)


# 10.1 parse_tool_call
def _ptc_terms(call, strip=True, skip_empty=False, is_term=lambda q: re.fullmatch(r"[0-9]+", q)):
    if not call.strip():
        raise S_tools.MalformedToolCall("empty call")
    parts = [p.strip() if strip else p for p in call.split("+")]
    if skip_empty:
        parts = [p for p in parts if p.strip()]
    for p in parts:
        if not is_term(p):
            raise S_tools.MalformedToolCall(f"bad term {p!r}")
    return [int(p) for p in parts]


def _ptc(text, *, bug):
    start = text.find("<tool>")
    if start < 0:
        return [] if bug == "empty-list" else None
    if bug == "greedy":  # one regex over the whole text: runs to the LAST </tool>
        m = re.search(r"<tool>(.*)</tool>", text, re.DOTALL)
        if m is None:
            raise S_tools.MalformedToolCall("unclosed")
        return _ptc_terms(m.group(1))
    if bug == "close-anywhere":  # the first </tool> of the text, even one before the <tool>
        end = text.find("</tool>")
        if end < 0:
            raise S_tools.MalformedToolCall("unclosed")
        return _ptc_terms(text[start + 6 : end] if end > start else "")
    end = text.find("</tool>", start)
    if end < 0:
        if bug == "unclosed-none":
            return None
        raise S_tools.MalformedToolCall("unclosed")
    call = text[start + 6 : end]
    if bug in ("strings", "floats"):
        terms = _ptc_terms(call)
        return [str(x) for x in terms] if bug == "strings" else [float(x) for x in terms]
    if bug == "isdigit":
        return _ptc_terms(call, is_term=str.isdigit)
    if bug == "int-only":  # int() decides: a sign and other scripts' digits pass
        try:
            return [int(p) for p in call.split("+")]
        except ValueError as e:
            raise S_tools.MalformedToolCall(str(e)) from e
    if bug == "value-error":
        try:
            return _ptc_terms(call)
        except S_tools.MalformedToolCall as e:
            raise ValueError(str(e)) from None
    if bug == "skip-empty":
        return _ptc_terms(call, skip_empty=True)
    return _ptc_terms(call, strip=bug != "no-strip")


variants(
    "parse_tool_call",
    _ptc,
    [
        ("greedy .* to the last </tool>", "greedy", "FIRST"),
        ("the first </tool> anywhere, even before the <tool>", "close-anywhere", "AFTER"),
        ("an unclosed call is no call", "unclosed-none", "no </tool> after the <tool>"),
        ("[] when there is no call", "empty-list", "None"),
        ("terms as strings", "strings", "Python ints"),
        ("terms as floats", "floats", "Python ints"),
        ("str.isdigit accepts other scripts' digits", "isdigit", "ASCII digits 0-9 only"),
        ("int() decides what a term is", "int-only", "a sign is not a digit"),
        ("a plain ValueError", "value-error", "not a plain ValueError"),
        ("empty terms skipped", "skip-empty", "an empty term"),
        ("terms not stripped", "no-strip", "whitespace"),
    ],
)


# 10.2 environment_mask
def _em(completion_mask, env_spans, *, bug):
    S_tools.environment_mask(completion_mask, env_spans)  # the input checks
    out = torch.ones_like(completion_mask) if bug == "from-ones" else completion_mask.clone()
    for row, spans in enumerate(env_spans):
        for start, end in spans:
            if bug == "inclusive":
                out[row, start : end + 1] = 0
            elif bug == "all-rows":
                out[:, start:end] = 0
            elif bug == "start-only":
                out[row, start] = 0 if start < end else out[row, start]
            else:
                out[row, start:end] = 0
    return out.bool() if bug == "bool" else out


variants(
    "environment_mask",
    _em,
    [
        ("end inclusive", "inclusive", "END EXCLUSIVE"),
        ("every row's spans on every row", "all-rows", "OWN list of spans"),
        ("starts from ones, not the mask", "from-ones", "start from the completion mask"),
        ("zeroes only each span's first token", "start-only", "END EXCLUSIVE"),
        ("returns a bool mask", "bool", "its own dtype"),
    ],
)


def _em_no_range_check(completion_mask, env_spans):
    if completion_mask.dim() != 2 or len(env_spans) != completion_mask.shape[0]:
        raise ValueError("bad input")
    out = completion_mask.clone()
    for row, spans in enumerate(env_spans):
        for start, end in spans:
            if start > end:
                raise ValueError("start > end")
            out[row, start:end] = 0  # end > T is cut by the slice, start < 0 counts from the end
    return out


WRONG.append(("environment_mask", "spans not checked against 0..T", _em_no_range_check, "out of range"))


# 10.3 tool_reward
def _tr(completion, answer, n_malformed, over_budget, malformed_penalty=0.5, budget_penalty=1.0, *, bug):
    S_tools.tool_reward(completion, answer, n_malformed, over_budget, malformed_penalty, budget_penalty)
    if bug == "number-anywhere":  # "the answer appears in the episode" (the <result> counts)
        base = 1.0 if re.search(rf"(?<!\d){re.escape(str(answer).strip())}(?!\d)", completion) else 0.0
    else:
        base = S_rlvr.answer_reward(completion, answer)
    if bug == "defaults":
        malformed_penalty, budget_penalty = 0.5, 1.0
    penalty = malformed_penalty * (min(n_malformed, 1) if bug == "once" else n_malformed)
    r = base - penalty + (budget_penalty if over_budget and bug == "budget-added" else 0.0)
    if over_budget and bug != "budget-added":
        r -= budget_penalty
    return max(r, 0.0) if bug == "clipped" else float(r)


variants(
    "tool_reward",
    _tr,
    [
        ("the answer anywhere in the episode", "number-anywhere", "answer block"),
        ("one malformed penalty, whatever the count", "once", "EACH malformed"),
        ("the budget penalty added", "budget-added", "subtracted"),
        ("the default penalties, whatever is passed", "defaults", "the arguments"),
        ("clipped at 0", "clipped", "negative"),
    ],
)


# Bugs only the visible checks can see: the grader's cases start each step from a fresh model (no
# stale gradient, dropout off) and compare values and the loss's gradient, not `requires_grad` of
# logged statistics or float-vs-0-d-tensor.
VISIBLE_ONLY: list[tuple[str, str, object, str]] = [
    (
        "sft_train_step",
        "forgets zero_grad",
        lambda model, batch, optimizer, max_grad_norm=1.0: _sft_step(
            model, batch, optimizer, max_grad_norm, order="none"
        ),
        "stale gradient",
    ),
    ("grpo_step", "forgets zero_grad", None, "stale gradient"),
    ("dpo_loss", "rewards not detached", None, "no gradient"),
    (
        "preference_accuracy",
        "returns a tensor",
        lambda r_chosen, r_rejected: S_rm.preference_accuracy(r_chosen, r_rejected) * torch.ones(()),
        "float",
    ),
]


def _grpo_step_no_zero_grad(model, optimizer, rollout, advantages, old_logp=None, ref_logp=None, **kw):
    optimizer.zero_grad = lambda *a, **k: None  # a student who never clears gradients
    return _gs(model, optimizer, rollout, advantages, old_logp, ref_logp, **kw)


def _dpo_loss_attached(
    pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta=0.1, loss_type="sigmoid", label_smoothing=0.0
):
    losses, _, _ = S_dpo.dpo_loss(
        pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta, loss_type, label_smoothing
    )
    return losses, beta * (pi_chosen - ref_chosen), beta * (pi_rejected - ref_rejected)


VISIBLE_ONLY[1] = ("grpo_step", "forgets zero_grad", _grpo_step_no_zero_grad, "stale gradient")
VISIBLE_ONLY[2] = ("dpo_loss", "rewards not detached", _dpo_loss_attached, "no gradient")


def _rlvr_stats_tensors(*args, **kwargs):
    loss, stats = S_rlvr.rlvr_policy_loss(*args, **kwargs)
    return loss, {k: torch.tensor(v) for k, v in stats.items()}  # 0-d tensors, not Python floats


VISIBLE_ONLY.append(("rlvr_policy_loss", "stats as 0-d tensors", _rlvr_stats_tensors, "plain Python float"))


# Bugs that no hidden case can see by construction: the grader hands every call fresh copies of
# its inputs, so a function that also writes into them returns the right values there. The
# visible checks pass the same tensor object and look at it after the call.
def _olp_in_place(lengths, max_completion_length, overlong_buffer):
    S_rlvr.overlong_penalty(lengths, max_completion_length, overlong_buffer)  # the input checks
    L = lengths.to(torch.float32)  # no copy when the lengths are float32 already
    L[L > max_completion_length] = max_completion_length + 1  # the caller's tensor, when no copy
    free = max_completion_length - overlong_buffer
    ramp = ((free - L) / overlong_buffer).clamp(min=-1.0)
    return torch.where(L <= free, torch.zeros_like(L), ramp)


def _mtc_in_place(completion_mask, is_truncated):
    S_rlvr.mask_truncated_completions(completion_mask, is_truncated)  # the input checks
    completion_mask[is_truncated] = 0
    return completion_mask


def _em_in_place(completion_mask, env_spans):
    S_tools.environment_mask(completion_mask, env_spans)  # the input checks
    for row, spans in enumerate(env_spans):
        for start, end in spans:
            completion_mask[row, start:end] = 0
    return completion_mask


CHECK_ONLY: list[tuple[str, str, object, str]] = [
    ("overlong_penalty", "writes into the lengths", _olp_in_place, "in place"),
    ("mask_truncated_completions", "zeroes the caller's mask", _mtc_in_place, "in place"),
    ("environment_mask", "zeroes the caller's mask", _em_in_place, "in place"),
]


def wrong_id(w):
    return f"{w[0]}: {w[1]}"


# 6.4 rloo_advantages
def _rloo(rewards, group_size, *, bug):
    if rewards.numel() % group_size or group_size < 2:
        raise ValueError("bad input")
    r = rewards.float()
    g = r.view(-1, group_size)
    if bug == "self-in-baseline":
        return (g - g.mean(-1, keepdim=True)).reshape(-1)
    if bug == "divide-by-G":
        return (g - (g.sum(-1, keepdim=True) - g) / group_size).reshape(-1)
    # bug == "batch-leave-one-out": the other N - 1 rewards of the whole batch, groups ignored
    return r - (r.sum() - r) / (r.numel() - 1)


variants(
    "rloo_advantages",
    _rloo,
    [
        ("self included in the baseline (r - group mean)", "self-in-baseline", "itself"),
        ("the others' mean divided by G", "divide-by-G", "G - 1"),
        ("leave-one-out over the whole batch", "batch-leave-one-out", "SAME group"),
    ],
)


# 6.5 reinforce_pp_advantages
def _rpp(rewards, group_size, eps=1e-4, *, bug):
    if rewards.numel() % group_size or group_size < 2:
        raise ValueError("bad input")
    g = rewards.float().view(-1, group_size)
    d = g - g.mean(-1, keepdim=True)
    if bug == "raw-std":  # = group_advantages(scale="batch")
        return (d / (rewards.float().std() + eps)).reshape(-1)
    if bug == "group-std":  # = group_advantages(scale="group")
        return (d / (g.std(-1, keepdim=True) + eps)).reshape(-1)
    d = d.reshape(-1)
    if bug == "population":
        return d / (d.std(unbiased=False) + eps)
    return d / d.std()  # bug == "no-eps"


variants(
    "reinforce_pp_advantages",
    _rpp,
    [
        ("divides by the std of the raw rewards", "raw-std", "CENTRED"),
        ("normalises per group", "group-std", "whole batch"),
        ("population std", "population", "Bessel"),
        ("eps ignored", "no-eps", "plus eps"),
    ],
)


# 6.6 high_entropy_mask
def _hem(entropies, mask, quantile, *, bug):
    if not 0.0 < quantile <= 1.0 or entropies.shape != mask.shape:
        raise ValueError("bad input")
    keep = mask.bool()
    if not keep.any():
        return torch.zeros_like(keep)
    q = quantile if bug == "q-not-1-minus-q" else 1.0 - quantile
    if bug == "per-row":
        rows = []
        for e, k in zip(entropies, keep):
            th = torch.quantile(e[k].float(), q) if k.any() else math.inf
            rows.append((e >= th) & k)
        return torch.stack(rows)
    pool = entropies.flatten().float() if bug == "padding-in-quantile" else entropies[keep].float()
    threshold = torch.quantile(pool, q)
    out = entropies > threshold if bug == "strict" else entropies >= threshold
    return out if bug == "padding-kept" else out & keep


variants(
    "high_entropy_mask",
    _hem,
    [
        ("quantile over every position, padding included", "padding-in-quantile", "completion tokens only"),
        ("> instead of >= (ties at the threshold dropped)", "strict", ">="),
        ("one threshold per row", "per-row", "whole batch"),
        (
            "threshold at the q quantile (keeps the bottom 1 - q)",
            "q-not-1-minus-q",
            "fraction of tokens to KEEP",
        ),
        ("padding not masked out", "padding-kept", "padding"),
    ],
)
