"""The instructor solutions against small HAND-COMPUTED cases (the arithmetic is in the comments),
against independent references (TRL 1.16's own helpers, torch.distributions, torch's losses), and
on bad input (ValueError naming the function and the offending tensor/shape)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("solutions")

from solutions import dpo, grpo, kl, ppo, reward_model, rewards, sft

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)
E = math.e


def T(x, **kw):
    return torch.tensor(x, dtype=torch.float32, **kw)


def close(got, want, atol=1e-6):
    got = got.detach().double() if isinstance(got, torch.Tensor) else torch.tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    assert got.shape == want.shape, f"shape {list(got.shape)} != {list(want.shape)}"
    assert torch.allclose(got, want, atol=atol, rtol=0), f"{got.tolist()} != {want.tolist()}"


# ============================================================================ 01 rewards
class TestRewards:
    GOOD = "Question: What is 2 + 3?\nAnswer: 5"

    def test_format_reward(self):
        comps = [
            self.GOOD,
            "\n  " + self.GOOD + "  \n",  # surrounding whitespace is stripped
            self.GOOD + "\nQuestion: and more?",  # trailing text after the answer line
            self.GOOD + " and then I went home",  # trailing text on the answer line: still 2 lines
            "Question: \nAnswer: 5",  # empty question
            "Question: Why?\nAnswer:   ",  # empty answer
            "Q: Why?\nA: because",  # another surface format
            "",  # empty completion
            "Question: Why?\n\nAnswer: because",
        ]  # a blank line in between
        assert rewards.format_reward(comps) == [1.0, 1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0]

    def test_format_reward_chat_and_kwargs(self):
        chat = [[{"role": "assistant", "content": self.GOOD}], [{"role": "assistant", "content": "no"}]]
        assert rewards.format_reward(chat, prompts=["a", "b"], answer=["1", "2"]) == [1.0, -1.0]
        assert all(isinstance(v, float) for v in rewards.format_reward(chat))

    def test_correctness_reward_edge_cases(self):
        comps = [
            "3 + 4 = 7",  # last int 7 == 7                        -> 1
            "7, no wait, 8",  # last int is 8                          -> 0
            "The answer is -5.",  # negative number                        -> 1
            "she earns 68 dollars",  # GSM8K answer '... #### 68'             -> 1
            "",  # empty string: no integer               -> 0
            "12",  # 12 != 2 (whole integers, not substrings) -> 0
            "about 1,000 people",  # thousands separator: 1000              -> 1
            "5 apples and then 3",
        ]  # trailing text after the answer: last int 3 -> 0
        answers = [
            "7",
            "7",
            -5,
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 68",
            "0",
            "2",
            "1000",
            "5",
        ]
        assert rewards.correctness_reward(comps, answer=answers, prompts=["p"] * 8) == [
            1.0,
            0.0,
            1.0,
            1.0,
            0.0,
            0.0,
            1.0,
            0.0,
        ]
        chat = [[{"role": "assistant", "content": "so 42"}]]
        assert rewards.correctness_reward(chat, answer=[42]) == [1.0]

    def test_correctness_reward_bad_input(self):
        with pytest.raises(ValueError, match=r"correctness_reward: 2 completions but 1 answers"):
            rewards.correctness_reward(["1", "2"], answer=["1"])
        with pytest.raises(ValueError, match="correctness_reward.*one entry per completion"):
            rewards.correctness_reward(["1"], answer="1")

    def test_sentiment_reward_is_the_profile_scorer(self):
        from course_lib.core.sentiment import get_scorer

        texts = ["What a wonderful, delightful film!", "A dull, awful mess.", ""]
        got = rewards.sentiment_reward(texts)
        assert got == pytest.approx(get_scorer().positive_probability(texts))
        assert got[0] > 0.5 > got[1] and got[2] == pytest.approx(0.5)  # VADER: compound 0 -> 0.5

    def test_repetition_penalty(self):
        # 1 - unique/total: 0; 1 - 1/4; lower-cased 1 - 1/3; 1 - 2/4; empty -> 0; 1 word -> 0
        got = rewards.repetition_penalty(
            ["the cat sat", "good good good good", "Good good GOOD", "a b a b", "", "   ", "solo"]
        )
        assert got == pytest.approx([0.0, 0.75, 2 / 3, 0.5, 0.0, 0.0, 0.0])

    def test_length_penalty(self):
        w = lambda n: " ".join(["w"] * n)
        assert rewards.length_penalty([w(3), w(4), w(40), w(41), ""]) == [-1.0, 0.0, 0.0, -1.0, -1.0]
        assert rewards.length_penalty(["a b", "a b c"], min_words=1, max_words=2) == [0.0, -1.0]

    def test_exponential_shaping(self):
        # exp(s/T) - 1: [0, e - 1, e^2 - 1]; T = 0.5: exp(2) - 1; tensor T = 2: [0, e^-0.5 - 1]
        assert rewards.exponential_shaping([0.0, 1.0, 2.0]) == pytest.approx([0.0, E - 1, E**2 - 1])
        assert rewards.exponential_shaping([1.0], 0.5) == pytest.approx([E**2 - 1])
        out = rewards.exponential_shaping(T([[0.0, -1.0]]), 2.0)
        assert isinstance(out, torch.Tensor) and out.shape == (1, 2)
        close(out, [[0.0, math.exp(-0.5) - 1]])

    @pytest.mark.parametrize("bad", [0.0, -1.0])
    def test_exponential_shaping_bad_temperature(self, bad):
        with pytest.raises(ValueError, match=r"exponential_shaping: temperature must be > 0"):
            rewards.exponential_shaping([1.0], bad)

    def test_combine_rewards(self):
        R = rewards.combine_rewards([rewards.format_reward, rewards.correctness_reward], [0.5, 2.0])
        comps = [self.GOOD, "Question: x?\nAnswer: 4"]
        # format: [1, 1]; correctness vs answers [5, 5]: [1, 0] -> [0.5 + 2, 0.5 + 0]
        assert R(comps, answer=["5", "5"]) == pytest.approx([2.5, 0.5])
        with pytest.raises(ValueError, match="combine_rewards: 2 reward functions but 1 weights"):
            rewards.combine_rewards([rewards.format_reward, rewards.length_penalty], [1.0])
        with pytest.raises(ValueError, match="combine_rewards: need at least one"):
            rewards.combine_rewards([], [])
        short = rewards.combine_rewards([lambda c, **k: [1.0]], [1.0])
        with pytest.raises(ValueError, match="returned 1 rewards for 2 completions"):
            short(["a", "b"])

    @pytest.mark.parametrize(
        "baseline, loss, grad",
        [
            (None, 4 / 3, [-2 / 3, 0.0, -4 / 3]),  # A = R: -mean([-2, 0, -2]); d/d logp = -A / 3
            ("mean", -1.0, [0.0, 2 / 3, -2 / 3]),  # b = 2, A = [0, -2, 2]: -mean([0, 4, -1])
            (0.5, 0.75, [-0.5, 1 / 6, -7 / 6]),  # A = [1.5, -0.5, 3.5]: -mean([-1.5, 1, -1.75])
        ],
    )
    def test_reinforce_loss_hand(self, baseline, loss, grad):
        logp, R = T([-1.0, -2.0, -0.5], requires_grad=True), T([2.0, 0.0, 4.0], requires_grad=True)
        out = rewards.reinforce_loss(logp, R, baseline)
        close(out, loss)
        out.backward()
        close(logp.grad, grad)
        assert R.grad is None  # the advantages are constants: no gradient through rewards or baseline

    def test_reinforce_loss_bad_input(self):
        with pytest.raises(
            ValueError, match=r"reinforce_loss: `logprobs` must be a 1-d .* got shape \[2, 3\]"
        ):
            rewards.reinforce_loss(torch.zeros(2, 3), torch.zeros(2))
        with pytest.raises(ValueError, match=r"reinforce_loss: `rewards` .* \[3\], got shape \[2\]"):
            rewards.reinforce_loss(torch.zeros(3), torch.zeros(2))
        with pytest.raises(ValueError, match=r"reinforce_loss: `baseline` .* got 'median'"):
            rewards.reinforce_loss(torch.zeros(3), torch.zeros(3), "median")
        with pytest.raises(ValueError, match="reinforce_loss: empty batch"):
            rewards.reinforce_loss(torch.zeros(0), torch.zeros(0))

    def test_rewards_plug_into_trl_signature(self):
        """TRL calls reward_func(prompts=..., completions=..., completion_ids=..., **columns)."""
        kw = dict(
            prompts=["p"],
            completions=["Question: a?\nAnswer: 1"],
            completion_ids=[[1, 2]],
            answer=["1"],
            trainer_state=None,
        )
        for f in (
            rewards.format_reward,
            rewards.correctness_reward,
            rewards.sentiment_reward,
            rewards.repetition_penalty,
            rewards.length_penalty,
        ):
            out = f(**kw)
            assert isinstance(out, list) and len(out) == 1 and isinstance(out[0], float)


# ============================================================================ 02 KL
class TestKL:
    def test_token_logprobs_hand(self):
        # t0: uniform over 3 -> log 1/3; t1: logits [0, ln 2, 0] -> p = [1/4, 1/2, 1/4] -> log 1/2
        logits = T([[[0.0, 0.0, 0.0], [0.0, LN2, 0.0]]])
        close(kl.token_logprobs(logits, torch.tensor([[2, 1]])), [[-LN3, -LN2]])
        # stable for large logits: log_softmax([1000, 0])[1] = -1000
        close(kl.token_logprobs(T([[[1000.0, 0.0]]]), torch.tensor([[1]])), [[-1000.0]], atol=1e-3)

    def test_token_logprobs_matches_trl_selective_log_softmax(self):
        trl_utils = pytest.importorskip("trl.trainer.utils")
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(3, 5, 11, generator=g) * 3
        tokens = torch.randint(0, 11, (3, 5), generator=g)
        close(kl.token_logprobs(logits, tokens), trl_utils.selective_log_softmax(logits, tokens), atol=1e-5)

    def test_token_logprobs_bad_shapes(self):
        with pytest.raises(ValueError, match=r"token_logprobs: tokens\[1, 3\] must be \[B, T\] = \[1, 2\]"):
            kl.token_logprobs(torch.zeros(1, 2, 4), torch.zeros(1, 3, dtype=torch.long))
        with pytest.raises(ValueError, match=r"token_logprobs: `logits` must be 3-D"):
            kl.token_logprobs(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))

    def test_kl_estimators_at_known_log_ratios(self):
        # log r = ref - logp = [-1, 1, 0, ln 2]
        logp, ref = T([0.0, -1.0, -0.3, -LN2]), T([-1.0, 0.0, -0.3, 0.0])
        close(kl.kl_estimate(logp, ref, "k1"), [1.0, -1.0, 0.0, -LN2])  # -log r
        close(kl.kl_estimate(logp, ref, "k2"), [0.5, 0.5, 0.0, LN2**2 / 2])  # (log r)^2 / 2
        close(kl.kl_estimate(logp, ref, "k3"), [1 / E, E - 2, 0.0, 1 - LN2])  # r - 1 - log r
        close(kl.kl_estimate(logp, ref), kl.kl_estimate(logp, ref, "k3"))  # default k3

    def test_k1_and_k3_unbiased_k3_nonnegative(self):
        """Sampling x ~ p: E[k1] = E[k3] = KL(p||q) (the reason GRPO uses k3); k2, k3 >= 0."""
        g = torch.Generator().manual_seed(0)
        p_logits, q_logits = T([1.0, 0.0, -1.0, 0.5]), T([0.0, 0.5, 0.0, -0.5])
        x = torch.multinomial(p_logits.softmax(-1), 200_000, replacement=True, generator=g)
        logp, ref = p_logits.log_softmax(-1)[x], q_logits.log_softmax(-1)[x]
        exact = kl.exact_kl(p_logits, q_logits).item()
        assert kl.kl_estimate(logp, ref, "k1").mean().item() == pytest.approx(exact, abs=5e-3)
        assert kl.kl_estimate(logp, ref, "k3").mean().item() == pytest.approx(exact, abs=5e-3)
        assert (kl.kl_estimate(logp, ref, "k3") >= 0).all() and (kl.kl_estimate(logp, ref, "k2") >= 0).all()

    def test_kl_estimate_bad_input(self):
        with pytest.raises(ValueError, match=r"kl_estimate: unknown kind 'k4'"):
            kl.kl_estimate(T([0.0]), T([0.0]), "k4")
        with pytest.raises(ValueError, match=r"kl_estimate: .*logp\[3\], ref_logp\[2\]"):
            kl.kl_estimate(T([0.0] * 3), T([0.0] * 2))

    def test_exact_kl_hand_and_torch_distributions(self):
        # p = [1/2, 1/2], q = [1/4, 3/4]: KL(p||q) = 1/2 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3)
        close(kl.exact_kl(T([0.0, 0.0]), T([0.0, LN3])), 0.5 * math.log(4 / 3))
        # KL(q||p) = 1/4 ln(1/2) + 3/4 ln(3/2): asymmetric
        close(kl.exact_kl(T([0.0, LN3]), T([0.0, 0.0])), 0.25 * math.log(0.5) + 0.75 * math.log(1.5))
        from torch.distributions import Categorical, kl_divergence

        g = torch.Generator().manual_seed(1)
        p, q = torch.randn(4, 3, 7, generator=g), torch.randn(4, 3, 7, generator=g)
        close(kl.exact_kl(p, q), kl_divergence(Categorical(logits=p), Categorical(logits=q)), atol=1e-5)

    def test_exact_kl_bad_shapes(self):
        with pytest.raises(ValueError, match=r"exact_kl: .*p_logits\[2, 3\], q_logits\[2, 4\]"):
            kl.exact_kl(torch.zeros(2, 3), torch.zeros(2, 4))

    def test_kl_penalized_rewards_hand(self):
        # -beta * (logp - ref) on response tokens; score on the last response token
        # row 0: k1 = [0.5, 0, -0.5] -> [-0.05, 0, 0.05 + 1]; row 1: k1 = [-1, 0, (5 pad)] -> [0.1, 0 + 2, 0]
        got = kl.kl_penalized_rewards(
            T([1.0, 2.0]),
            T([[-1.0, -1.0, -1.0], [-2.0, -2.0, 5.0]]),
            T([[-1.5, -1.0, -0.5], [-1.0, -2.0, 0.0]]),
            torch.tensor([[1, 1, 1], [1, 1, 0]]),
            0.1,
        )
        close(got, [[-0.05, 0.0, 1.05], [0.1, 2.0, 0.0]])

    def test_kl_penalized_rewards_bad_input(self):
        z = torch.zeros(2, 3)
        with pytest.raises(ValueError, match=r"kl_penalized_rewards: rows \[1\] have an all-zero mask"):
            kl.kl_penalized_rewards(T([1.0, 2.0]), z, z, torch.tensor([[1, 0, 0], [0, 0, 0]]), 0.1)
        with pytest.raises(ValueError, match=r"kl_penalized_rewards: scores\[3\] must be \[B\] = \[2\]"):
            kl.kl_penalized_rewards(T([1.0, 2.0, 3.0]), z, z, torch.ones(2, 3), 0.1)
        with pytest.raises(ValueError, match=r"kl_penalized_rewards: .*mask\[2, 2\]"):
            kl.kl_penalized_rewards(T([1.0, 2.0]), z, z, torch.ones(2, 2), 0.1)


# ============================================================================ 03 SFT
class TestSFT:
    def test_tokenize_with_the_tiny_tokenizer(self, tiny):
        _, tok = tiny
        prompts, comps = (
            ["What is 2 + 3?\n", "Where is Avalon?\n"],
            ["Answer: 5", "Answer: in the north, far away"],
        )
        out = sft.tokenize_prompt_and_completion(prompts, comps, tok)
        rows = [
            (tok(p, add_special_tokens=False)["input_ids"], tok(c, add_special_tokens=False)["input_ids"])
            for p, c in zip(prompts, comps)
        ]
        L = max(len(p) + len(c) for p, c in rows)
        assert out["input_ids"].shape == out["labels"].shape == out["completion_mask"].shape == (2, L - 1)
        assert all(v.dtype == torch.long for v in out.values())
        for i, (p, c) in enumerate(rows):
            full = p + c + [tok.pad_token_id] * (L - len(p) - len(c))
            assert out["input_ids"][i].tolist() == full[:-1]
            assert out["labels"][i].tolist() == full[1:]  # shifted by one
            want_mask = ([0] * len(p) + [1] * len(c) + [0] * (L - len(p) - len(c)))[1:]
            assert out["completion_mask"][i].tolist() == want_mask
            # the masked labels decode back to exactly the completion
            assert tok.decode(out["labels"][i][out["completion_mask"][i] == 1]) == comps[i]

    def test_tokenize_hand_ids_and_eos_padding(self):
        from course_lib.checks import _toy_tokenizer

        # "hi there"+"ok" = [3, 4, 6]; "yes"+"no no you" = [7, 8, 8, 5]; no pad token -> eos id 1
        out = sft.tokenize_prompt_and_completion(
            ["hi there", "yes"], ["ok", "no no you"], _toy_tokenizer(pad=False)
        )
        assert out["input_ids"].tolist() == [[3, 4, 6], [7, 8, 8]]
        assert out["labels"].tolist() == [[4, 6, 1], [8, 8, 5]]
        assert out["completion_mask"].tolist() == [[0, 1, 0], [1, 1, 1]]
        with pytest.raises(ValueError, match="tokenize_prompt_and_completion: 2 prompts but 1 completions"):
            sft.tokenize_prompt_and_completion(["a", "b"], ["c"], _toy_tokenizer())

    def test_masked_mean_dims(self):
        x = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        m = torch.tensor([[1, 1, 0], [0, 1, 1]])
        close(sft.masked_mean(x, m), 14 / 4)  # (1 + 2 + 5 + 6) / 4
        close(sft.masked_mean(x, m, dim=1), [1.5, 5.5])  # rows: 3/2, 11/2
        close(sft.masked_mean(x, m, dim=-1), [1.5, 5.5])
        close(sft.masked_mean(x, m, dim=0), [1.0, 3.5, 6.0])  # columns: 1/1, 7/2, 6/1
        close(sft.masked_mean(x, m.bool()), 3.5)
        close(sft.masked_mean(x, m.float()), 3.5)

    def test_masked_mean_bad_input(self):
        x = torch.ones(2, 3)
        with pytest.raises(ValueError, match=r"masked_mean: the mask is all zero \(a mean over nothing"):
            sft.masked_mean(x, torch.zeros(2, 3))
        with pytest.raises(ValueError, match=r"masked_mean: the mask is all zero along dim=1"):
            sft.masked_mean(x, torch.tensor([[1, 0, 0], [0, 0, 0]]), dim=1)
        with pytest.raises(ValueError, match=r"masked_mean: .*x\[2, 3\], mask\[3\]"):
            sft.masked_mean(x, torch.ones(3))

    def test_sft_loss_hand_and_cross_entropy(self):
        # row 0: ln 2 (uniform), -ln 3/4; row 1: ln 4 -> token mean (ln 2 + ln 4/3 + ln 4) / 3
        logits = T([[[0.0, 0.0], [LN3, 0.0], [9.0, 0.0]], [[0.0, LN3], [1.0, 2.0], [0.0, 0.0]]])
        labels = torch.tensor([[0, 0, -100], [0, 1, -100]])
        mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
        close(sft.sft_loss(logits, labels, mask), (LN2 + math.log(4 / 3) + LN4) / 3)
        # independent reference: cross_entropy with ignore_index on the masked-out labels
        ref = F.cross_entropy(
            logits.reshape(-1, 2), labels.masked_fill(mask == 0, -100).reshape(-1), ignore_index=-100
        )
        close(sft.sft_loss(logits, labels, mask), ref.item())

    def test_sft_loss_bad_shapes(self):
        with pytest.raises(ValueError, match=r"sft_loss: labels\[2, 2\] must be \[B, T\] = \[2, 3\]"):
            sft.sft_loss(torch.zeros(2, 3, 4), torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2))


# ============================================================================ 04 reward model
class TestRewardModel:
    def test_bradley_terry_with_margin(self):
        rc, rr = T([2.0, 0.0]), T([0.0, 0.0])
        # -logsigmoid(d) = ln(1 + e^-d): d = [2, 0]
        close(reward_model.bradley_terry_loss(rc, rr), (math.log1p(E**-2) + LN2) / 2)
        # margin 1: d - 1 = [1, -1]
        close(reward_model.bradley_terry_loss(rc, rr, 1.0), (math.log1p(E**-1) + math.log1p(E)) / 2)
        # margin [1, 0]: [1, 0]
        close(reward_model.bradley_terry_loss(rc, rr, T([1.0, 0.0])), (math.log1p(E**-1) + LN2) / 2)
        # = binary cross-entropy with logits d - margin against label 1 (independent reference)
        d = T([0.3, -2.0, 5.0])
        close(
            reward_model.bradley_terry_loss(d, torch.zeros(3), T([0.1, 0.2, 0.3])),
            F.binary_cross_entropy_with_logits(d - T([0.1, 0.2, 0.3]), torch.ones(3)).item(),
        )
        close(reward_model.bradley_terry_loss(T([-200.0]), T([0.0])), 200.0, atol=1e-3)  # stable

    def test_bradley_terry_bad_shapes(self):
        with pytest.raises(ValueError, match=r"bradley_terry_loss: .*r_chosen\[2\], r_rejected\[3\]"):
            reward_model.bradley_terry_loss(torch.zeros(2), torch.zeros(3))

    def test_preference_accuracy(self):
        assert reward_model.preference_accuracy(T([1.0, 2.0, 3.0, 0.0]), T([0.0, 2.0, 4.0, -1.0])) == 0.5
        with pytest.raises(ValueError, match="preference_accuracy: empty batch"):
            reward_model.preference_accuracy(T([]), T([]))

    def test_last_token_pool(self):
        v = torch.arange(12.0).reshape(3, 4)
        close(
            reward_model.last_token_pool(v, torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])),
            [2.0, 7.0, 8.0],
        )
        with pytest.raises(ValueError, match=r"last_token_pool: rows \[1\] have no real token"):
            reward_model.last_token_pool(v, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]))
        with pytest.raises(ValueError, match=r"last_token_pool: values\[3, 4\] must be"):
            reward_model.last_token_pool(v, torch.ones(3, 5))


# ============================================================================ 05 PPO
def _gae_reference(r, v, m, gamma, lam):
    """Plain Python loop, one row at a time (independent of the vectorised solution)."""
    adv = [[0.0] * len(row) for row in r]
    for b in range(len(r)):
        nxt_a, nxt_v = 0.0, 0.0
        for t in reversed(range(len(r[b]))):
            rt, vt = r[b][t] * m[b][t], v[b][t] * m[b][t]
            delta = rt + gamma * nxt_v - vt
            nxt_a = delta + gamma * lam * nxt_a
            adv[b][t] = nxt_a * m[b][t]
            nxt_v = vt
    return adv


class TestPPO:
    def test_gae_1x3_hand(self):
        # gamma 0.9, lam 0.5, r = [0, 0, 1], V = 0.5:
        # t2: delta = 1 - 0.5 = 0.5, A = 0.5
        # t1: delta = 0 + 0.9*0.5 - 0.5 = -0.05, A = -0.05 + 0.45*0.5 = 0.175
        # t0: delta = -0.05, A = -0.05 + 0.45*0.175 = 0.02875; returns = A + V
        adv, ret = ppo.compute_gae(T([[0.0, 0.0, 1.0]]), T([[0.5, 0.5, 0.5]]), torch.ones(1, 3), 0.9, 0.5)
        close(adv, [[0.02875, 0.175, 0.5]])
        close(ret, [[0.52875, 0.675, 1.0]])

    def test_gae_padding_and_random_rows_against_a_loop(self):
        # padded: r = [0, 1, (5)], V = [0.5, 0.5, (9)] -> zeroed; gamma = lam = 1: A = [0.5, 0.5, 0]
        adv, ret = ppo.compute_gae(
            T([[0.0, 1.0, 5.0]]), T([[0.5, 0.5, 9.0]]), torch.tensor([[1, 1, 0]]), 1.0, 1.0
        )
        close(adv, [[0.5, 0.5, 0.0]])
        close(ret, [[1.0, 1.0, 0.0]])
        g = torch.Generator().manual_seed(0)
        r, v = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g, requires_grad=True)
        m = (torch.arange(6) < torch.tensor([[6], [3], [1], [5]])).long()
        adv, ret = ppo.compute_gae(r, v, m, 0.99, 0.9)
        close(adv, _gae_reference(r.tolist(), v.tolist(), m.tolist(), 0.99, 0.9), atol=1e-5)
        close(ret, adv + v.detach() * m)
        assert not adv.requires_grad and not ret.requires_grad

    def test_gae_bad_shapes(self):
        with pytest.raises(ValueError, match=r"compute_gae: .*values\[2, 4\]"):
            ppo.compute_gae(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3))

    def test_whiten_bessel(self):
        # masked [1, 3, 5]: mean 3, Bessel var (4 + 0 + 4) / 2 = 4 -> std 2; 100 is padding (transformed too)
        x, m = T([[1.0, 3.0, 5.0, 100.0]]), torch.tensor([[1, 1, 1, 0]])
        s = 1 / math.sqrt(4 + 1e-8)
        close(ppo.whiten(x, m), [[-2 * s, 0.0, 2 * s, 97 * s]], atol=1e-5)
        close(ppo.whiten(x, m, shift_mean=False), [[-2 * s + 3, 3.0, 2 * s + 3, 97 * s + 3]], atol=1e-5)
        with pytest.raises(ValueError, match=r"whiten: needs at least 2 masked entries .* got 1"):
            ppo.whiten(x, torch.tensor([[0, 1, 0, 0]]))
        with pytest.raises(ValueError, match=r"whiten: .*x\[1, 4\], mask\[4\]"):
            ppo.whiten(x, torch.ones(4))

    def test_ppo_policy_loss_hand(self):
        # rho = [1.5, 0.5, 1.1, 0.5, (3 pad)], A = [1, 1, -1, -1, (10)], eps 0.2
        # max(-A rho, -A clip): max(-1.5, -1.2) = -1.2 (clipped); max(-0.5, -0.8) = -0.5;
        # max(1.1, 1.1) = 1.1; max(0.5, 0.8) = 0.8 (clipped) -> mean 0.2 / 4 = 0.05; clip fraction 2/4
        logp = T([[math.log(1.5), math.log(0.5), math.log(1.1), math.log(0.5), math.log(3.0)]])
        loss, frac = ppo.ppo_policy_loss(
            logp, torch.zeros(1, 5), T([[1.0, 1.0, -1.0, -1.0, 10.0]]), torch.tensor([[1, 1, 1, 1, 0]]), 0.2
        )
        close(loss, 0.05)
        close(frac, 0.5)
        with pytest.raises(ValueError, match=r"ppo_policy_loss: .*advantages\[1, 4\]"):
            ppo.ppo_policy_loss(torch.zeros(1, 5), torch.zeros(1, 5), torch.zeros(1, 4), torch.ones(1, 5))

    def test_ppo_value_loss_hand(self):
        # t0: v_clip = 0.5 + 0.2 = 0.7, max((1-2)^2, (0.7-2)^2) = 1.69; t1: v_clip = 2.3, max(1, 0.49) = 1
        got = ppo.ppo_value_loss(
            T([[1.0, 2.0, 10.0]]), T([[0.5, 2.5, 0.0]]), T([[2.0, 3.0, 0.0]]), torch.tensor([[1, 1, 0]]), 0.2
        )
        close(got, 0.5 * (1.69 + 1.0) / 2)

    def test_entropy_hand_trl_and_torch_distributions(self):
        # uniform over 4: ln 4; p = [1/4, 3/4]: -(1/4 ln 1/4 + 3/4 ln 3/4)
        close(
            ppo.entropy_from_logits(T([[0.0] * 4, [0.0, LN3, -1e9, -1e9]])),
            [LN4, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))],
            atol=1e-6,
        )
        close(ppo.entropy_from_logits(T([1000.0, 0.0, 0.0])), 0.0, atol=1e-6)  # stable
        from torch.distributions import Categorical

        g = torch.Generator().manual_seed(2)
        logits = torch.randn(3, 4, 9, generator=g) * 2
        close(ppo.entropy_from_logits(logits), Categorical(logits=logits).entropy(), atol=1e-5)
        trl_utils = pytest.importorskip("trl.trainer.utils")
        close(ppo.entropy_from_logits(logits), trl_utils.entropy_from_logits(logits), atol=1e-5)


# ============================================================================ 06 GRPO
class TestGRPO:
    def test_group_advantages_hand(self):
        r = T([1.0, 2.0, 3.0, 0.0, 0.0, 4.0])
        # group 0: mean 2, Bessel std 1; group 1: mean 4/3, Bessel var (16/9 + 16/9 + 64/9) / 2 = 16/3
        s1 = math.sqrt(16 / 3)
        close(
            grpo.group_advantages(r, 3),
            [-1 / 1.0001, 0.0, 1 / 1.0001, -4 / 3 / (s1 + 1e-4), -4 / 3 / (s1 + 1e-4), 8 / 3 / (s1 + 1e-4)],
            atol=1e-5,
        )
        # batch: std of all six (Bessel): mean 5/3, sum of squares 40/3 over 5 -> sqrt(8/3)
        sb = math.sqrt(8 / 3) + 1e-4
        close(
            grpo.group_advantages(r, 3, "batch"),
            [-1 / sb, 0.0, 1 / sb, -4 / 3 / sb, -4 / 3 / sb, 8 / 3 / sb],
            atol=1e-5,
        )
        close(grpo.group_advantages(r, 3, "none"), [-1.0, 0.0, 1.0, -4 / 3, -4 / 3, 8 / 3], atol=1e-6)
        close(grpo.group_advantages(T([2.0, 2.0]), 2), [0.0, 0.0])  # flat group: eps, no nan

    def test_group_advantages_bad_input(self):
        with pytest.raises(ValueError, match=r"group_advantages: 5 rewards do not split into groups of 3"):
            grpo.group_advantages(torch.zeros(5), 3)
        with pytest.raises(ValueError, match=r"group_advantages: group_size must be >= 2, got 1"):
            grpo.group_advantages(torch.zeros(4), 1)
        with pytest.raises(ValueError, match=r"group_advantages: unknown scale 'median'"):
            grpo.group_advantages(torch.zeros(4), 2, "median")
        with pytest.raises(
            ValueError, match=r"group_advantages: `rewards` must be 1-D \[N\], got shape \[2, 2\]"
        ):
            grpo.group_advantages(torch.zeros(2, 2), 2)

    def test_rloo_advantages_hand(self):
        # leave-one-out baseline: G=4 [1, 2, 3, 6] -> (12 - r) / 3 = [11/3, 10/3, 3, 2]
        close(grpo.rloo_advantages(T([1.0, 2.0, 3.0, 6.0]), 4), [-8 / 3, -4 / 3, 0.0, 4.0], atol=1e-6)
        r = T([1.0, 2.0, 3.0, 0.0, 0.0, 4.0])
        # = G / (G - 1) * (r - group mean) = 1.5 * group_advantages(scale="none")
        close(grpo.rloo_advantages(r, 3), 1.5 * grpo.group_advantages(r, 3, "none"), atol=1e-6)
        out = grpo.rloo_advantages(torch.tensor([1, 0, 1, 1]), 2)
        assert out.is_floating_point()
        close(out, [1.0, -1.0, 0.0, 0.0])

    def test_reinforce_pp_advantages_hand(self):
        r = T([1.0, 2.0, 3.0, 0.0, 0.0, 4.0])
        # centred [-1, 0, 1, -4/3, -4/3, 8/3]: sum of squares 38/3, Bessel std sqrt(38/15)
        s = math.sqrt(38 / 15) + 1e-4
        close(grpo.reinforce_pp_advantages(r, 3), [-1 / s, 0.0, 1 / s, -4 / 3 / s, -4 / 3 / s, 8 / 3 / s])
        # not group_advantages(scale="batch") (std of the raw rewards, sqrt(8/3))...
        assert not torch.allclose(grpo.reinforce_pp_advantages(r, 3), grpo.group_advantages(r, 3, "batch"))
        # ... except when every group has the same mean: then both stds are the same number
        same_means = T([1.0, 3.0, 0.0, 4.0, 2.0, 2.0])
        close(grpo.reinforce_pp_advantages(same_means, 2), grpo.group_advantages(same_means, 2, "batch"))
        # one batch-wide scale: proportional to the RLOO advantages (RLOO = G/(G-1) x centred)
        ratio = grpo.rloo_advantages(r, 3) / grpo.reinforce_pp_advantages(r, 3)
        close(ratio[ratio.isfinite()], torch.full((5,), 1.5 * s), atol=1e-5)

    @pytest.mark.parametrize("fn", ["rloo_advantages", "reinforce_pp_advantages"])
    def test_baseline_advantages_bad_input(self, fn):
        f = getattr(grpo, fn)
        with pytest.raises(ValueError, match=rf"{fn}: 5 rewards do not split into groups of 3"):
            f(torch.zeros(5), 3)
        with pytest.raises(ValueError, match=rf"{fn}: group_size must be >= 2, got 1"):
            f(torch.zeros(4), 1)
        with pytest.raises(ValueError, match=rf"{fn}: `rewards` must be 1-D \[N\], got shape \[2, 2\]"):
            f(torch.zeros(2, 2), 2)

    # 2 x 3, row 1 padded after one token; on-policy (rho = 1), beta = 0 -> per-token loss -A
    MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])
    A = T([1.0, -2.0])

    def test_grpo_loss_reductions_on_a_padded_2x3(self):
        z = torch.zeros(2, 3)
        kw = dict(beta=0.0)
        # per token: row 0 [-1, -1, -1], row 1 [2, pad, pad]
        close(grpo.grpo_loss(z, z, None, self.A, self.MASK, loss_type="grpo", **kw), (-1 + 2) / 2)  # 0.5
        close(grpo.grpo_loss(z, z, None, self.A, self.MASK, loss_type="bnpo", **kw), (-3 + 2) / 4)  # -0.25
        close(grpo.grpo_loss(z, z, None, self.A, self.MASK, loss_type="dapo", **kw), (-3 + 2) / 4)
        close(
            grpo.grpo_loss(z, z, None, self.A, self.MASK, loss_type="dr_grpo", max_completion_length=4, **kw),
            (-3 + 2) / (2 * 4),
        )
        close(grpo.grpo_loss(z, z, None, self.A, self.MASK, loss_type="dr_grpo", **kw), (-3 + 2) / (2 * 3))
        # padding values never matter
        junk = T([[0.0, 0.0, 0.0], [0.0, 7.0, -9.0]])
        for lt in ("grpo", "bnpo", "dr_grpo", "dapo"):
            close(
                grpo.grpo_loss(junk, z, z, self.A, self.MASK, beta=0.3, loss_type=lt),
                grpo.grpo_loss(z, z, z, self.A, self.MASK, beta=0.3, loss_type=lt),
            )

    def test_grpo_loss_clip_and_kl_hand(self):
        z = torch.zeros(2, 3)
        # row 0 t0: rho 1.5, A 1 -> -min(1.5, 1.2) = -1.2; row 1 t0: rho 0.5, A -2 -> -min(-1, -1.6) = 1.6
        lp = T([[math.log(1.5), 0.0, 0.0], [math.log(0.5), 0.0, 0.0]])
        close(grpo.grpo_loss(lp, z, None, self.A, self.MASK, beta=0.0), ((-1.2 - 2) / 3 + 1.6) / 2)
        # KL: A = 0, log r = ref - logp = 1 at row 0 t0 -> k3 = e - 2; beta 0.5 -> ((0.5 (e-2)) / 3 + 0) / 2
        ref = T([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        close(grpo.grpo_loss(z, z, ref, T([0.0, 0.0]), self.MASK, beta=0.5), 0.5 * (E - 2) / 3 / 2)

    def test_grpo_loss_matches_trl_formula_on_random_input(self):
        """TRL 1.16 GRPOTrainer._compute_loss (token-level importance sampling, loss_type grpo/bnpo/
        dr_grpo), transcribed: coef_1 = exp(logp - old); per_token = -min(coef_1 A, clip(coef_1) A)
        + beta * (exp(ref - logp) - (ref - logp) - 1); grpo = ((ptl*mask).sum(-1) / mask.sum(-1)).mean()."""
        g = torch.Generator().manual_seed(3)
        logp, old, ref = (torch.randn(4, 5, generator=g) * 0.3 for _ in range(3))
        adv = torch.randn(4, generator=g)
        mask = (torch.arange(5) < torch.tensor([[5], [2], [4], [1]])).float()
        coef_1 = torch.exp(logp - old)
        coef_2 = torch.clamp(coef_1, 0.8, 1.2)
        ptl = -torch.min(coef_1 * adv[:, None], coef_2 * adv[:, None]) + 0.04 * (
            torch.exp(ref - logp) - (ref - logp) - 1
        )
        trl = {
            "grpo": ((ptl * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean(),
            "bnpo": (ptl * mask).sum() / mask.sum().clamp(min=1.0),
            "dr_grpo": (ptl * mask).sum() / (ptl.size(0) * 7),
        }
        for lt, want in trl.items():
            close(
                grpo.grpo_loss(logp, old, ref, adv, mask, loss_type=lt, max_completion_length=7),
                want,
                atol=1e-6,
            )

    def test_grpo_loss_bad_input(self):
        z = torch.zeros(2, 3)
        with pytest.raises(ValueError, match=r"grpo_loss: unknown loss_type 'mean'"):
            grpo.grpo_loss(z, z, None, self.A, self.MASK, beta=0.0, loss_type="mean")
        with pytest.raises(ValueError, match=r"grpo_loss: advantages\[3\] must be \[B\] = \[2\]"):
            grpo.grpo_loss(z, z, None, T([1.0, 2.0, 3.0]), self.MASK, beta=0.0)
        with pytest.raises(ValueError, match=r"grpo_loss: .*old_logp\[2, 4\]"):
            grpo.grpo_loss(z, torch.zeros(2, 4), None, self.A, self.MASK, beta=0.0)
        with pytest.raises(ValueError, match=r"grpo_loss: ref_logp is None but beta != 0"):
            grpo.grpo_loss(z, z, None, self.A, self.MASK, beta=0.1)
        with pytest.raises(ValueError, match=r"grpo_loss: all-zero mask in \[1\] of mask\[2, 3\]"):
            grpo.grpo_loss(z, z, None, self.A, torch.tensor([[1, 1, 1], [0, 0, 0]]), beta=0.0)
        with pytest.raises(ValueError, match=r"grpo_loss: all-zero mask in every row .*'bnpo'"):
            grpo.grpo_loss(z, z, None, self.A, torch.zeros(2, 3), beta=0.0, loss_type="bnpo")
        # dr_grpo divides by a constant: an all-zero mask is fine (loss 0)
        close(grpo.grpo_loss(z, z, None, self.A, torch.zeros(2, 3), beta=0.0, loss_type="dr_grpo"), 0.0)


# ============================================================================ 07 DPO
class TestDPO:
    def test_sequence_logprobs_with_minus_100_labels(self):
        # row 0: log 1/2 + log 3/4 (t2 is padding with label -100); row 1: log 1/4
        logits = T([[[0.0, 0.0], [LN3, 0.0], [5.0, 5.0]], [[0.0, LN3], [1.0, 2.0], [0.0, 0.0]]])
        labels = torch.tensor([[0, 0, -100], [0, -100, -100]])
        mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
        close(dpo.sequence_logprobs(logits, labels, mask), [math.log(0.5) + math.log(0.75), math.log(0.25)])
        close(
            dpo.sequence_logprobs(logits, labels, mask, average=True),
            [(math.log(0.5) + math.log(0.75)) / 2, math.log(0.25)],
        )

    def test_sequence_logprobs_bad_input(self):
        with pytest.raises(
            ValueError, match=r"sequence_logprobs: labels\[2, 2\] must be \[B, T\] = \[2, 3\]"
        ):
            dpo.sequence_logprobs(torch.zeros(2, 3, 4), torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2))
        with pytest.raises(ValueError, match=r"sequence_logprobs: average=True with an all-zero mask row"):
            dpo.sequence_logprobs(
                torch.zeros(2, 3, 4),
                torch.zeros(2, 3, dtype=torch.long),
                torch.tensor([[1, 0, 0], [0, 0, 0]]),
                average=True,
            )

    PC, PR, RC, RR = T([-1.0, -2.0]), T([-2.0, -1.0]), T([-1.5, -2.0]), T([-1.5, -1.0])  # h = [1, 0]

    def test_dpo_loss_types_hand(self):
        b = 0.5
        sp = lambda x: math.log1p(math.exp(x))
        losses, ch, rj = dpo.dpo_loss(self.PC, self.PR, self.RC, self.RR, beta=b)
        close(losses, [sp(-0.5), LN2])  # -logsigmoid(beta h)
        close(ch, [0.25, 0.0])  # beta (pi_c - ref_c)
        close(rj, [-0.25, 0.0])
        ls = 0.1  # -(1-ls) logsigmoid(beta h) - ls logsigmoid(-beta h)
        close(
            dpo.dpo_loss(self.PC, self.PR, self.RC, self.RR, b, "sigmoid", ls)[0],
            [(1 - ls) * sp(-0.5) + ls * sp(0.5), LN2],
        )
        close(dpo.dpo_loss(self.PC, self.PR, self.RC, self.RR, b, "ipo")[0], [(1 - 1) ** 2, (0 - 1) ** 2])
        close(dpo.dpo_loss(self.PC, self.PR, self.RC, self.RR, b, "hinge")[0], [1 - 0.5, 1.0])

    def test_dpo_loss_matches_trl_formulas_and_detaches_rewards(self):
        """TRL 1.16 DPOTrainer (sigmoid/hinge): loss = -logsigmoid(beta * delta) / relu(1 - beta * delta)
        with delta = chosen_logratios - rejected_logratios; cDPO per the TRL docs."""
        g = torch.Generator().manual_seed(4)
        pc, pr, rc, rr = (torch.randn(6, generator=g) for _ in range(4))
        pc.requires_grad_(True)
        delta = (pc - rc) - (pr - rr)
        close(dpo.dpo_loss(pc, pr, rc, rr, 0.2)[0], -F.logsigmoid(0.2 * delta))
        close(dpo.dpo_loss(pc, pr, rc, rr, 0.2, "hinge")[0], torch.relu(1 - 0.2 * delta))
        close(
            dpo.dpo_loss(pc, pr, rc, rr, 0.2, "sigmoid", 0.3)[0],
            -F.logsigmoid(0.2 * delta) * 0.7 - F.logsigmoid(-0.2 * delta) * 0.3,
        )
        losses, ch, rj = dpo.dpo_loss(pc, pr, rc, rr, 0.2)
        assert losses.requires_grad and not ch.requires_grad and not rj.requires_grad

    @pytest.mark.parametrize("beta", [0.0, -0.1])
    def test_dpo_loss_bad_beta(self, beta):
        with pytest.raises(ValueError, match=r"dpo_loss: beta must be > 0"):
            dpo.dpo_loss(self.PC, self.PR, self.RC, self.RR, beta=beta)

    def test_dpo_loss_bad_input(self):
        with pytest.raises(ValueError, match=r"dpo_loss: unknown loss_type 'kto'"):
            dpo.dpo_loss(self.PC, self.PR, self.RC, self.RR, loss_type="kto")
        with pytest.raises(ValueError, match=r"dpo_loss: .*ref_rejected\[3\]"):
            dpo.dpo_loss(self.PC, self.PR, self.RC, torch.zeros(3))


def test_sampler_rejects_bad_temperature(tiny):
    from course_lib.core import sampling

    model, tok = tiny
    with pytest.raises(ValueError, match=r"sample: temperature must be > 0"):
        sampling.sample(model, tok, ["a"], temperature=0.0)
