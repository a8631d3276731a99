"""Visible checks of unit 01 (course_lib/rewards.py): exercises 1.1-1.8."""

from __future__ import annotations

from course_lib.checks._checker import fmt, register, t

SPLIT_HINT = (
    "words are separated by ANY run of whitespace (several spaces, newlines, tabs); "
    "an empty string between two spaces is not a word",
    "compare 'a  b'.split(' ') with 'a  b'.split()",
)


@register(
    "format_reward",
    (
        "+1.0 only when the WHOLE completion (surrounding whitespace ignored) is "
        "in the format of FORMAT_PATTERN, -1.0 otherwise: one float per completion",
        "which function of `re` demands that the pattern covers the entire string?",
    ),
)
def _format_reward(fn, c):
    good = "Question: What is 2 + 3?\nAnswer: 5"
    got = c.call("basic", fn, [good, "The answer is 5"])
    c.close(
        "one good, one plain answer",
        got,
        [1.0, -1.0],
        kind="list",
        hint="a completion in the format earns +1.0, any other completion -1.0 (a penalty, not 0)",
    )
    got = c.call("whitespace", fn, ["  \n" + good + "  \n"])
    c.close(
        "leading/trailing whitespace is ignored",
        got,
        [1.0],
        kind="list",
        hint=(
            "whitespace around the completion must not matter",
            "remove the surrounding whitespace before matching",
        ),
    )
    got = c.call("trailing", fn, [good + "\nQuestion: What is 4 + 4?"])
    c.close(
        "text after the answer line is not the format",
        got,
        [-1.0],
        kind="list",
        hint=(
            "the WHOLE text must be in the format: a completion that goes on after the answer line is not",
            "re.search and re.match accept a match at the start / anywhere",
        ),
    )
    got = c.call("empty parts", fn, ["Question: \nAnswer: 5", "Question: Why?\nAnswer: ", ""])
    c.close(
        "an empty question, an empty answer, an empty string",
        got,
        [-1.0, -1.0, -1.0],
        kind="list",
        hint="the question and the answer must both be non-empty: use FORMAT_PATTERN as given",
    )
    got = c.call(
        "chat",
        fn,
        [[{"role": "assistant", "content": good}]],
        prompts=["x"],
        hint=(
            "completions may be chat messages, and unknown keyword arguments must be accepted",
            "see as_text() and the **kwargs in the signature",
        ),
    )
    c.close(
        "chat-format completion (+ an extra keyword argument)",
        got,
        [1.0],
        kind="list",
        hint="chat-format completions are judged by their text (see as_text)",
    )


@register(
    "correctness_reward",
    (
        "1.0 when the LAST integer of the completion equals the answer's last integer, else 0.0",
        "integers may be negative, commas are deleted first ('1,000' is 1000), "
        "and answers may be ints or GSM8K strings ending in '#### 68'",
    ),
)
def _correctness_reward(fn, c):
    comps = [
        "3 + 4 = 7",
        "7 or maybe 8",
        "-5",
        "so she earns 68.",
        "no number here",
        "12",
        "about 1,000 people",
    ]
    answers = ["7", "7", -5, "4 * 17 = 68 dollars.\n#### 68", "3", "2", "1000"]
    got = c.call(
        "batch",
        fn,
        comps,
        answer=answers,
        prompts=["p"] * 7,
        hint="answers may be ints or strings such as '4 * 17 = 68 dollars.\\n#### 68'",
    )
    c.close(
        "last integer == answer",
        got[:2] if isinstance(got, list) else got,
        [1.0, 0.0],
        kind="list",
        hint=(
            "the completion's LAST integer counts ('7 or maybe 8' means 8)",
            "re.findall returns every match, in order",
        ),
    )
    c.close(
        "negative numbers",
        got[2:3],
        [1.0],
        kind="list",
        hint=(
            "a minus sign belongs to the integer ('-5' is minus five)",
            "the pattern of the docstring allows an optional '-'",
        ),
    )
    c.close(
        "GSM8K-style answer '... #### 68'",
        got[3:4],
        [1.0],
        kind="list",
        hint="the answer's LAST integer counts too ('4 * 17 = 68 dollars.\\n#### 68' means 68)",
    )
    c.close(
        "no integer / a different number",
        got[4:6],
        [0.0, 0.0],
        kind="list",
        hint="no integer -> 0.0; whole integers are compared ('12' is not '2')",
    )
    c.close(
        "a thousands separator '1,000' is 1000",
        got[6:],
        [1.0],
        kind="list",
        hint=(
            "every comma is deleted from the completion before looking for integers",
            "'1,000' must read as 1000, not as 1 and 000",
        ),
    )
    c.raises("3 completions, 2 answers", ValueError, fn, ["1", "2", "3"], answer=["1", "2"])


