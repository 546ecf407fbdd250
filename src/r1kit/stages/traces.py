"""Reasoning traces sampled from a model, kept only when worth training on: what cold_start, rejection_sampling,
sft2 and distill share.

A trace is kept when it is well-formed (one <think> block, one <answer> block), reasons (a think block of a few words),
does not loop (repeated word 5-grams), stays in the problem's language, and its answer verifies against the gold
answer. Every other trace is counted under the reason it was dropped.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from r1kit import distributed
from r1kit.atomic import content_hash, json_digest, write_atomic, write_json
from r1kit.config.schema import GRPOConfig, R1kitConfig, SamplingConfig, VerificationConfig
from r1kit.data.loading import CANONICAL_COLUMNS, drawn_indices
from r1kit.models import load_model, load_tokenizer
from r1kit.prompts import chat_prompt, r1_completion
from r1kit.rewards import build_reward
from r1kit.rewards.text import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CHARACTERS_PER_WORD,
    THINK_CLOSE,
    THINK_OPEN,
    extract_answer,
    last_boxed,
    split_r1,
    written_without_spaces,
)
from r1kit.stages.common import StageContext
from r1kit.stages.evaluate import Generations, generate, scoring_accuracy
from r1kit.stats import group_order

logger = logging.getLogger("r1kit")

KEPT = "kept"
_LANGUAGE_MIN = 0.9  # share of a trace's letters in the problem's language

# Openers a model pads its thinking with ("Okay, so", "Hmm,", "Let me think."): no reasoning in them. A word is not
# one before a hyphen ("Well-known", "So-called"), a phrase only where punctuation or the line's end closes it ("Let
# me see if 7 divides 21" is reasoning).
_FILLER = re.compile(
    r"^\s*(?:(?:(?:okay|ok|alright|hmm+|well|so|um+)\b(?!-)"
    r"|(?:let me think(?: about (?:this|it))?|let's see|let me see)(?=\s*(?:[,.!:;]|$)))[\s,.!:;]*)+",
    re.IGNORECASE,
)
_BARE_ANSWER = 100  # characters: one line after a think block, taken as its answer
_ANSWER_PHRASE = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*\$?([^\n$]+?)\$?\s*\.?\s*$", re.IGNORECASE)


def strip_filler(reasoning: str) -> str:
    """Reasoning without filler openers or blank lines.

    >>> strip_filler("Okay, so we add.\\n\\nHmm. 3 + 4 = 7\\nSo, done.")
    'we add.\\n3 + 4 = 7\\ndone.'
    >>> strip_filler("Sophia sold 12.\\nWells Fargo pays.\\nUmar has 3.")  # words that begin like a filler
    'Sophia sold 12.\\nWells Fargo pays.\\nUmar has 3.'
    >>> strip_filler("Well-known: a + b = b + a.\\nLet me see if 7 divides 21.\\nLet me think about this sum: 9.")
    'Well-known: a + b = b + a.\\nLet me see if 7 divides 21.\\nLet me think about this sum: 9.'
    """
    lines = (_FILLER.sub("", line).strip() for line in reasoning.splitlines())
    return "\n".join(line for line in lines if line)


def think_words(text: str) -> int:
    """The words of a thinking: each character a word in a script written without spaces (Chinese, Japanese), as
    word counts for those scripts go; a Chinese trace was one word, too short for filters.min_think_words.

    >>> think_words("3 + 4 = 7, so 7"), think_words("小明有5个苹果")
    (7, 7)
    """
    if written_without_spaces(text):
        return len("".join(text.split()))
    return len(text.split())


def longest_paragraph(text: str) -> int:
    r"""The words of the longest paragraph of `text`, read as its longest line: cold start's traces are written
    without blank lines (`strip_filler`), and a model writes a paragraph as one line. In a script written without
    spaces, a word every CHARACTERS_PER_WORD characters: counted a word each (`think_words`), a Chinese paragraph was
    held to a third of an English one's length.

    >>> longest_paragraph("We add.\nThen we check it twice.\n\nDone."), longest_paragraph("小明原来有五个苹果。")
    (5, 4)
    """
    return max(map(_paragraph_words, text.splitlines() or [""]))


def _paragraph_words(line: str) -> int:
    if written_without_spaces(line):
        return math.ceil(len("".join(line.split())) / CHARACTERS_PER_WORD)
    return len(line.split())


def normalise(text: str) -> tuple[str, str] | None:
    """(reasoning, answer) of a completion in any of the shapes R1-Zero-style models write, or None without one answer.

    Strict R1 form; a think block followed by a bare answer; or untagged reasoning ending in an <answer> block,
    \\boxed{…}, `#### x` or "the answer is x". Filler openers are stripped from the reasoning. A completion in R1 tags
    that hedges or goes on is no trace: two think blocks or answer blocks, or words after its answer block (taking
    one part rebuilt a clean trace of it that the strict judge refused as written).

    >>> normalise("<think>Okay, 2 + 2 = 4</think> The answer is 4.")
    ('2 + 2 = 4', '4')
    >>> normalise("2 * 3 = 6\\n#### 6"), normalise("<think>2 + 2 = 4</think>\\n\\n4")
    (('2 * 3 = 6', '6'), ('2 + 2 = 4', '4'))
    >>> normalise("I do not know") is None
    True
    >>> normalise("<think>30 - 8 = 22</think><answer>21</answer><answer>22</answer>") is None
    True
    >>> normalise("<think>30 - 8 = 22</think><answer>22</answer> Wait, it is 21.") is None
    True
    """
    strict = split_r1(text)
    if strict:
        reasoning, answer = strict
    else:
        body = text.strip()
        if any(body.count(tag) > 1 for tag in (THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)) or (
            ANSWER_CLOSE in body and not body.endswith(ANSWER_CLOSE)
        ):
            return None  # a doubled <think> opening alone is kept: a model's habit, the reasoning whole after it
        if THINK_CLOSE in body:
            reasoning, _, rest = body.partition(THINK_CLOSE)
            reasoning = reasoning.replace(THINK_OPEN, "")
        else:
            reasoning, rest = body.split(ANSWER_OPEN)[0], body
        answer = extract_answer(rest) or last_boxed(rest)
        if answer is None and "####" in rest:
            before, _, answer = rest.rpartition("####")
            if THINK_CLOSE not in body:  # after a think block, the reasoning is the block's
                reasoning = before
        if answer is None and (found := _ANSWER_PHRASE.search(rest)):
            answer = found.group(1)
        bare = rest.strip()
        if answer is None and THINK_CLOSE in body and "\n" not in bare and len(bare) <= _BARE_ANSWER:
            answer = bare  # `<think>…</think> 4`
        for tag in (ANSWER_OPEN, ANSWER_CLOSE, THINK_OPEN):
            reasoning = reasoning.replace(tag, " ")
    reasoning, answer = strip_filler(reasoning), (answer or "").strip()
    return (reasoning, answer) if reasoning and answer else None


def loops(text: str, max_repetition: float) -> bool:
    """More than `max_repetition` (filters.max_repetition) of the text's word 5-grams are repeats: the text loops.
    5-grams, not 3: reasoning restates its quantities ("takes 2*3 = 6 hours a week to walk", "… hours a week to
    bike"), which put 184 of GSM8K's 7,473 worked solutions above 0.2 in 3-grams, 13 in 5-grams and 1 above 0.3; a
    loop repeats whole phrases (0.6-0.9).

    >>> loops("a b c d e a b c d e a b c d e", 0.3), loops("the cat sat on the mat", 0.3)
    (True, False)
    """
    return -build_reward("repetition_penalty", ngram_size=5, max_penalty=-1.0)([text])[0] > max_repetition


class TraceJudge:
    """Why a trace is dropped (or `kept`), with the config's filters and the run's verification settings."""

    def __init__(self, config: R1kitConfig):
        filters = config.filters
        self.min_think_words = filters.min_think_words
        self.max_paragraph_words, self.drop_code_blocks = filters.max_paragraph_words, filters.drop_code_blocks
        self.max_repetition = filters.max_repetition
        self.language = build_reward("language_consistency", language=filters.language)
        # asked as the run asks: a question too short to tell its language by ("What is 3 + 4?") is told by the rest
        self.system = [{"role": "system", "content": config.prompt.system}] if config.prompt.system else []
        # every trace judged: a batch budget would drop good traces as unverifiable on a busy machine
        self.accuracy = scoring_accuracy(config)

    def __call__(
        self,
        traces: Sequence[str],
        questions: Sequence[str],
        golds: Sequence[str | None],
        truncated: Sequence[bool] | None = None,
    ) -> list[str]:
        """A reason per trace; `truncated`: which were cut at the token limit (a cut trace may still parse: its
        reasoning stops mid-sentence)."""
        reasons = ["truncated" if cut else "" for cut in truncated or [False] * len(traces)]
        for index, trace in enumerate(traces):
            if reasons[index]:  # truncated
                continue
            parts = split_r1(trace)
            if parts is None:
                reasons[index] = "malformed"
            elif think_words(strip_filler(parts[0])) < self.min_think_words:  # as cold start's sampled methods
                reasons[index] = "too_short"
            elif self.drop_code_blocks and "```" in parts[0]:
                reasons[index] = "code_block"
            elif self.max_paragraph_words and longest_paragraph(parts[0]) > self.max_paragraph_words:
                reasons[index] = "long_paragraph"
            elif loops(trace, self.max_repetition):
                reasons[index] = "repetitive"
        open_ = [i for i, reason in enumerate(reasons) if not reason]
        prompts = [[*self.system, {"role": "user", "content": questions[i]}] for i in open_]
        for i, share in zip(open_, self.language([traces[i] for i in open_], prompts=prompts), strict=True):
            if share is not None and share < _LANGUAGE_MIN:
                reasons[i] = "wrong_language"
        open_ = [i for i in open_ if not reasons[i]]
        # the verifier's own verdicts: an answer it could not judge in time is unverifiable here (neither a kept trace
        # nor a rejected DPO reply: a correct one misses the limit on a busy machine), where a reward scores it wrong
        verification = self.accuracy.verification
        verdicts = verification.verdicts("accuracy", [traces[i] for i in open_], [golds[i] for i in open_], {})
        for i, verdict in zip(open_, verdicts, strict=True):
            reasons[i] = "unverifiable" if verdict.score is None else KEPT if verdict.score >= 1.0 else "wrong"
        return reasons


def reply_after_thinking(answer: str) -> str:
    """The answer after a closed thinking block: a base model that always thinks first (DeepSeek-R1-Distill, whose
    template opens <think>) answers a general prompt after its </think>, and its whole reply was dropped.

    >>> reply_after_thinking("The user greets me.\\n</think>\\n\\nHello!"), reply_after_thinking("Hi.")
    ('Hello!', 'Hi.')
    """
    return answer.rsplit("</think>", 1)[-1].strip() if "</think>" in answer else answer


def unusable_general_answer(answer: str, max_repetition: float) -> str | None:
    """Why a model's answer to a general prompt cannot be a reply to train on (a general SFT row, a preferred reply),
    or None when it can.

    An empty or looping answer teaches nothing general; reasoning tags do not belong in one.

    >>> unusable_general_answer("Paris is the capital of France.", 0.5) is None
    True
    >>> unusable_general_answer("   ", 0.5), unusable_general_answer("<think>hm</think> yes", 0.5)
    ('empty', 'reasoning tags')
    >>> unusable_general_answer("the cat sat " * 10, 0.5)
    'looping'
    """
    if not answer.strip():
        return "empty"
    if has_reasoning_tags(answer):
        return "reasoning tags"
    if loops(answer, max_repetition):
        return "looping"
    return None


def has_reasoning_tags(answer: str) -> bool:
    """Whether a reply is written in the reasoning format, which a general reply (asked with the plain prompt) is not."""
    return "<think>" in answer or "<answer>" in answer


def usable_general_answers(
    answers: Generations, max_repetition: float, limit_key: str, whole_sentences: bool = False
) -> tuple[list[str | None], Counter[str]]:
    """Each greedy answer to a general prompt (after a closed thinking block) as a reply to train on, or None where
    it is unusable or was cut at `limit_key` (the setting that sets its length); and how many for each reason. One cut
    mid-sentence would teach a model to stop there, or, as a preferred reply, be preferred to its own first third.
    `whole_sentences`: a cut answer is kept up to its last full sentence instead (a preferred reply needs no end of
    its own: it is compared with a degraded copy of itself)."""
    usable, dropped = [], Counter()
    for (answer,), (cut,) in zip(answers.texts, answers.truncated, strict=True):
        answer = reply_after_thinking(answer)
        reason = unusable_general_answer(answer, max_repetition)  # what is wrong with the answer itself first
        if cut and reason is None and whole_sentences:
            answer = up_to_last_sentence(answer)
            reason = (
                unusable_general_answer(answer, max_repetition)
                if answer
                else f"cut at {limit_key} before a sentence ended"
            )
        elif cut and reason is None:
            reason = f"cut at {limit_key}"
        dropped.update([reason] if reason else [])
        usable.append(None if reason else answer.strip())
    return usable, dropped


def reasons_said(dropped: Counter) -> str:
    """Why answers were dropped (`usable_general_answers`), the commonest reason first.

    >>> reasons_said(Counter({"empty": 1, "looping": 3}))
    '3 looping, 1 empty'
    """
    return ", ".join(f"{count} {reason}" for reason, count in dropped.most_common())


_NOT_A_SENTENCE_END = re.compile(
    r"(?:^|\n)[ \t]*\d+\.[ \t]$"  # a numbered list's marker ("1. " before its item; "1945." ending a line is a number)
    r"|\b(?:Dr|Mr|Mrs|Ms|St|Fig|vs|e\.g|i\.e)\.\s$"  # an abbreviation ("No." may end a sentence)
    r"|:\s*\n$"  # a line that introduces what follows ("Here are three tips:")
)


def up_to_last_sentence(text: str) -> str:
    """`text` up to the end of its last full sentence (`.`, `!`, `?` before a space, or a line's end, but not a list
    marker's, an abbreviation's or a colon's); '' for none.

    >>> up_to_last_sentence("Keep a schedule. Avoid screens before"), up_to_last_sentence("Sleep is good. Sleep is")
    ('Keep a schedule.', 'Sleep is good.')
    >>> up_to_last_sentence("Tips:\\n1. Keep a schedule.\\n2. Avoid"), up_to_last_sentence("Tips:\\n1. Keep a")
    ('Tips:\\n1. Keep a schedule.', '')
    >>> up_to_last_sentence("It costs 3.5 dollars. Ask Dr. Smith or e.g. a")
    'It costs 3.5 dollars.'
    >>> up_to_last_sentence("The answer is No. Skipping it"), up_to_last_sentence("It ended in:\\n1945.\\nAfter")
    ('The answer is No.', 'It ended in:\\n1945.')
    """
    text += " "  # the end of the text ends a sentence as a space does
    ends = [match.end() for match in re.finditer(r"[.!?](?=\s)|\n", text)]
    # each judged with the character after it (the space or line end that closes it)
    ends = [end for end in ends if not _NOT_A_SENTENCE_END.search(text[: end + (text[end - 1] != "\n")])]
    return text[: ends[-1]].strip() if ends else ""


def sample(
    ctx: StageContext, model_reference: str, prompts: list[list[dict]], settings: SamplingConfig, desc: str
) -> Generations:
    """`settings.samples_per_prompt` sampled completions per prompt (texts, and which were cut at the token limit),
    from the model at `model_reference`, seeded by the run's seed: not by whatever drew random numbers before (a
    training stage, or none where a run resumed after it), so the same model and settings give the same data."""
    tokenizer = load_tokenizer(ctx.config.model, model_reference)
    model = load_model(ctx.config.model, model_reference, ctx.hardware, for_training=False).eval()
    with torch.random.fork_rng():
        torch.manual_seed(ctx.config.run.seed)
        return sample_from(model, tokenizer, prompts, settings, ctx.config.monitoring.progress, desc)


def greedy_answers(
    ctx: StageContext, model_reference: str, prompts: list[list[dict]], max_new_tokens: int, batch_size: int, desc: str
) -> Generations:
    """One greedy completion per prompt (the model's own best answer) from the model at `model_reference`."""
    tokenizer = load_tokenizer(ctx.config.model, model_reference)
    model = load_model(ctx.config.model, model_reference, ctx.hardware, for_training=False).eval()
    return generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=ctx.config.monitoring.progress,
        desc=desc,
    )


def sample_from(
    model,
    tokenizer,
    prompts: list[list[dict]],
    settings: SamplingConfig,
    progress: bool,
    desc: str,
    rollouts: GRPOConfig | None = None,
) -> Generations:
    """`settings.samples_per_prompt` sampled completions per prompt from a loaded model, with `model.generate`; with
    `rollouts`, the distribution restricted as GRPO's rollouts restrict it (top-p, top-k, min-p, repetition penalty)."""
    samples = settings.samples_per_prompt
    return generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=settings.max_new_tokens,
        batch_size=max(1, settings.batch_size // samples),
        samples=samples,
        temperature=settings.temperature,
        restrictions=rollouts.sampling_options() if rollouts else None,
        progress=progress,
        desc=desc,
    )


def best_of(traces: Sequence[str], reasons: Sequence[str], keep: int) -> list[str]:
    """Up to `keep` kept traces, shortest first (the same answer in fewer words), duplicates dropped: a row keeps a
    trace's reasoning with the gold answer (`trace_row`), so traces that differ only in how the answer is written
    (5, 5.0) are one.

    >>> best_of(["<think>2+3=5</think><answer>5.0</answer>", "<think>2+3=5</think><answer>5</answer>"], [KEPT] * 2, 2)
    ['<think>2+3=5</think><answer>5</answer>']
    """
    seen, chosen = set(), []
    for trace in sorted((t for t, r in zip(traces, reasons, strict=True) if r == KEPT), key=len):
        key = " ".join((split_r1(trace) or (trace,))[0].lower().split())
        if key not in seen:
            seen.add(key)
            chosen.append(trace)
    return chosen[:keep]


def in_r1_form(completion: str) -> str:
    """`completion` in the strict R1 form where it is in another shape and `normalise` reads a reasoning and an
    answer in it, else as it is.

    >>> in_r1_form("<think>\\n27 + 3 = 30. Then 30 - 8 = 22.\\n</think>\\n\\nAva has 22 now.\\n\\n\\\\boxed{22}")
    '<think>\\n27 + 3 = 30. Then 30 - 8 = 22.\\n</think>\\n<answer>22</answer>'
    """
    if split_r1(completion) is not None:  # as it was written: its blank lines and openers are the model's
        return completion
    parts = normalise(completion)
    return completion if parts is None else r1_completion(*parts)


def trace_row(row: dict[str, Any], trace: str, source: str) -> dict[str, Any]:
    """A canonical row whose worked solution is a kept trace's reasoning (SFT writes it back in R1 form)."""
    reasoning, _ = split_r1(trace) or normalise(trace) or (trace, "")
    return {
        "question": row["question"],
        "solution": row["solution"],
        "reasoning": reasoning,
        "response": None,
        "group": row.get("group"),
        "source": source,
    }


def best_verified(
    ctx: StageContext,
    model_reference: str,
    rows: list[dict[str, Any]],
    settings: SamplingConfig,
    keep: int,
    source: str,
    any_format: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """k samples per problem from a model, judged; the best `keep` accepted traces per problem as canonical rows, and
    the statistics (acceptance per group and per sample, dropped by reason): rejection sampling and distillation.
    `any_format`: a completion in another shape than R1's (`in_r1_form`) is judged in R1 form, as a teacher that
    never learnt r1kit's tags writes (R1-Distill: the answer after </think>, in \\boxed{})."""
    prompts = [chat_prompt(row["question"], ctx.config.prompt.system) for row in rows]
    samples = sample(ctx, model_reference, prompts, settings, desc=source.replace("_", " "))
    judge = TraceJudge(ctx.config)
    reasons_count: Counter = Counter()
    kept, accepted = [], []
    for row, completions, cuts in zip(rows, samples.texts, samples.truncated, strict=True):
        if any_format:
            completions = [in_r1_form(completion) for completion in completions]
        asked, golds = [row["question"]] * len(completions), [row["solution"]] * len(completions)
        reasons = judge(completions, asked, golds, truncated=cuts)
        reasons_count.update(reasons)
        chosen = best_of(completions, reasons, keep)
        kept += [trace_row(row, trace, source) for trace in chosen]
        accepted.append(bool(chosen))
    total = sum(reasons_count.values())
    stats = {
        "problems": len(rows),
        "samples": total,
        "sample_acceptance": reasons_count[KEPT] / max(1, total),
        "problem_acceptance": sum(accepted) / max(1, len(rows)),
        "problem_acceptance_by_group": acceptance_by_group([row.get("group") for row in rows], accepted),
        "dropped": {reason: n for reason, n in reasons_count.items() if reason != KEPT},
        "rows": len(kept),
    }
    return kept, stats


def acceptance_by_group(groups: Sequence[str | None], accepted: Sequence[bool]) -> dict[str, float]:
    """Share of problems with an accepted trace, per group (dataset.group_column: a difficulty level, a task), in the
    evaluation table's order; the share over all problems is apart (a group may be named "all").

    >>> acceptance_by_group(["10", "2", "2", None, "all"], [True, False, True, True, False])
    {'2': 0.5, '10': 1.0, 'all': 0.0}
    """
    totals, hits = Counter(), Counter()
    for group, ok in zip(groups, accepted, strict=True):
        if group is not None:
            totals[group] += 1
            hits[group] += ok
    return {key: hits[key] / totals[key] for key in sorted(totals, key=group_order)}


def write_dataset(ctx: StageContext, rows: list[dict[str, Any]], stats: dict[str, Any], section: str) -> Path:
    """RUN/NN_<stage>/data.jsonl (canonical rows) and stats.json, each complete or absent. No row kept is said loudly:
    the stages after it then train on what else they have, or pass their model on unchanged. `section`: the
    stage's config section, whose sampling keys the warning names."""
    if not rows:
        dropped = stats.get("dropped", stats)
        # the remedy for the commonest reason a trace was dropped (cold start's rows without a worked solution to
        # convert are rows, not traces): a reply cut at the limit needs room, not more samples
        remedy = f"sample more ({section}.samples_per_prompt, {section}.max_prompts) or relax `filters`"
        traces = {reason: n for reason, n in dropped.items() if reason != "no_worked_solution"}
        if traces and max(traces, key=traces.get) == "truncated":
            remedy = f"most replies were cut at {section}.max_new_tokens: give them more room"
        logger.warning("%s: no trace was kept (dropped: %s); %s", ctx.stage, json.dumps(dropped), remedy)
    path = ctx.dir / "data.jsonl"
    if distributed.is_main():  # every process holds the same rows (generation gathers them); one writes them
        write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        write_json(ctx.dir / "stats.json", stats)
    distributed.wait()  # the next stage reads the file, in every process
    return path


def samples_key(config: R1kitConfig, model_reference: str, rows: Dataset, **sampling: Any) -> str:
    """What data sampled from a model and judged is made from, by which a stage reuses it: the model (by content), how
    it was asked (system prompt, chat template: a stage may set its own), `sampling` (the stage's settings, under the
    name given), the verification and filters that judged the samples, the problems and the seed. The problems are
    `rows` themselves, not the dataset settings: a recipe stage with `data_from` reads another stage's rows under
    the same settings."""
    return json_digest(
        {
            "model": content_hash(Path(model_reference)) if Path(model_reference).exists() else model_reference,
            # every canonical column it has: pairs take a chat row's reply and a worked solution too
            "problems": json_digest(
                rows.select_columns([c for c in CANONICAL_COLUMNS if c in rows.column_names]).to_dict()
            ),
            "system": config.prompt.system,
            "chat_template": config.model.chat_template,
            # every sample is judged to the per-answer time limit, with no batch budget (`scoring_accuracy`): the
            # workers and the budget set how, not which verdicts; keyed at their defaults, so keys made before stay
            "verification": VerificationConfig(
                timeout_seconds=config.rewards.verification.timeout_seconds
            ).model_dump(),
            "filters": _keyed_filters(config),
            "seed": config.run.seed,
            **sampling,
        }
    )


# Trace filters added after keys were first made: keyed only where set to other than their default, so the traces and
# pairs of a run made before they existed stay valid on --resume (as they were judged: without these two filters).
_FILTERS_ADDED = ("max_paragraph_words", "drop_code_blocks")


def _keyed_filters(config: R1kitConfig) -> dict[str, Any]:
    filters = config.filters.model_dump()
    for name in _FILTERS_ADDED:
        if filters[name] == type(config.filters).model_fields[name].default:
            del filters[name]
    return filters


def drawn_rows(rows: Dataset, limit: int, seed: int) -> list[dict[str, Any]]:
    """Up to `limit` of `rows` (see drawn_indices)."""
    return [rows[i] for i in drawn_indices(len(rows), limit, seed)]


def verifiable_prompts(ctx: StageContext, rows: Dataset, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` training problems with a gold answer (see drawn_rows), each once: a trace is kept only when its
    answer verifies against it, so a chat row (mixed data) would only take a prompt's place; a problem in several
    rows (k traces each, as rejection sampling writes them) would be sampled, and kept, once a row. The rows without
    a gold answer are counted."""
    answered, seen, unanswered = [], set(), 0
    for index, (question, gold) in enumerate(zip(rows["question"], rows["solution"], strict=True)):
        unanswered += not gold
        if gold and question not in seen:
            answered.append(index)
            seen.add(question)
    if unanswered:
        logger.warning(
            "%s: %d of %d training rows have no gold answer to verify traces against; left out",
            ctx.stage,
            unanswered,
            len(rows),
        )
    if repeated := len(rows) - unanswered - len(answered):
        logger.info(
            "%s: %d training rows repeat a problem of an earlier row; each problem is sampled once", ctx.stage, repeated
        )
    return [rows[answered[i]] for i in drawn_indices(len(answered), limit, ctx.config.run.seed)]
