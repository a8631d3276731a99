"""Visible tests for the exercises: ``check("kl_estimate")`` in a notebook's test cell.

Each check runs *your* function (looked up in its course_lib module at call time, so
``course_lib.use_solutions()`` is honoured) on a few small cases whose expected values were
worked out by hand and are written below as literals. On success it prints one line::

    ✓ exercise 2.2 kl_estimate: 7/7 visible checks passed

On failure it raises ``AssertionError`` saying which case failed, what was expected, what came
back, and a hint. A stub that still raises ``NotImplementedError`` stops the cell with its own
message. The hidden tests the grader runs use other (random) inputs, so passing these is
necessary, not sufficient.
"""
from __future__ import annotations

import importlib
import math
from typing import Callable

import torch

from course_lib.core import registry as exercises

__all__ = ["check", "CHECKS", "known"]

LN2, LN3 = math.log(2.0), math.log(3.0)


class Checker:
    """Runs the cases of one exercise and formats helpful failures."""

    def __init__(self, ex: exercises.Exercise, hint: str):
        self.ex, self.hint, self.passed = ex, hint, 0

    # ------------------------------------------------------------------ helpers
    def fail(self, case: str, expected, got, hint: str | None = None):
        raise AssertionError(
            f"exercise {self.ex.number} `{self.ex.name}` (course_lib/{self.ex.module}.py), "
            f"case '{case}':\n  expected: {expected}\n  got:      {got}\n"
            f"  hint: {hint or self.hint}")

    def call(self, case: str, fn: Callable, *args, hint: str | None = None, n_out: int | None = None,
             **kwargs):
        """Call the student's function; any error other than NotImplementedError becomes a
        failure of this case (with the original exception chained). `n_out`: the function must
        return a tuple of that many values."""
        try:
            out = fn(*args, **kwargs)
        except (NotImplementedError, AssertionError):
            raise
        except Exception as e:  # noqa: BLE001 - report any crash as a failed case
            raise AssertionError(
                f"exercise {self.ex.number} `{self.ex.name}`, case '{case}':\n"
                f"  expected: a result\n  got:      {type(e).__name__}: {e}\n"
                f"  hint: {hint or self.hint}") from e
        if n_out is not None and not (isinstance(out, (tuple, list)) and len(out) == n_out):
            self.fail(case, f"a tuple of {n_out} values", f"{type(out).__name__}: {out!r}"[:300],
                      hint or f"return all {n_out} values as a tuple, see the docstring")
        return out

    def ok(self):
        self.passed += 1

    def close(self, case: str, got, expected, hint: str | None = None, atol: float = 1e-4,
              kind: str | None = None):
        """`got` (tensor, list or number) equals `expected` (nested list or number) within atol.
        kind="list" additionally demands a Python list, kind="tensor" a torch.Tensor,
        kind="float" a Python float."""
        if kind == "list" and not isinstance(got, list):
            self.fail(case, f"a Python list of floats {expected}", f"{type(got).__name__} {got!r}", hint)
        if kind == "tensor" and not isinstance(got, torch.Tensor):
            self.fail(case, f"a torch.Tensor {expected}", f"{type(got).__name__} {got!r}", hint)
        if kind == "float" and not (isinstance(got, float) and not isinstance(got, bool)):
            self.fail(case, f"a Python float {expected}", f"{type(got).__name__} {got!r}",
                      hint or "return a plain Python float, e.g. with .item()")
        try:
            g = torch.as_tensor(got.detach() if isinstance(got, torch.Tensor) else got,
                                dtype=torch.float64)
        except Exception:  # noqa: BLE001
            self.fail(case, _fmt(expected), repr(got), hint)
        e = torch.as_tensor(expected, dtype=torch.float64)
        if g.shape != e.shape:
            self.fail(case, f"shape {list(e.shape)}: {_fmt(expected)}",
                      f"shape {list(g.shape)}: {_fmt(g)}", hint)
        if not torch.allclose(g, e, atol=atol, rtol=0, equal_nan=False) or not torch.isfinite(g).all():
            self.fail(case, _fmt(expected), _fmt(g), hint)
        self.ok()

    def true(self, case: str, cond: bool, expected: str, got: str, hint: str | None = None):
        if not cond:
            self.fail(case, expected, got, hint)
        self.ok()

    def raises(self, case: str, exc: type, fn: Callable, *args, hint: str | None = None, **kwargs):
        try:
            fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except exc:
            self.ok()
            return
        except Exception as e:  # noqa: BLE001
            self.fail(case, f"{exc.__name__} with a clear message", f"{type(e).__name__}: {e}",
                      hint or f"check the input first and raise {exc.__name__}(...) naming the problem")
        self.fail(case, f"{exc.__name__} with a clear message", "no exception",
                  hint or f"check the input first and raise {exc.__name__}(...) naming the problem")

    def grad(self, case: str, loss, tensors: dict, expected: dict | None = None,
             hint: str | None = None, atol: float = 1e-4):
        """loss.backward() works, every tensor gets a finite gradient (equal to expected[name])."""
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            self.fail(case, "a loss tensor connected to the inputs (requires_grad=True)",
                      f"{type(loss).__name__} without a gradient",
                      hint or "do not call .item(), .detach() or torch.no_grad() on the path to the loss")
        if loss.dim() != 0:
            self.fail(case, "a scalar loss (0-d tensor)", f"shape {list(loss.shape)}", hint)
        loss.backward()
        for name, t in tensors.items():
            if t.grad is None or not torch.isfinite(t.grad).all():
                self.fail(case, f"a finite gradient for `{name}`",
                          "None" if t.grad is None else _fmt(t.grad),
                          hint or "keep the computation in torch (no .item()/.numpy()/detach) and "
                                  "use stable ops (log_softmax, logsigmoid)")
            if expected and name in expected:
                self.close(f"{case}: d loss / d {name}", t.grad, expected[name], hint)
                self.passed -= 1          # the gradient values count with this case
        self.ok()


def _fmt(x) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().double()
        if x.dim() == 0:
            return str(_round(x.item()))
        return str([_round(v) for v in x.flatten().tolist()] if x.dim() == 1
                   else [[_round(v) for v in row] for row in x.reshape(x.shape[0], -1).tolist()])
    if isinstance(x, (list, tuple)):
        return str([_round(v) for v in x])
    return str(_round(x))


def _round(v):
    if isinstance(v, float):
        return round(v, 6) + 0.0          # + 0.0 turns -0.0 into 0.0
    if isinstance(v, (list, tuple)):
        return [_round(u) for u in v]
    return v


def t(x, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32, requires_grad=grad)


# ---------------------------------------------------------------------------------- registry
CHECKS: dict[str, tuple[Callable[[Callable, Checker], None], str]] = {}


def _register(name: str, hint: str):
    def deco(f):
        CHECKS[name] = (f, hint)
        return f
    return deco


def known() -> list[str]:
    return sorted(CHECKS)


def check(name: str) -> None:
    """Run the visible checks of exercise `name` (e.g. ``"kl_estimate"``) on your function."""
    key = name.split(".")[-1]
    if key not in CHECKS:
        raise KeyError(f"check: no visible checks for {name!r}; known: {known()}")
    ex = exercises.get(key)
    fn = getattr(importlib.import_module(f"course_lib.{ex.module}"), ex.name)
    body, hint = CHECKS[key]
    c = Checker(ex, hint)
    body(fn, c)
    print(f"✓ exercise {ex.number} {ex.name}: {c.passed}/{c.passed} visible checks passed")