@register(
    "sentiment_reward",
    (
        "the reward is the provided scorer's positive-sentiment PROBABILITY (in "
        "[0, 1]) of each completion's text",
        "course_lib.core.sentiment.get_scorer() scores a list of texts",
    ),
)
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
    c.close(
        "chat-format completion",
        got,
        want[:1],
        kind="list",
        atol=1e-5,
        hint="chat-format completions are scored by their text (see as_text)",
    )


@register(
    "repetition_penalty",
    (
        "1 - (distinct words / words), where words ignore case and are "
        "separated by any whitespace; 0.0 for a text without words",
        "'Great great' is one distinct word of two",
    ),
)
def _repetition_penalty(fn, c):
    got = c.call(
        "batch",
        fn,
        ["the cat sat", "great great great great", "Great great GREAT", "a b a b", "", "great  great\ngreat"],
    )
    c.close(
        "no repeats",
        got[:1],
        [0.0],
        kind="list",
        hint="a text without repeated words has NO penalty: 0.0 (it is 1 minus the distinct share)",
    )
    c.close("'great' x4: 1 - 1/4", got[1:2], [0.75], kind="list")
    c.close(
        "case-insensitive: 1 - 1/3",
        got[2:3],
        [2 / 3],
        kind="list",
        hint="'Great', 'great' and 'GREAT' are the same word (case does not matter)",
    )
    c.close("'a b a b': 1 - 2/4", got[3:4], [0.5], kind="list")
    c.close(
        "empty completion",
        got[4:5],
        [0.0],
        kind="list",
        hint="a completion without words has no repeats: 0.0 (no division by zero)",
    )
    c.close("two spaces and a newline between words: 1 - 1/3", got[5:], [2 / 3], kind="list", hint=SPLIT_HINT)


@register(
    "length_penalty",
    (
        "0.0 when the number of words is within [min_words, max_words] (both "
        "bounds included), else -1.0; words are separated by any whitespace",
        "use the arguments min_words / max_words, not fixed numbers",
    ),
)
def _length_penalty(fn, c):
    def words(n):
        return " ".join(["w"] * n)

    got = c.call("defaults", fn, [words(3), words(4), words(40), words(41), ""])
    c.close(
        "3 / 4 / 40 / 41 / 0 words with the defaults 4..40",
        got,
        [-1.0, 0.0, 0.0, -1.0, -1.0],
        kind="list",
        hint="the bounds are inclusive: exactly 4 and exactly 40 words are fine",
    )
    got = c.call("custom bounds", fn, ["a b", "a b c"], min_words=1, max_words=2)
    c.close(
        "min_words=1, max_words=2",
        got,
        [0.0, -1.0],
        kind="list",
        hint="the bounds come from the arguments min_words / max_words",
    )
    got = c.call("whitespace", fn, ["a  b", "a\nb c"], min_words=1, max_words=2)
    c.close(
        "'a  b' is 2 words, 'a\\nb c' is 3 (min_words=1, max_words=2)",
        got,
        [0.0, -1.0],
        kind="list",
        hint=SPLIT_HINT,
    )


@register(
    "exponential_shaping",
    (
        "the exponential shaping of the docstring, element-wise: a score of 0 maps to 0, a "
        "smaller temperature gives a steeper curve; a list in gives a list out, a tensor in "
        "a tensor out",
        "the temperature divides the score inside the exponential",
    ),
)
def _exponential_shaping(fn, c):
    got = c.call("list", fn, [0.0, 1.0, 2.0])
    c.close(
        "T=1: [e^0-1, e^1-1, e^2-1]",
        got,
        [0.0, 1.7182818, 6.3890561],
        kind="list",
        hint="a score of 0 must map to 0 (the shaped reward is exp(.) MINUS 1)",
    )
    got = c.call("temperature", fn, [1.0], temperature=0.5)
    c.close(
        "T=0.5: e^(1/0.5)-1",
        got,
        [6.3890561],
        kind="list",
        hint=(
            "a smaller temperature makes the curve steeper: the score is DIVIDED by it "
            "inside the exponential",
            "exp(1 / 0.5) - 1 = e^2 - 1",
        ),
    )
    got = c.call("tensor", fn, t([0.0, -1.0]), temperature=2.0)
    c.close(
        "a tensor, T=2: [0, e^-0.5-1]",
        got,
        [0.0, -0.3934693],
        kind="tensor",
        hint="a tensor in gives a tensor out (same shape)",
    )
    c.raises("temperature 0", ValueError, fn, [1.0], temperature=0.0)
    c.raises("temperature < 0", ValueError, fn, [1.0], temperature=-1.0)


# components for combine_rewards, with names a student can read in a failure message
def ones(completions, **kwargs):
    """Reward 1.0 for every completion."""
    return [1.0] * len(completions)


def length(completions, **kwargs):
    """Reward = number of characters."""
    return [float(len(x)) for x in completions]


def answer_value(completions, answer=None, **kwargs):
    """Reward = the `answer` column (a dataset column arrives as a keyword argument)."""
    if answer is None:
        raise TypeError(
            "the component reward `answer_value` was called without the keyword "
            "argument `answer`: the combined function must pass every keyword "
            "argument on to each component"
        )
    return [float(a) for a in answer]


@register(
    "combine_rewards",
    (
        "the combined reward of a completion is the weighted SUM of the "
        "components' rewards; it is a function with the TRL reward signature",
        "every keyword argument the combined function receives goes to each component",
    ),
)
def _combine_rewards(fn, c):
    R = c.call("build", fn, [ones, length], [2.0, -0.5])
    c.true("returns a function", callable(R), "a callable reward function", repr(R))
    got = c.call("call", R, ["ab", "abcd"])
    c.close(
        "2*ones - 0.5*length",
        got,
        [1.0, 0.0],
        kind="list",
        hint=(
            "each component is multiplied by ITS weight and the products are summed (not averaged)",
            "[2*1 - 0.5*2, 2*1 - 0.5*4]",
        ),
    )
    R2 = c.call("build with kwargs", fn, [answer_value, ones], [3.0, 1.0])
    got = c.call(
        "kwargs",
        R2,
        ["x", "y"],
        answer=[1, 2],
        prompts=["p", "q"],
        hint="keyword arguments (dataset columns such as `answer`) reach every component",
    )
    c.close(
        "keyword arguments reach every component",
        got,
        [4.0, 7.0],
        kind="list",
        hint="keyword arguments (dataset columns such as `answer`) reach every component",
    )
    c.raises("2 functions, 1 weight", ValueError, fn, [ones, length], [1.0])
    c.raises("no functions", ValueError, fn, [], [])