# ================================================================ unit 01: reward functions
@_register("format_reward", "strip the text, then re.fullmatch(FORMAT_PATTERN, text) -> 1.0 else -1.0 "
           "(floats, one per completion); use as_text(completions) for chat messages")
def _format_reward(fn, c):
    good = "Question: What is 2 + 3?\nAnswer: 5"
    got = c.call("basic", fn, [good, "The answer is 5"])
    c.close("one good, one plain answer", got, [1.0, -1.0], kind="list")
    got = c.call("whitespace", fn, ["  \n" + good + "  \n"])
    c.close("leading/trailing whitespace is ignored", got, [1.0], kind="list",
            hint="strip() the completion before matching")
    got = c.call("trailing", fn, [good + "\nQuestion: What is 4 + 4?"])
    c.close("text after the answer line is not the format", got, [-1.0], kind="list",
            hint="use re.fullmatch (the WHOLE text must match), not re.search / re.match")
    got = c.call("empty parts", fn, ["Question: \nAnswer: 5", "Question: Why?\nAnswer: ", ""])
    c.close("an empty question, an empty answer, an empty string", got, [-1.0, -1.0, -1.0], kind="list")
    got = c.call("chat", fn, [[{"role": "assistant", "content": good}]], prompts=["x"])
    c.close("chat-format completion (+ an extra keyword argument)", got, [1.0], kind="list",
            hint="convert with as_text(completions) and accept **kwargs")


@_register("correctness_reward", "take the LAST integer of the completion (re.findall(r'-?\\d+', text)[-1]) "
           "and of the answer (GSM8K answers end with '#### 68'), compare them as ints -> 1.0 / 0.0")
def _correctness_reward(fn, c):
    comps = ["3 + 4 = 7", "7 or maybe 8", "-5", "so she earns 68.", "no number here", "12"]
    answers = ["7", "7", -5, "4 * 17 = 68 dollars.\n#### 68", "3", "2"]
    got = c.call("batch", fn, comps, answer=answers, prompts=["p"] * 6)
    c.close("last integer == answer", got[:2] if isinstance(got, list) else got, [1.0, 0.0],
            kind="list", hint="compare the LAST integer of the completion ('7 or maybe 8' -> 8)")
    c.close("negative numbers", got[2:3], [1.0], kind="list",
            hint="the pattern needs the minus sign: r'-?\\d+'; answers may be ints")
    c.close("GSM8K-style answer '... #### 68'", got[3:4], [1.0], kind="list",
            hint="take the last integer of the answer string too")
    c.close("no integer / a different number", got[4:], [0.0, 0.0], kind="list",
            hint="no integer -> 0.0; compare whole integers ('12' is not '2')")
    c.raises("3 completions, 2 answers", ValueError, fn, ["1", "2", "3"], answer=["1", "2"])


@_register("sentiment_reward", "return course_lib.core.sentiment.get_scorer().positive_probability(texts) "
           "as a list of floats (texts = as_text(completions))")
def _sentiment_reward(fn, c):
    from course_lib.core.sentiment import get_scorer
    texts = ["I loved this wonderful, brilliant film.", "I hated this awful, boring film."]
    got = c.call("basic", fn, texts, prompts=["a", "b"])
    want = get_scorer().positive_probability(texts)
    c.close("equals the provided scorer", got, want, kind="list", atol=1e-5)
    c.true("in [0, 1]", all(0.0 <= float(v) <= 1.0 for v in got), "values in [0, 1]", str(got))
    if getattr(get_scorer(), "name", None) == "vader":
        c.true("positive > negative", got[0] > 0.5 > got[1], "first > 0.5 > second", str(got))
    got = c.call("chat", fn, [[{"role": "assistant", "content": texts[0]}]])
    c.close("chat-format completion", got, want[:1], kind="list", atol=1e-5,
            hint="convert with as_text(completions)")


@_register("repetition_penalty", "1 - len(set(words)) / len(words) with words = text.lower().split(); "
           "0.0 for an empty text")
def _repetition_penalty(fn, c):
    got = c.call("batch", fn, ["the cat sat", "great great great great", "Great great GREAT",
                               "a b a b", ""])
    c.close("no repeats", got[:1], [0.0], kind="list")
    c.close("'great' x4: 1 - 1/4", got[1:2], [0.75], kind="list")
    c.close("case-insensitive: 1 - 1/3", got[2:3], [2 / 3], kind="list", hint="lower-case the words first")
    c.close("'a b a b': 1 - 2/4", got[3:4], [0.5], kind="list")
    c.close("empty completion", got[4:], [0.0], kind="list", hint="no words -> 0.0 (avoid dividing by 0)")


@_register("length_penalty", "count words with text.split(); 0.0 if min_words <= n <= max_words "
           "(inclusive), else -1.0")
def _length_penalty(fn, c):
    words = lambda n: " ".join(["w"] * n)  # noqa: E731
    got = c.call("defaults", fn, [words(3), words(4), words(40), words(41), ""])
    c.close("3 / 4 / 40 / 41 / 0 words with the defaults 4..40", got, [-1.0, 0.0, 0.0, -1.0, -1.0],
            kind="list", hint="the bounds are inclusive: 4 and 40 words are fine")
    got = c.call("custom bounds", fn, ["a b", "a b c"], min_words=1, max_words=2)
    c.close("min_words=1, max_words=2", got, [0.0, -1.0], kind="list",
            hint="use the min_words / max_words arguments, not fixed numbers")


@_register("exponential_shaping", "exp(score / temperature) - 1: divide by T, subtract 1 "
           "(a score of 0 maps to 0); a list in -> a list out, a tensor in -> a tensor out")
def _exponential_shaping(fn, c):
    got = c.call("list", fn, [0.0, 1.0, 2.0])
    c.close("T=1: [e^0-1, e^1-1, e^2-1]", got, [0.0, 1.7182818, 6.3890561], kind="list")
    got = c.call("temperature", fn, [1.0], temperature=0.5)
    c.close("T=0.5: e^(1/0.5)-1", got, [6.3890561], kind="list", hint="divide by the temperature")
    got = c.call("tensor", fn, t([0.0, -1.0]), temperature=2.0)
    c.close("a tensor, T=2: [0, e^-0.5-1]", got, [0.0, -0.3934693], kind="tensor")
    c.raises("temperature 0", ValueError, fn, [1.0], temperature=0.0)
    c.raises("temperature < 0", ValueError, fn, [1.0], temperature=-1.0)


@_register("combine_rewards", "return a new function R(completions, **kwargs) that sums "
           "w_i * f_i(completions, **kwargs) per completion")
def _combine_rewards(fn, c):
    def ones(completions, **kw):
        return [1.0] * len(completions)

    def length(completions, **kw):
        return [float(len(x)) for x in completions]

    def from_answer(completions, answer, **kw):
        return [float(a) for a in answer]

    R = c.call("build", fn, [ones, length], [2.0, -0.5])
    c.true("returns a function", callable(R), "a callable reward function", repr(R))
    got = c.call("call", R, ["ab", "abcd"])
    c.close("2*1 - 0.5*len", got, [1.0, 0.0], kind="list")
    R2 = c.call("build with kwargs", fn, [from_answer, ones], [3.0, 1.0])
    got = c.call("kwargs", R2, ["x", "y"], answer=[1, 2], prompts=["p", "q"])
    c.close("keyword arguments reach every component", got, [4.0, 7.0], kind="list",
            hint="pass **kwargs through to each reward function")
    c.raises("2 functions, 1 weight", ValueError, fn, [ones, length], [1.0])
    c.raises("no functions", ValueError, fn, [], [])