def _no_gradient_reaches(c, case: str, rewards, hint) -> None:
    """After loss.backward(): `rewards` got no gradient (None or all zeros)."""
    g = rewards.grad
    c.true(
        f"{case}: no gradient reaches the rewards",
        g is None or not bool(g.abs().gt(0).any()),
        "no gradient w.r.t. rewards (rewards AND baseline are constants of the update)",
        f"d loss / d rewards = {fmt(g)}",
        hint,
    )


@register(
    "reinforce_loss",
    (
        "the policy-gradient loss of the docstring: a scalar, the batch MEAN of minus advantage "
        "times log-probability, where the advantage (reward minus baseline) is a constant: "
        "only the log-probabilities get a gradient",
        "lowering the loss must RAISE the log-probability of a sample whose advantage is "
        "positive; compute the advantages first, cut off from the graph, then combine",
    ),
)
def _reinforce_loss(fn, c):
    # logprobs [-1, -2, -0.5], rewards [2, 0, 4]; the loss is -mean(A * logprobs)
    def inputs():
        return t([-1.0, -2.0, -0.5], grad=True), t([2.0, 0.0, 4.0], grad=True)

    detach_hint = (
        "the advantages are constants of the update: the gradient must reach the "
        "log-probabilities only, not the rewards or the baseline",
        "take the rewards and the baseline out of the autograd graph before multiplying",
    )
    lp, r = inputs()
    got = c.call("no baseline", fn, lp, r)
    # A = R = [2, 0, 4]: -mean([-2, 0, -2]) = 4/3
    c.close(
        "no baseline: -mean([2*-1, 0*-2, 4*-0.5]) = 4/3",
        got,
        1.3333333,
        kind="tensor",
        hint=(
            "a scalar: the batch MEAN (not the sum) of minus advantage times log-probability; "
            "check the sign: minimising the loss must raise the log-probability of rewarded samples",
            "with no baseline the advantage is the reward itself; divide by the batch size B",
        ),
    )
    c.grad(
        "d loss / d logprobs = -A / B",
        got,
        {"logprobs": lp},
        {"logprobs": [-2 / 3, 0.0, -4 / 3]},
        hint="each sample's log-probability is pushed up in proportion to its advantage, divided by B",
    )
    _no_gradient_reaches(c, "no baseline", r, detach_hint)
    lp, r = inputs()
    got = c.call("baseline 'mean'", fn, lp, r, baseline="mean")
    # b = mean(R) = 2, A = [0, -2, 2]: -mean([0, 4, -1]) = -1
    c.close(
        "baseline 'mean': A = R - mean(R) = [0, -2, 2], loss -1",
        got,
        -1.0,
        kind="tensor",
        hint=(
            "baseline='mean' subtracts the batch mean of the rewards from every reward; the result is "
            "not scaled (no division by a standard deviation)",
            "the mean is taken over the batch of rewards, one number for all samples",
        ),
    )
    c.grad("baseline 'mean': d loss / d logprobs", got, {"logprobs": lp}, {"logprobs": [0.0, 2 / 3, -2 / 3]})
    _no_gradient_reaches(c, "baseline 'mean'", r, detach_hint)
    lp, r = inputs()
    # b = 1, A = [1, -1, 3]: -mean([-1, 2, -1.5]) = 1/6
    c.close(
        "baseline 1.0: A = [1, -1, 3], loss 1/6",
        c.call("baseline 1.0", fn, lp, r, baseline=1.0),
        0.1666667,
        kind="tensor",
        hint=(
            "a number as baseline is SUBTRACTED from every reward",
            "the baseline argument can be None, 'mean' or a number: handle all three",
        ),
    )
    c.raises("per-token logprobs [2, 3] (not summed)", ValueError, fn, t([[-1.0] * 3] * 2), t([1.0, 0.0]))
    c.raises("rewards [2] for logprobs [3]", ValueError, fn, t([-1.0, -2.0, -0.5]), t([1.0, 0.0]))
    c.raises("baseline 'median'", ValueError, fn, t([-1.0, -2.0]), t([1.0, 0.0]), baseline="median")