# ================================================================ unit 02: KL penalties
@_register("token_logprobs", "log_softmax(logits, dim=-1) then .gather(-1, tokens.unsqueeze(-1))"
           ".squeeze(-1); no shifting")
def _token_logprobs(fn, c):
    # t0: logits [0,0,0] -> p = 1/3 each;  t1: [0, ln 2, 0] -> p = [1/4, 1/2, 1/4]
    logits = t([[[0.0, 0.0, 0.0], [0.0, LN2, 0.0]]], grad=True)
    tokens = torch.tensor([[2, 1]])
    got = c.call("uniform and skewed", fn, logits, tokens)
    c.close("[[log 1/3, log 1/2]]", got, [[-1.0986123, -0.6931472]], kind="tensor",
            hint="log_softmax over the vocabulary, gather the given token, and do NOT shift positions")
    c.grad("gradient of the sum", got.sum(), {"logits": logits},
           {"logits": [[[-1 / 3, -1 / 3, 2 / 3], [-0.25, 0.5, -0.25]]]})
    got = c.call("large logits", fn, t([[[1000.0, 0.0]]]), torch.tensor([[1]]))
    c.close("logits [1000, 0], token 1 -> -1000", got, [[-1000.0]], atol=1e-2,
            hint="softmax().log() underflows to -inf: use F.log_softmax")
    got = c.call("batch of 2", fn, t([[[0.0, LN3]], [[LN3, 0.0]]]), torch.tensor([[1], [1]]))
    c.close("[[log 3/4], [log 1/4]]", got, [[-0.2876821], [-1.3862944]])
    c.raises("tokens [1, 3] for logits [1, 2, 3]", ValueError, fn, t([[[0.0] * 3] * 2]),
             torch.tensor([[0, 1, 2]]))


@_register("kl_estimate", "log r = ref_logp - logp (reference over policy); k1 = -log r, "
           "k2 = (log r)^2 / 2, k3 = exp(log r) - 1 - log r")
def _kl_estimate(fn, c):
    logp, ref = t([-1.0, -2.0, -0.5], grad=True), t([-2.0, -1.0, -0.5])
    # log r = ref - logp = [-1, 1, 0]
    c.close("k1 = -log r", c.call("k1", fn, logp, ref, "k1"), [1.0, -1.0, 0.0], kind="tensor",
            hint="log r is ref_logp - logp, not the other way round; k1 = -log r = logp - ref_logp")
    c.close("k2 = (log r)^2 / 2", c.call("k2", fn, logp, ref, "k2"), [0.5, 0.5, 0.0],
            hint="k2 is HALF the squared log-ratio")
    k3 = c.call("k3", fn, logp, ref, "k3")
    c.close("k3 = exp(log r) - 1 - log r", k3, [0.3678794, 0.7182818, 0.0],
            hint="log r is ref_logp - logp, not the other way round; k3 = exp(log r) - 1 - log r")
    c.close("default kind is k3", c.call("default", fn, logp, ref), [0.3678794, 0.7182818, 0.0],
            hint="the default is kind='k3'")
    c.grad("d k3 / d logp = 1 - exp(log r)", k3.sum(), {"logp": logp},
           {"logp": [1 - math.exp(-1), 1 - math.e, 0.0]})
    c.raises("unknown kind 'k4'", ValueError, fn, logp, ref, "k4")
    c.raises("shapes [3] vs [2]", ValueError, fn, logp, t([0.0, 0.0]))


@_register("exact_kl", "KL(p || q) = sum_v p_v (log p_v - log q_v) with log p = log_softmax(p_logits); "
           "it weighs by p, the FIRST argument")
def _exact_kl(fn, c):
    # p = [1/2, 1/2], q = [1/4, 3/4]: KL(p||q) = 0.5 ln 2 + 0.5 ln(2/3) = 0.5 ln(4/3)
    p = t([0.0, 0.0], grad=True)
    got = c.call("two coins", fn, p, t([0.0, LN3]))
    c.close("KL([1/2,1/2] || [1/4,3/4]) = 0.5 ln(4/3)", got, 0.1438410, kind="tensor",
            hint="KL(p||q) is not symmetric: weigh by p (softmax of the FIRST argument); "
                 "KL(q||p) would be 0.1308")
    c.grad("gradient", got, {"p_logits": p})
    c.close("identical distributions -> 0", c.call("same", fn, t([[1.0, 2.0, 3.0]]), t([[1.0, 2.0, 3.0]])),
            [0.0])
    c.close("logits shifted by a constant describe the same distribution",
            c.call("shift", fn, t([5.0, 5.0]), t([7.0, 7.0 + LN3])), 0.1438410)
    c.close("large logits [1000, 0] vs [0, 1000] -> 1000", c.call("large", fn, t([1000.0, 0.0]),
                                                                  t([0.0, 1000.0])),
            1000.0, atol=1e-2, hint="use log_softmax for both (softmax().log() gives inf/nan)")
    got = c.call("shape", fn, torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    c.close("[2, 3, 4] logits -> [2, 3]", got, [[0.0] * 3] * 2, hint="sum over the LAST dimension only")


@_register("kl_penalized_rewards", "every response token gets -beta * (logp - ref_logp); add the score "
           "on the LAST token where mask is 1 (not at index -1, which may be padding); 0 where mask is 0")
def _kl_penalized_rewards(fn, c):
    scores = t([1.0, 2.0])
    logp = t([[-1.0, -1.0, -1.0], [-2.0, -2.0, 5.0]])
    ref = t([[-1.5, -1.0, -0.5], [-1.0, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # k1 = logp - ref: [[0.5, 0, -0.5], [-1, 0, (5: padding)]]; -0.1 * k1 = [[-.05, 0, .05], [.1, 0, 0]]
    got = c.call("batch", fn, scores, logp, ref, mask, 0.1)
    c.close("[[-0.05, 0, 0.05 + 1], [0.1, 0 + 2, 0 (padding)]]", got, [[-0.05, 0.0, 1.05], [0.1, 2.0, 0.0]],
            kind="tensor")
    got = c.call("beta 0", fn, scores, logp, ref, mask, 0.0)
    c.close("beta = 0: only the scores on the last response tokens", got,
            [[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]],
            hint="the score goes on the last position where mask == 1")
    c.raises("a row with an all-zero mask", ValueError, fn, scores, logp, ref,
             torch.tensor([[1, 1, 1], [0, 0, 0]]), 0.1)
    c.raises("scores [3] for a batch of 2", ValueError, fn, t([1.0, 2.0, 3.0]), logp, ref, mask, 0.1)


# ================================================================ unit 03: SFT
def _toy_tokenizer(pad: bool = True):
    """A word-level tokenizer with a fixed vocabulary: the ids below are known exactly."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, "hi": 3, "there": 4, "you": 5, "ok": 6, "yes": 7,
             "no": 8}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    kw = {"pad_token": "<pad>"} if pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", unk_token="<unk>", **kw)


@_register("tokenize_prompt_and_completion", "tokenize prompt and completion separately, concatenate, "
           "right-pad to the longest; input_ids = ids[:, :-1], labels = ids[:, 1:], and shift the "
           "completion mask the same way as the labels")
def _tokenize(fn, c):
    tok = _toy_tokenizer()
    # "hi there" + "ok" -> [3, 4, 6] (+ pad 0); "yes" + "no no you" -> [7, 8, 8, 5]
    out = c.call("two pairs", fn, ["hi there", "yes"], ["ok", "no no you"], tok)
    c.true("keys", isinstance(out, dict) and {"input_ids", "labels", "completion_mask"} <= set(out),
           "a dict with input_ids, labels, completion_mask", repr(type(out)) if not isinstance(out, dict)
           else str(sorted(out)))
    c.close("input_ids = padded ids without the last position", out["input_ids"], [[3, 4, 6], [7, 8, 8]],
            kind="tensor", hint="input_ids drop the LAST position of the padded ids")
    c.close("labels = padded ids without the first position", out["labels"], [[4, 6, 0], [8, 8, 5]],
            hint="labels drop the FIRST position (shift by one); pad on the right with pad_token_id")
    c.close("completion_mask is 1 where the LABEL is a completion token", out["completion_mask"],
            [[0, 1, 0], [1, 1, 1]], hint="build the mask on the full sequence, then drop the first "
                                           "position like the labels; padding is 0")
    c.true("dtype", all(out[k].dtype == torch.long for k in ("input_ids", "labels", "completion_mask")),
           "int64 (torch.long) tensors", str({k: str(v.dtype) for k, v in out.items()}))
    out = c.call("no pad token", fn, ["hi there", "yes"], ["ok", "no no you"], _toy_tokenizer(pad=False))
    c.close("without a pad token, pad with eos_token_id (1)", out["labels"], [[4, 6, 1], [8, 8, 5]],
            hint="pad = tokenizer.pad_token_id if it is not None else tokenizer.eos_token_id")
    c.raises("2 prompts, 1 completion", ValueError, fn, ["hi", "yes"], ["ok"], tok)


@_register("masked_mean", "sum(x * mask, dim) / sum(mask, dim); dim=None sums over everything")
def _masked_mean(fn, c):
    x = t([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], grad=True)
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    got = c.call("dim=None", fn, x, mask)
    c.close("dim=None: (1+2+5+6)/4", got, 3.5, kind="tensor",
            hint="divide by the number of masked entries (4), not by x.numel() (6)")
    c.grad("gradient = mask / 4", got, {"x": x}, {"x": [[0.25, 0.25, 0.0], [0.0, 0.25, 0.25]]})
    c.close("dim=1: per row", c.call("dim=1", fn, x, mask, dim=1), [1.5, 5.5])
    c.close("dim=0: per column", c.call("dim=0", fn, x, mask, dim=0), [1.0, 3.5, 6.0])
    c.close("a bool mask works too", c.call("bool", fn, x, mask.bool()), 3.5,
            hint="convert the mask to x's dtype first (mask.to(x.dtype))")
    c.raises("an all-zero mask (mean over nothing)", ValueError, fn, x, torch.zeros(2, 3))
    c.raises("shapes [2, 3] vs [3]", ValueError, fn, x, torch.ones(3))


@_register("sft_loss", "token-level mean: sum of mask * NLL over ALL completion tokens / number of "
           "completion tokens (not a mean of per-sequence means); replace masked labels (-100) before gather")
def _sft_loss(fn, c):
    # row 0: t0 logits [0,0] label 0 -> ln 2; t1 [ln3, 0] label 0 -> -ln(3/4); t2 padding (-100)
    # row 1: t0 [0, ln3] label 0 -> ln 4; t1, t2 padding. token mean = (ln2 + ln(4/3) + ln4) / 3
    logits = t([[[0.0, 0.0], [LN3, 0.0], [5.0, 5.0]], [[0.0, LN3], [1.0, 2.0], [0.0, 0.0]]], grad=True)
    labels = torch.tensor([[0, 0, -100], [0, 1, -100]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    got = c.call("two rows, -100 labels on padding", fn, logits, labels, mask)
    c.close("(ln 2 + ln 4/3 + ln 4) / 3", got, 0.7890412, kind="tensor",
            hint="every completion token weighs the same: sum over the batch / mask.sum() "
                 "(a mean of per-row means gives 0.9384)")
    c.grad("gradient", got, {"logits": logits},
           {"logits": [[[-1 / 6, 1 / 6], [-1 / 12, 1 / 12], [0.0, 0.0]],
                       [[-0.25, 0.25], [0.0, 0.0], [0.0, 0.0]]]},
           hint="masked positions must get zero gradient")
    got = c.call("all tokens", fn, torch.zeros(1, 2, 4), torch.tensor([[1, 3]]), torch.ones(1, 2))
    c.close("uniform logits over 4 tokens -> ln 4", got, 1.3862944)


class _ToyLM(torch.nn.Module):
    """logits = a [V, V] table indexed by the input token (zero-initialised: uniform)."""

    def __init__(self, V: int = 4):
        super().__init__()
        self.table = torch.nn.Embedding(V, V)
        torch.nn.init.zeros_(self.table.weight)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        from types import SimpleNamespace
        return SimpleNamespace(logits=self.table(input_ids))


@_register("sft_train_step", "model.train(); logits = model(input_ids=...).logits; loss = sft.sft_loss(...); "
           "optimizer.zero_grad(); loss.backward(); clip_grad_norm_ if max_grad_norm; optimizer.step(); "
           "return loss.item()")
def _sft_train_step(fn, c):
    batch = {"input_ids": torch.tensor([[0, 1, 2]]), "labels": torch.tensor([[1, 2, 3]]),
             "completion_mask": torch.tensor([[0, 1, 1]])}
    # zero table -> uniform logits -> loss ln 4. d loss/d logits at the 2 counted positions =
    # (1/4 - onehot)/2, so the table rows 1 and 2 get [1/8, 1/8, -3/8, 1/8] and [1/8, 1/8, 1/8, -3/8]
    model = _ToyLM().eval()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model.table.weight.grad = torch.full_like(model.table.weight, 100.0)   # stale gradient
    loss = c.call("one step", fn, model, batch, opt, max_grad_norm=None)
    c.close("returns the loss before the step as a float: ln 4", loss, 1.3862944, kind="float")
    c.true("training mode", model.training, "model.train() was called", "model is in eval mode")
    c.close("SGD lr=1 step on the table (no clipping)", model.table.weight.detach(),
            [[0.0] * 4, [-0.125, -0.125, 0.375, -0.125], [-0.125, -0.125, -0.125, 0.375], [0.0] * 4],
            hint="call optimizer.zero_grad() BEFORE loss.backward() (stale gradients were left in "
                 "the parameters), then optimizer.step(); only completion tokens count")
    model = _ToyLM()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    c.call("clipped step", fn, model, batch, opt, max_grad_norm=0.1)
    norm = model.table.weight.detach().norm().item()   # unclipped gradient norm is sqrt(0.375) = 0.612
    c.close("max_grad_norm=0.1 clips the update to norm 0.1", norm, 0.1, atol=1e-3,
            hint="torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm) between backward and step")
    c.raises("a batch without 'labels'", KeyError, fn, _ToyLM(), {"input_ids": batch["input_ids"],
             "completion_mask": batch["completion_mask"]}, opt)


# ================================================================ unit 04: reward model
@_register("bradley_terry_loss", "mean(-F.logsigmoid(r_chosen - r_rejected - margin)); chosen minus "
           "rejected, and the margin is SUBTRACTED")
def _bradley_terry(fn, c):
    rc, rr = t([2.0, 0.0], grad=True), t([0.0, 0.0])
    got = c.call("basic", fn, rc, rr)
    # -logsigmoid(2) = ln(1 + e^-2) = 0.126928, -logsigmoid(0) = ln 2
    c.close("mean(ln(1+e^-2), ln 2)", got, 0.4100376, kind="tensor",
            hint="the loss is -logsigmoid(r_chosen - r_rejected): chosen minus rejected")
    c.grad("d loss / d r_chosen = -sigmoid(-(rc - rr)) / B", got, {"r_chosen": rc},
           {"r_chosen": [-0.0596015, -0.25]})
    c.close("margin 1.0", c.call("margin float", fn, rc, rr, margin=1.0), 0.8132617,
            hint="subtract the margin: -logsigmoid(r_c - r_r - margin)")
    c.close("margin [1, 0]", c.call("margin tensor", fn, rc, rr, margin=t([1.0, 0.0])), 0.5032044)
    c.close("r_c - r_r = -200 (stability)", c.call("large", fn, t([-200.0]), t([0.0])), 200.0, atol=1e-2,
            hint="log(sigmoid(x)) underflows: use F.logsigmoid")
    c.raises("shapes [2] vs [3]", ValueError, fn, rc, t([0.0, 0.0, 0.0]))


@_register("preference_accuracy", "(r_chosen > r_rejected).float().mean().item(): strictly greater "
           "(a tie is wrong), returned as a Python float")
def _preference_accuracy(fn, c):
    got = c.call("basic", fn, t([1.0, 2.0, 3.0, 0.0]), t([0.0, 2.0, 4.0, -1.0]))
    c.close("[right, tie, wrong, right] -> 0.5", got, 0.5, kind="float",
            hint="strictly greater: a tie counts as wrong; return a Python float (.item())")
    c.close("all right", c.call("all", fn, t([1.0, 1.0]), t([0.0, 0.5])), 1.0, kind="float")
    c.raises("empty batch", ValueError, fn, t([]), t([]))


@_register("last_token_pool", "index each row at its last position with attention_mask == 1 "
           "(mask.sum(-1) - 1 under right padding), not at -1")
def _last_token_pool(fn, c):
    values = t([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]], grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    got = c.call("[B, T]", fn, values, mask)
    c.close("last real tokens", got, [3.0, 8.0, 9.0], kind="tensor",
            hint="position -1 is padding in row 0: use the last position where attention_mask is 1")
    c.grad("gradient reaches the picked positions", got.sum(), {"values": values},
           {"values": [[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]})
    got = c.call("[B, T, H]", fn, torch.arange(12.0).reshape(2, 3, 2), torch.tensor([[1, 1, 0], [1, 1, 1]]))
    c.close("[B, T, H] -> [B, H]", got, [[2.0, 3.0], [10.0, 11.0]])
    c.raises("a row with no real token", ValueError, fn, values, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0],
                                                                           [1, 1, 0, 0]]))


# ================================================================ unit 05: PPO
@_register("compute_gae", "zero rewards/values where mask is 0; for t from T-1 down to 0: "
           "delta = r_t + gamma*V_{t+1} - V_t, A_t = delta + gamma*lam*A_{t+1} (V_T = A_T = 0); "
           "returns = A + V")
def _compute_gae(fn, c):
    # gamma 0.9, lam 0.5, r = [0, 0, 1], V = 0.5: A2 = 1 - 0.5 = 0.5;
    # A1 = (0 + 0.45 - 0.5) + 0.45*0.5 = 0.175; A0 = -0.05 + 0.45*0.175 = 0.02875
    values = t([[0.5, 0.5, 0.5]], grad=True)
    adv, ret = c.call("1x3", fn, t([[0.0, 0.0, 1.0]]), values, torch.ones(1, 3), gamma=0.9, lam=0.5,
                      n_out=2)
    c.close("advantages, gamma 0.9, lam 0.5", adv, [[0.02875, 0.175, 0.5]], kind="tensor",
            hint="go BACKWARDS in time; A_t = delta_t + gamma*lam*A_{t+1}")
    c.close("returns = advantages + values", ret, [[0.52875, 0.675, 1.0]])
    c.true("no gradient", not adv.requires_grad and not ret.requires_grad,
           "advantages/returns that do not require grad", "tensors with requires_grad=True",
           hint="detach rewards and values (advantages are targets, not part of the graph)")
    # padded: r = [0, 1, (5)], V = [0.5, 0.5, (9)], gamma = lam = 1 -> zeroed r/V:
    # A2 = 0 -> masked; A1 = 1 - 0.5 = 0.5; A0 = 0 + 0.5 - 0.5 + 0.5 = 0.5
    adv, ret = c.call("padding", fn, t([[0.0, 1.0, 5.0]]), t([[0.5, 0.5, 9.0]]),
                      torch.tensor([[1, 1, 0]]), gamma=1.0, lam=1.0, n_out=2)
    c.close("padding is ignored (rewards/values zeroed, V after the end = 0)", adv, [[0.5, 0.5, 0.0]],
            hint="multiply rewards and values by the mask BEFORE the recursion; outputs are 0 on padding")
    c.close("returns with padding", ret, [[1.0, 1.0, 0.0]])
    adv, _ = c.call("defaults", fn, t([[0.0, 0.0, 1.0]]), torch.zeros(1, 3), torch.ones(1, 3), n_out=2)
    c.close("defaults gamma=1, lam=0.95: [0.95^2, 0.95, 1]", adv, [[0.9025, 0.95, 1.0]])


@_register("whiten", "mean and Bessel variance over the MASKED entries only: var = sum(mask*(x-mean)^2) / "
           "(sum(mask) - 1); (x - mean) / sqrt(var + 1e-8)")
def _whiten(fn, c):
    x, mask = t([[1.0, 3.0, 5.0, 100.0]]), torch.tensor([[1, 1, 1, 0]])
    # masked mean 3, Bessel variance (4 + 0 + 4) / 2 = 4 -> std 2
    got = c.call("basic", fn, x, mask)
    c.close("mean 3, std 2 (Bessel)", got, [[-1.0, 0.0, 1.0, 48.5]], kind="tensor",
            hint="Bessel: divide the squared deviations by (n - 1) = 2, not n = 3 (gives +-1.2247); "
                 "statistics over masked entries only; transform every position")
    c.close("shift_mean=False adds the mean back", c.call("no shift", fn, x, mask, shift_mean=False),
            [[2.0, 3.0, 4.0, 51.5]], hint="shift_mean=False: (x - mean)/std + mean")
    c.raises("only one masked entry", ValueError, fn, x, torch.tensor([[1, 0, 0, 0]]))


@_register("ppo_policy_loss", "rho = exp(logp - old_logp); per token max(-A*rho, -A*clip(rho, 1-eps, 1+eps)); "
           "masked mean; clip fraction = masked mean of (clipped term > unclipped term), detached")
def _ppo_policy_loss(fn, c):
    logp = t([[math.log(1.5), math.log(0.5), math.log(1.1), math.log(0.5), math.log(3.0)]], grad=True)
    old = torch.zeros(1, 5)
    A = t([[1.0, 1.0, -1.0, -1.0, 10.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    # per token: max(-1.5, -1.2) = -1.2 (clipped); max(-0.5, -0.8) = -0.5; 1.1; max(0.5, 0.8) = 0.8
    loss, frac = c.call("5 tokens, last one padding", fn, logp, old, A, mask, 0.2, n_out=2)
    c.close("loss = (-1.2 - 0.5 + 1.1 + 0.8) / 4", loss, 0.05, kind="tensor",
            hint="the loss is max(-A*rho, -A*clip(rho)) (pessimistic), masked mean over response tokens")
    c.close("clip fraction 2/4", frac, 0.5,
            hint="a token counts as clipped when the clipped term is strictly larger than the unclipped one")
    c.true("clip fraction detached", not frac.requires_grad, "clip_fraction without grad", "requires_grad=True")
    c.grad("d loss / d logp: 0 where clipped, -A*rho/4 elsewhere", loss, {"logp": logp},
           {"logp": [[0.0, -0.125, 0.275, 0.0, 0.0]]})
    loss, frac = c.call("on-policy", fn, torch.zeros(2, 2), torch.zeros(2, 2), t([[1.0, 2.0], [3.0, 4.0]]),
                        torch.ones(2, 2), n_out=2)
    c.close("rho = 1: loss = -mean(A)", loss, -2.5)


@_register("ppo_value_loss", "v_clip = old + clip(values - old, -c, c); 0.5 * masked mean of the MAX of "
           "(values - returns)^2 and (v_clip - returns)^2")
def _ppo_value_loss(fn, c):
    values = t([[1.0, 2.0, 10.0]], grad=True)
    old, ret = t([[0.5, 2.5, 0.0]]), t([[2.0, 3.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    # t0: v_clip = 0.7: max(1, 1.69) = 1.69; t1: v_clip = 2.3: max(1, 0.49) = 1 -> 0.5 * 2.69 / 2
    got = c.call("clipping both ways", fn, values, old, ret, mask, 0.2)
    c.close("0.5 * (1.69 + 1) / 2", got, 0.6725, kind="tensor",
            hint="take the MAX of the clipped and unclipped squared errors, times 0.5, masked mean")
    c.grad("d loss / d values", got, {"values": values}, {"values": [[0.0, -0.5, 0.0]]})
    c.close("no clipping needed", c.call("small change", fn, t([[1.0]]), t([[1.0]]), t([[3.0]]),
                                          torch.ones(1, 1)), 2.0)


@_register("entropy_from_logits", "H = logsumexp(logits) - sum(softmax(logits) * logits) over the last dim")
def _entropy(fn, c):
    logits = t([[0.0, 0.0, 0.0, 0.0], [0.0, LN3, -1e9, -1e9]], grad=True)
    got = c.call("uniform / two-point", fn, logits)
    # uniform over 4: ln 4; p = [1/4, 3/4]: -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623351
    c.close("[ln 4, H(1/4, 3/4)]", got, [1.3862944, 0.5623351], kind="tensor")
    c.grad("gradient", got.sum(), {"logits": logits})
    c.close("large logits [1000, 0, 0] -> 0", c.call("large", fn, t([1000.0, 0.0, 0.0])), 0.0,
            hint="-sum p log p with p = softmax gives nan for large logits: use logsumexp")
    c.close("[2, 3, 5] -> [2, 3]", c.call("shape", fn, torch.zeros(2, 3, 5)), [[math.log(5)] * 3] * 2,
            hint="reduce over the LAST dimension only")


# ================================================================ unit 06: GRPO
@_register("group_advantages", "groups are contiguous: rewards.view(-1, group_size); subtract each group's "
           "mean; 'group' divides by that group's std(unbiased=True) + eps, 'batch' by the std of all "
           "rewards + eps, 'none' by nothing")
def _group_advantages(fn, c):
    r = t([1.0, 2.0, 3.0, 0.0, 0.0, 4.0])
    # group 0: mean 2, std 1; group 1: mean 4/3, std sqrt(16/3) = 2.3094
    c.close("scale='group'", c.call("group", fn, r, 3),
            [-0.9999, 0.0, 0.9999, -0.5773253, -0.5773253, 1.1546506], kind="tensor",
            hint="contiguous groups (rows 0..2 are one prompt), Bessel std (unbiased=True), "
                 "std + eps in the denominator")
    c.close("scale='batch' (std of all 6 = 1.63299)", c.call("batch", fn, r, 3, scale="batch"),
            [-0.6123349, 0.0, 0.6123349, -0.8164465, -0.8164465, 1.6328930],
            hint="'batch': subtract the GROUP mean but divide by the std of ALL rewards")
    c.close("scale='none' (Dr. GRPO)", c.call("none", fn, r, 3, scale="none"),
            [-1.0, 0.0, 1.0, -4 / 3, -4 / 3, 8 / 3])
    c.close("a group with equal rewards -> 0 (eps avoids 0/0)", c.call("flat", fn, t([2.0, 2.0, 1.0, 3.0]), 2),
            [0.0, 0.0, -0.7070568, 0.7070568])
    c.raises("5 rewards, group_size 3", ValueError, fn, t([1.0] * 5), 3)
    c.raises("group_size 1", ValueError, fn, t([1.0, 2.0]), 1)
    c.raises("unknown scale", ValueError, fn, r, 3, scale="median")


@_register("grpo_loss", "per token -min(rho*A, clip(rho)*A) + beta*k3; 'grpo' averages per sequence first, "
           "then over sequences; 'bnpo'/'dapo' divide the masked sum by the number of completion tokens; "
           "'dr_grpo' by B * max_completion_length")
def _grpo_loss(fn, c):
    z = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    A = t([1.0, -2.0])
    # on-policy (rho = 1), beta = 0: per token -A -> row 0: [-1, -1, -1], row 1: [2, (pad), (pad)]
    logp = torch.zeros(2, 3, requires_grad=True)
    got = c.call("grpo", fn, logp, z, None, A, mask, beta=0.0, loss_type="grpo")
    c.close("grpo: mean(-1, 2) = 0.5", got, 0.5, kind="tensor",
            hint="grpo averages per sequence first (row means -1 and 2), then over sequences")
    c.grad("grpo gradient: -A / (n_tokens(row) * B)", got, {"logp": logp},
           {"logp": [[-1 / 6, -1 / 6, -1 / 6], [1.0, 0.0, 0.0]]})
    c.close("bnpo: (-3 + 2) / 4", c.call("bnpo", fn, z, z, None, A, mask, beta=0.0, loss_type="bnpo"), -0.25,
            hint="bnpo: masked sum over the whole batch / number of completion tokens (4)")
    c.close("dapo = bnpo", c.call("dapo", fn, z, z, None, A, mask, beta=0.0, loss_type="dapo"), -0.25)
    c.close("dr_grpo, max_completion_length 4: -1 / (2 * 4)",
            c.call("dr_grpo", fn, z, z, None, A, mask, beta=0.0, loss_type="dr_grpo", max_completion_length=4),
            -0.125, hint="dr_grpo divides the masked sum by B * max_completion_length")
    c.close("dr_grpo without max_completion_length uses T = 3",
            c.call("dr_grpo T", fn, z, z, None, A, mask, beta=0.0, loss_type="dr_grpo"), -1 / 6)
    # clipping: row 0 t0 rho 1.5, A 1 -> -min(1.5, 1.2) = -1.2; row 1 t0 rho 0.5, A -2 -> -min(-1, -1.6) = 1.6
    lp = t([[math.log(1.5), 0.0, 0.0], [math.log(0.5), 0.0, 0.0]])
    c.close("clipping: mean((-1.2 - 1 - 1)/3, 1.6)", c.call("clip", fn, lp, z, None, A, mask, beta=0.0),
            0.2666667, hint="-min(rho*A, clip(rho, 1-eps, 1+eps)*A): the MIN of the two objectives")
    # KL: A = 0, ref - logp = 1 at row 0 t0: k3 = e - 2; beta 0.5 -> row 0 mean 0.5*(e-2)/3, row 1: 0
    ref = t([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    c.close("KL term beta * k3 with log r = ref_logp - logp",
            c.call("kl", fn, z, z, ref, t([0.0, 0.0]), mask, beta=0.5), 0.5 * (math.e - 2) / 3 / 2,
            hint="k3 = exp(ref_logp - logp) - 1 - (ref_logp - logp), times beta, added per token")
    c.raises("unknown loss_type", ValueError, fn, z, z, None, A, mask, beta=0.0, loss_type="mean")
    c.raises("advantages [3] for B = 2", ValueError, fn, z, z, None, t([1.0, 2.0, 3.0]), mask, beta=0.0)


# ================================================================ unit 07: DPO
@_register("sequence_logprobs", "sum over t of mask * log_softmax(logits)[label]; replace masked labels "
           "(-100) before gather; average=True divides by the number of completion tokens")
def _sequence_logprobs(fn, c):
    logits = t([[[0.0, 0.0], [LN3, 0.0], [5.0, 5.0]], [[0.0, LN3], [1.0, 2.0], [0.0, 0.0]]], grad=True)
    labels = torch.tensor([[0, 0, -100], [0, -100, -100]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # row 0: ln 1/2 + ln 3/4 = -0.9808293; row 1: ln 1/4 = -1.3862944
    got = c.call("sum", fn, logits, labels, mask)
    c.close("summed log-probs", got, [-0.9808293, -1.3862944], kind="tensor",
            hint="a SUM over completion tokens (not a mean) unless average=True")
    c.grad("gradient", got.sum(), {"logits": logits})
    c.close("average=True", c.call("average", fn, logits, labels, mask, average=True),
            [-0.4904146, -1.3862944], hint="average=True divides each row by ITS number of completion tokens")
    c.raises("labels [2, 2] for logits [2, 3, 2]", ValueError, fn, logits, labels[:, :2], mask[:, :2])


@_register("dpo_loss", "h = (pi_c - pi_r) - (ref_c - ref_r); sigmoid: -(1-ls)*logsigmoid(beta*h) - "
           "ls*logsigmoid(-beta*h) (beta INSIDE); rewards = beta*(pi - ref).detach()")
def _dpo_loss(fn, c):
    pc, pr = t([-1.0, -2.0], grad=True), t([-2.0, -1.0], grad=True)
    rc, rr = t([-1.5, -2.0]), t([-1.5, -1.0])
    # h = [1, 0]
    losses, ch, rj = c.call("sigmoid", fn, pc, pr, rc, rr, beta=0.5, n_out=3)
    c.close("sigmoid: -logsigmoid(0.5 * h) for h = [1, 0]", losses, [0.4740770, 0.6931472], kind="tensor",
            hint="beta goes INSIDE the sigmoid: -logsigmoid(beta * h); h = policy margin minus reference margin")
    c.grad("d mean loss / d pi_chosen = -beta * sigmoid(-beta h) / B", losses.mean(), {"pi_chosen": pc},
           {"pi_chosen": [-0.0943852, -0.125]})
    c.close("chosen rewards beta * (pi_c - ref_c)", ch, [0.25, 0.0])
    c.close("rejected rewards beta * (pi_r - ref_r)", rj, [-0.25, 0.0])
    c.true("rewards detached", not ch.requires_grad and not rj.requires_grad, "detached rewards",
           "rewards with requires_grad=True", hint="the implicit rewards are for logging: .detach() them")
    c.close("label_smoothing 0.1 (cDPO)", c.call("cdpo", fn, pc, pr, rc, rr, beta=0.5, label_smoothing=0.1, n_out=3)[0],
            [0.5240770, 0.6931472], hint="-(1-ls)*logsigmoid(beta*h) - ls*logsigmoid(-beta*h)")
    c.close("ipo: (h - 1/(2 beta))^2", c.call("ipo", fn, pc, pr, rc, rr, beta=0.5, loss_type="ipo", n_out=3)[0], [0.0, 1.0])
    c.close("hinge: relu(1 - beta h)", c.call("hinge", fn, pc, pr, rc, rr, beta=0.5, loss_type="hinge", n_out=3)[0],
            [0.5, 1.0])
    c.raises("beta = 0", ValueError, fn, pc, pr, rc, rr, beta=0.0)
    c.raises("unknown loss_type", ValueError, fn, pc, pr, rc, rr, loss_type="kto")
    c.raises("shapes [2] vs [3]", ValueError, fn, pc, pr, rc, t([0.0, 0.0, 0.0]))


# ================================================================ exercises that wire the pieces together
@_register("ppo_minibatch_loss", "logp = kl.token_logprobs(logits, response_ids); policy_loss, clip_fraction "
           "= ppo_policy_loss(...); value_loss = ppo_value_loss(...); entropy = masked_mean(entropy_from_logits"
           "(logits), mask); loss = policy_loss + vf_coef * value_loss - entropy_coef * entropy")
def _ppo_minibatch_loss(fn, c):
    logits = torch.zeros(1, 2, 2, requires_grad=True)          # uniform over 2 tokens: logp = ln 1/2
    values = t([[1.0, 0.0]], grad=True)
    batch = {"response_ids": torch.tensor([[0, 1]]), "mask": torch.tensor([[1, 1]]),
             "old_logprobs": t([[math.log(0.5), math.log(0.25)]]),      # rho = [1, 2]
             "old_values": t([[1.0, 0.0]]), "advantages": t([[1.0, -3.0]]), "returns": t([[2.0, 0.0]])}
    # policy: max(-1, -1) = -1; max(6, 3.6) = 6 -> 2.5; value: 0.5 * mean(1, 0) = 0.25; entropy ln 2
    loss, stats = c.call("one minibatch", fn, logits, values, batch, clip_range=0.2, cliprange_value=0.2,
                         vf_coef=0.1, entropy_coef=0.01, n_out=2)
    c.close("loss = 2.5 + 0.1 * 0.25 - 0.01 * ln 2", loss, 2.5 + 0.025 - 0.01 * LN2, kind="tensor",
            hint="loss = policy_loss + vf_coef * value_loss - entropy_coef * entropy (entropy is a bonus)")
    c.true("stats keys", isinstance(stats, dict) and {"policy_loss", "value_loss", "entropy", "clip_fraction",
                                                      "approx_kl"} <= set(stats),
           "policy_loss, value_loss, entropy, clip_fraction, approx_kl",
           str(sorted(stats)) if isinstance(stats, dict) else repr(stats))
    c.close("stats: policy_loss, value_loss, entropy, clip_fraction",
            [float(stats[k]) for k in ("policy_loss", "value_loss", "entropy", "clip_fraction")],
            [2.5, 0.25, LN2, 0.0])
    # approx_kl = masked mean of k3 with log r = logp - old_logprobs = [0, ln 2]: (2 - 1 - ln 2) / 2
    c.close("approx_kl = masked mean of kl_estimate(old_logprobs, logp, 'k3')", stats["approx_kl"],
            (1 - LN2) / 2, hint="KL(old || current): kl.kl_estimate(old_logprobs, logp, 'k3'), masked mean")
    c.true("stats detached", not any(v.requires_grad for v in stats.values()), "detached stats",
           str([k for k, v in stats.items() if v.requires_grad]))
    c.grad("gradient reaches logits and values", loss, {"logits": logits, "values": values},
           {"values": [[-0.05, 0.0]]})
    c.raises("a batch without 'returns'", KeyError, fn, logits, values,
             {k: v for k, v in batch.items() if k != "returns"})


def _toy_rollout(completion_ids, completion_mask):
    from course_lib.core.sampling import Rollout
    B = len(completion_ids)
    return Rollout(prompts=["p"] * B, texts=["t"] * B, prompt_ids=torch.zeros(B, 1, dtype=torch.long),
                   prompt_mask=torch.ones(B, 1, dtype=torch.long),
                   completion_ids=torch.tensor(completion_ids), completion_mask=torch.tensor(completion_mask))


@_register("grpo_step", "model.train(); logp = kl.token_logprobs(sampling.completion_logits(model, rollout, "
           "temperature), rollout.completion_ids); old_logp = logp.detach() if None; loss = grpo_loss(...); "
           "zero_grad, backward, grad_norm = clip_grad_norm_(...), step")
def _grpo_step(fn, c):
    roll = _toy_rollout([[1, 2], [3, 1]], [[1, 1], [1, 0]])
    A = t([1.0, -3.0])
    # uniform logits (zero table): logp = ln 1/4 everywhere; rho = 1; grpo loss = mean(-1, 3) = 1
    model = _ToyLM().eval()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model.table.weight.grad = torch.full_like(model.table.weight, 100.0)   # stale gradient
    out = c.call("on-policy step", fn, model, opt, roll, A, beta=0.0, max_grad_norm=1.0)
    c.true("returns a dict", isinstance(out, dict) and {"loss", "grad_norm", "logp"} <= set(out),
           "a dict with loss, grad_norm, logp", repr(out)[:200])
    c.close("loss (grpo: mean of the row means -1 and 3)", out["loss"], 1.0, kind="float",
            hint="return loss.item(); with old_logp None use logp.detach() (ratio 1)")
    c.close("logp = ln 1/4 per completion token", out["logp"], [[-1.3862944] * 2] * 2,
            hint="kl.token_logprobs(sampling.completion_logits(model, rollout, temperature), "
                 "rollout.completion_ids)")
    c.close("grad_norm before clipping", out["grad_norm"], 1.4031215, kind="float",
            hint="call optimizer.zero_grad() before backward (stale gradients were left in the "
                 "parameters); return the norm that clip_grad_norm_ returns")
    c.close("the clipped update has norm max_grad_norm = 1", model.table.weight.detach().norm(), 1.0,
            atol=1e-3, hint="clip_grad_norm_(model.parameters(), max_grad_norm) between backward and step")
    c.true("training mode", model.training, "model.train() was called", "model is in eval mode")
    model = _ToyLM()
    out = c.call("with old_logp", fn, model, torch.optim.SGD(model.parameters(), lr=0.0), roll, A,
                 old_logp=torch.full((2, 2), math.log(0.25) - LN2), beta=0.0)
    # rho = 2: row 0 -min(2, 1.2) = -1.2; row 1 -min(-6, -3.6) = 6 -> mean 2.4
    c.close("given old_logp (rho = 2, clipped)", out["loss"], 2.4, kind="float",
            hint="use the old_logp you are given when it is not None")
    c.raises("advantages [3] for 2 completions", ValueError, fn, _ToyLM(), opt, roll, t([1.0, 2.0, 3.0]),
             beta=0.0)


@_register("dpo_batch_loss", "one forward over all 2B rows; logps = dpo.sequence_logprobs(logits, labels, "
           "completion_mask, average); chosen = first half, rejected = second half (the same for "
           "ref_logps); dpo.dpo_loss(...)[0].mean()")
def _dpo_batch_loss(fn, c):
    # uniform logits over 4 tokens: a sequence log-prob is n_tokens * ln 1/4
    batch = {"input_ids": torch.tensor([[0, 1], [0, 2], [0, 3], [0, 1]]),
             "labels": torch.tensor([[1, 2], [2, -100], [3, -100], [1, 2]]),
             "completion_mask": torch.tensor([[1, 1], [1, 0], [1, 0], [1, 1]]),
             "ref_logps": t([-3.0, -1.0, -1.5, -2.0])}
    model = _ToyLM()
    # pi = [-2 ln4, -ln4 | -ln4, -2 ln4], ref = [-3, -1 | -1.5, -2]; h = [1.5 - ln 4, ln 4 - 1]
    loss, stats = c.call("two pairs", fn, model, batch, beta=0.5, n_out=2)
    h = [1.5 - 2 * LN2, 2 * LN2 - 1]
    want = sum(math.log1p(math.exp(-0.5 * x)) for x in h) / 2
    c.close("mean of -logsigmoid(0.5 * h)", loss, want, kind="tensor",
            hint="rows 0..B-1 are chosen, rows B..2B-1 rejected (pair i = rows i and B+i): use "
                 "chunk(2), not even/odd rows")
    c.true("stats keys", isinstance(stats, dict) and {"chosen_rewards", "rejected_rewards", "logps"} <= set(stats),
           "a dict with chosen_rewards, rejected_rewards, logps", repr(stats)[:200])
    c.close("logps (policy sequence log-probs)", stats["logps"], [-2.7725887, -1.3862944, -1.3862944, -2.7725887])
    c.close("chosen_rewards = beta * (pi_c - ref_c)", stats["chosen_rewards"], [0.1137056, -0.1931472])
    c.close("rejected_rewards = beta * (pi_r - ref_r)", stats["rejected_rewards"], [0.0568528, -0.3862944])
    c.grad("gradient reaches the model", loss, {"table": model.table.weight})
    loss, _ = c.call("average", fn, _ToyLM(), batch, beta=0.5, average=True, n_out=2)
    # average: pi = -ln 4 for every row -> h = [0 - (-1.5), 0 - 1] = [1.5, -1]
    c.close("average=True", loss, (math.log1p(math.exp(-0.75)) + math.log1p(math.exp(0.5))) / 2,
            hint="pass `average` on to sequence_logprobs")
    odd = {k: v[:3] for k, v in batch.items()}
    c.raises("3 rows (odd)", ValueError, fn, _ToyLM(), odd)
    c.raises("ref_logps [2] for 4 rows", ValueError, fn, _ToyLM(), {**batch, "ref_logps": t([0.0, 0.0])})
