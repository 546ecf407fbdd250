"""Evaluation: batched generation on held-out problems, pass@1 (greedy), format rate, pass@k and cons@n (majority
vote, the R1 paper's cons@64) from n samples, perplexity of the held-out reference solutions, ROUGE-L of the answers,
and (when configured) the win rate against another model as judged by a reward model.

Runnable alone (`r1kit eval --model M --data D`) and by the pipeline. Reads the `evaluation` section.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, NamedTuple

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import TrainerCallback

from r1kit import distributed
from r1kit.atomic import content_hash, json_digest, jsonable, write_atomic, write_json
from r1kit.config.schema import DatasetConfig, R1kitConfig
from r1kit.data.loading import counted, first_or_drawn, held_out_source, load_eval_rows, scores_whole_file
from r1kit.hardware import setup_hardware
from r1kit.models import (
    BUILTIN_MODELS,
    ModelError,
    check_model,
    context_limit,
    eos_token_ids,
    load_model,
    load_tokenizer,
    own_generation_settings_aside,
    plain_generation_config,
)
from r1kit.monitoring.console import print_eval_table
from r1kit.prompts import chat_prompt, r1_completion
from r1kit.rewards import build_reward
from r1kit.rewards.reward_model import reward_model_in
from r1kit.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, answer_part, denial_dropped, split_r1, think_opened_by
from r1kit.runs import RunDir, eval_label, run_of, stage_named
from r1kit.stages.common import (
    StageContext,
    loadable_model,
    model_reference_of,
    quiet_libraries,
    say_scored_training_problems,
)
from r1kit.stats import accuracy_by_group, wilson_interval

logger = logging.getLogger("r1kit")

_SAMPLES_KEPT = 20  # completions stored in the JSON for a person to read


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k estimate from n samples with `correct` right (Chen et al., 2021).

    >>> pass_at_k(n=4, correct=1, k=1), pass_at_k(n=4, correct=1, k=4)
    (0.25, 1.0)
    """
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


_PLAIN_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?")


def _vote_key(completion: str) -> str | None:
    """What a completion votes for in a majority vote: its answer as the verifier reads it (`answer_part`), a plain
    number in its canonical form ("1,200", "$1200.0" and "1200" vote together), else the text with its spacing
    collapsed; None where it gives no answer (cut off while thinking).

    >>> _vote_key("<think>..</think><answer> $1,200.50 </answer>"), _vote_key("<answer>x + 1</answer>")
    ('1200.5', 'x + 1')
    >>> _vote_key("<answer>\\\\$1,200</answer>")  # Markdown's escaped dollar
    '1200'
    >>> _vote_key("<think>3 * 4 = 12, then") is None
    True
    >>> _vote_key("<answer>1,2</answer>"), _vote_key("<answer>-12,000</answer>")
    ('1,2', '-12000')
    """
    answer = " ".join(answer_part(completion).split())
    if not answer:
        return None
    bare = answer.replace("\\$", "").replace("$", "").strip()
    if _THOUSANDS.fullmatch(bare):  # only separators: "1,2" (two answers, or 1.2 written in French) is no 12
        bare = bare.replace(",", "")
    if _PLAIN_NUMBER.fullmatch(bare):
        with localcontext() as exact:  # every digit kept: 28 (the default) made 30-digit numbers vote together
            exact.prec = len(bare)
            return format(Decimal(bare).normalize(), "f")
    return answer


def majority_correct(
    completions: Sequence[str], verdicts: Sequence[float], equal: Collection[frozenset[str]] = ()
) -> bool:
    """Whether the majority vote of one problem's sampled completions is right (cons@n, self-consistency): the
    completions the verifier found right all equal the gold and vote together; the others vote by `_vote_key`, the
    keys in `equal` pairs (found equal by the verifier: "13 apples" and "So it is 13.") together. The most voted
    answer wins; a tie goes to the answer voted first (the samples' order), so it favours neither right nor wrong.
    No answer at all is wrong.

    >>> majority_correct(["<answer>7</answer>", "<answer>8</answer>", "<answer>7.0</answer>"], [1.0, 0.0, 1.0])
    True
    >>> majority_correct(["<answer>8</answer>", "<answer>7</answer>", "<answer>8.0</answer>"], [0.0, 1.0, 0.0])
    False
    >>> majority_correct(["<answer>8</answer>", "<answer>7</answer>"], [0.0, 1.0])  # a tie: the first voted wins
    False
    >>> wrong = ["It is 13.", "13 apples", "<answer>7</answer>", "<answer>7</answer>"]
    >>> majority_correct(wrong, [0.0, 0.0, 1.0, 1.0]), majority_correct(wrong, [0.0, 0.0, 1.0, 1.0], [frozenset(("It is 13.", "13 apples"))])
    (True, False)
    """
    joined: dict[str, str] = {}  # a key → the key of the answer it votes with

    def cluster(key: str) -> str:
        while joined.get(key, key) != key:
            key = joined[key]
        return key

    for pair in equal:
        first, second = sorted(pair)
        if cluster(first) != cluster(second):
            joined[cluster(second)] = cluster(first)
    votes: dict[str, int] = {}  # in the order first voted: max() keeps the first of equal counts
    for completion, verdict in zip(completions, verdicts, strict=True):
        if verdict > 0.5:
            key = "right"  # the gold's answer, however written
        elif (answer := _vote_key(completion)) is not None:
            key = f"answer {cluster(answer)}"
        else:
            continue  # no answer, no vote
        votes[key] = votes.get(key, 0) + 1
    return bool(votes) and max(votes, key=votes.__getitem__) == "right"


def consensus(samples: Sequence[Sequence[str]], verdicts: Sequence[Sequence[float]], accuracy) -> list[bool]:
    """`majority_correct` of each problem, its wrong answers compared with one another by `accuracy` (the verifier:
    each distinct answer against each other as its gold), so one wrong answer written several ways votes once.

    >>> from r1kit.rewards import build_reward
    >>> consensus([["It is 13.", "13 apples", "<answer>7</answer>", "<answer>7</answer>", "<answer>13</answer>"]],
    ...           [[0.0, 0.0, 1.0, 1.0, 0.0]], build_reward("accuracy"))
    [False]
    >>> b, b_said, c = "<answer>B</answer>", "<answer>The answer is (B)</answer>", "<answer>C</answer>"
    >>> consensus([[b, b, b_said, b_said, c, c, c], [b_said, b_said, b, b, c, c, c]], [[0.0] * 4 + [1.0] * 3] * 2,
    ...           build_reward("accuracy"))  # in either order, B written two ways is one answer of 4 votes
    [False, False]
    >>> seven, denied, twelve, said, told = (
    ...     f"<answer>{x}</answer>" for x in ("7", "8, not 7", "12", "12, not 13", "The answer is 7"))
    >>> consensus([[seven, seven, denied, denied, c, c, c], [twelve, twelve, said, said, c, c, c],
    ...            [told, told, denied, denied, c, c, c]], [[0.0] * 4 + [1.0] * 3] * 3, build_reward("accuracy"))
    [True, False, True]
    """
    voted = []
    for texts, judged in zip(samples, verdicts, strict=True):
        keys = [_vote_key(text) if v <= 0.5 else None for text, v in zip(texts, judged, strict=True)]
        right, wrong_votes = sum(v > 0.5 for v in judged), sum(key is not None for key in keys)
        if not right or right > wrong_votes:  # decided whatever the wrong answers' clusters: no pair to verify
            voted.append(bool(right))  # (all pairs of 64 distinct wrong answers are 2,016 verifications)
            continue
        wrong = dict.fromkeys(key for key in keys if key is not None)
        # the verifier is not symmetric: it reads an answer as written (`8, not 7` is 8, `(B) 12` names B) and a gold
        # plainly (by its last number; a denied one dropped here): the longer of two answers is judged against the
        # shorter as its gold, the other way round only where that has no verdict (`B` against `The answer is (B)`).
        # Asked in the samples' order, the vote hung on which came first.
        pairs = [(a, b) if (len(a), a) >= (len(b), b) else (b, a) for a, b in itertools.combinations(wrong, 2)]
        # a problem at a time: the verifier remembers a bounded number of golds, and forgot the first of a larger batch
        same = accuracy([a for a, _ in pairs], solution=[denial_dropped(b) for _, b in pairs]) if pairs else []
        unjudged = [i for i, verdict in enumerate(same) if verdict is None]
        again = (
            accuracy([pairs[i][1] for i in unjudged], solution=[denial_dropped(pairs[i][0]) for i in unjudged])
            if unjudged
            else []
        )
        for i, verdict in zip(unjudged, again, strict=True):
            same[i] = verdict
        equal = {
            frozenset(pair) for pair, verdict in zip(pairs, same, strict=True) if verdict is not None and verdict > 0.5
        }
        voted.append(majority_correct(texts, judged, equal))
    return voted


class Generations(NamedTuple):
    """Completions per prompt, in the prompts' order: their texts, their token counts, whether each was cut at
    max_new_tokens (no end token: one that ends on the last token allowed is complete), and the index of the process
    that generated them (0 throughout for a single process)."""

    texts: list[list[str]]
    lengths: list[list[int]]
    truncated: list[list[bool]]
    processes: list[int]


def generate(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    max_new_tokens: int,
    batch_size: int,
    samples: int = 1,
    temperature: float | None = None,
    restrictions: dict[str, Any] | None = None,
    progress: bool = True,
    desc: str = "generating",
) -> Generations:
    """`samples` completions (text, token count) per prompt: greedy without `temperature`, else sampled at it from
    the distribution restricted by `restrictions` (`generate`'s top_p, top_k, min_p, repetition_penalty; default:
    none). None of the model's own generation settings apply (`plain_generation_config`).

    Under several processes (`accelerate launch`) each process generates for its contiguous share of the prompts and
    the shares are gathered back in order, so every process returns the same complete result."""
    share = distributed.shard(prompts)
    ends = eos_token_ids(model, tokenizer)  # generate stops at each: an instruct model's end of turn too
    restricted = (restrictions or {}) if temperature is not None else {}  # greedy: the plain argmax
    settings = plain_generation_config(max_new_tokens, tokenizer.pad_token_id, ends, temperature, **restricted)
    settings.num_return_sequences = samples
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    limit, cut_by_context, unanswerable = context_limit(model), 0, []
    texts: list[list[str]] = []
    lengths: list[list[int]] = []
    truncated: list[list[bool]] = []
    bar = tqdm(total=len(share), desc=desc, disable=not (progress and distributed.is_main()), leave=False)

    def encoded(batch: list[str]):
        return tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)

    for start in range(0, len(share), batch_size):
        batch = [
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in share[start : start + batch_size]
        ]
        inputs = encoded(batch)
        # near the context's end each prompt is asked alone: in a batch, a short prompt's reply was cut to the room
        # the longest one left (its padded width)
        near_the_end = limit is not None and inputs["input_ids"].shape[1] + max_new_tokens > limit
        parts = [[prompt] for prompt in batch] if near_the_end and len(batch) > 1 else [batch]
        for index, part in enumerate(parts, start=start):
            inputs = encoded(part) if len(part) < len(batch) else inputs
            width = inputs["input_ids"].shape[1]  # the longest prompt of the part (the others padded to it)
            if limit is not None and width >= limit:  # alone (near_the_end): no room for one token of reply
                # an empty reply, cut at once (wrong; no trace): one long problem stopped a whole evaluation, or a
                # rejection-sampling stage after hours of RL
                unanswerable.append((width, share[index][-1]["content"]))
                texts.append([""] * samples)
                lengths.append([0] * samples)
                truncated.append([True] * samples)
                continue
            # a reply past the model's positions failed inside generate (an index error): cut where the context ends
            room = {"max_new_tokens": limit - width} if limit is not None and width + max_new_tokens > limit else {}
            cut_by_context += len(part) if room else 0
            with torch.inference_mode(), own_generation_settings_aside(model):
                output = model.generate(**inputs, generation_config=settings, **room)
            new_tokens = output[:, width:]  # (part·samples, ≤ max_new_tokens)
            for row in range(0, new_tokens.shape[0], samples):
                group = new_tokens[row : row + samples]
                opening = think_opened_by(part[row // samples])  # the template's own start of the reply, if any
                texts.append([opening + text for text in tokenizer.batch_decode(group, skip_special_tokens=True)])
                generated = [_generated_length(ids, ends) for ids in group]
                lengths.append([n for n, _ in generated])
                truncated.append([not ended for _, ended in generated])
        bar.update(len(batch))
    bar.close()
    # every process's, said by the main one (the others log errors alone): a long prompt in another process's share
    # got no reply without a word
    unanswerable = distributed.gather(unanswerable)
    cut_by_context = sum(distributed.gather([cut_by_context]))
    if unanswerable:
        width, question = unanswerable[0]
        logger.warning(
            "%s: %s filling the model's whole context (%d tokens) got no reply (wrong, no trace); the first takes %d "
            "tokens: %r",
            desc,
            counted(len(unanswerable), "prompt"),
            limit,
            width,
            question[:80] + ("…" if len(question) > 80 else ""),
        )
    if cut_by_context:
        logger.warning(
            "%s: %s left fewer than max_new_tokens (%d) of the model's %d positions; replies end there",
            desc,
            counted(cut_by_context, "prompt"),
            max_new_tokens,
            limit,
        )
    if not distributed.launched():
        return Generations(texts, lengths, truncated, [0] * len(texts))
    mine = [(*row, distributed.index()) for row in zip(texts, lengths, truncated, strict=True)]
    gathered = distributed.gather(mine)
    return Generations(*([row[part] for row in gathered] for part in range(len(Generations._fields))))


def scored_rows(rows: Dataset, limit: int | None, dataset: DatasetConfig, whole_file: bool = False) -> Dataset:
    """At most `limit` of the held-out `rows` to score: of rows in their file's order (`in_file_order`), which may be
    sorted by level, a draw seeded by dataset.split.seed and kept in order (the first ones were one level alone); of
    the share the split holds out, in a seeded order already, the first ones (the default run's 200)."""
    drawn = in_file_order(dataset, whole_file)
    return rows.select(first_or_drawn(len(rows), limit or len(rows), dataset.split.seed, drawn))


def in_file_order(dataset: DatasetConfig, whole_file: bool = False) -> bool:
    """Whether held-out rows are in their source's order: a held-out file or split (dataset.test_split), or a file
    named to score whole (`whole_file`)."""
    return bool(dataset.test_split) or whole_file


def _generated_length(ids: torch.Tensor, ends: list[int]) -> tuple[int, bool]:
    """(tokens generated up to and including the first end token, whether there is one): `generate` pads a row that
    ended before the batch's longest with the pad token, which may itself be an end token (eos) or not.

    >>> _generated_length(torch.tensor([5, 6, 2, 0]), ends=[2]), _generated_length(torch.tensor([5, 0, 7]), [2])
    ((3, True), (3, False))
    """
    stops = torch.isin(ids, torch.tensor(ends, device=ids.device)).nonzero()
    return (int(stops[0, 0]) + 1, True) if len(stops) else (len(ids), False)


def scoring_accuracy(config: R1kitConfig):
    """The accuracy reward for scoring that must judge every item (evaluation, the curriculum's pass rates, the trace
    filters): only the per-item time limit applies, not a training step's batch budget, which on a busy machine
    would leave the batch's later items without a verdict."""
    return build_reward("accuracy", **config.rewards.verification.model_dump() | {"batch_budget_seconds": math.inf})


GOLD_FAILURES = ("unparseable_gold", "hostile_gold")  # the verdicts that say nothing of the answer


def answer_scores(
    config: R1kitConfig, completions: Sequence[str], golds: Sequence[str | None]
) -> tuple[list[float | None], int]:
    """Each answer scored against its gold for evaluation (and pass rates): 1.0 right, 0.0 wrong, None only where the
    gold cannot be read or hangs the verifier, so which problems count depends on the data alone and two models are
    scored on the same ones; and how many answers the verifier could not judge (it timed out on them, or failed).
    Those are wrong (`say_unverified` says so): left out, they took their problems out of the count, and a model
    whose wrong answers hang the verifier scored 100%."""
    accuracy = scoring_accuracy(config)
    verdicts = accuracy.verification.verdicts("accuracy", completions, golds, {})
    failed = [i for i, v in enumerate(verdicts) if v.score is None and v.status not in GOLD_FAILURES]
    # a failure is the gold's where the gold does not verify as its own answer (`\frac{1}{0}` makes the verifier
    # raise for every answer): such a problem is left out for every model, as an unreadable gold is
    own = accuracy([str(golds[i]) for i in failed], solution=[golds[i] for i in failed]) if failed else []
    answer_side = {i for i, verdict in zip(failed, own, strict=True) if verdict == 1.0}
    unjudged = [i in answer_side for i in range(len(verdicts))]
    return [0.0 if failed else v.score for v, failed in zip(verdicts, unjudged, strict=True)], sum(unjudged)


_CUT_NUMBER = re.compile(r"\d[\d.,]*$")


def without_cut_answer(completion: str, truncated: bool) -> str:
    """A completion cut at the token limit inside its <answer> block, without that block: `<answer>12` of a model
    writing 125 was read as 12, right for a gold 12 (the reward reads an answer left open, as a reply in another
    format may leave it; evaluation knows where the limit cut it, and chat says such a reply was cut). Without an
    answer block the number the limit cut ends the text (`The answer is 12` of a 125, an R1-distill model's prose
    after </think> or a base model's reply): it is left out too.

    >>> without_cut_answer("<think>5 * 25</think><answer>12", True), without_cut_answer("<answer>12", False)
    ('<think>5 * 25</think>', '<answer>12')
    >>> without_cut_answer("</think> The answer is 12", True), without_cut_answer("So 125. Then", True)
    ('</think> The answer is ', 'So 125. Then')
    >>> without_cut_answer("<answer>125</answer> 12", True)  # after a closed answer block: not what is read
    '<answer>125</answer> 12'
    """
    if not truncated:
        return completion
    opened, closed = completion.rfind(ANSWER_OPEN), completion.rfind(ANSWER_CLOSE)
    if opened > closed:
        return completion[:opened]
    return completion if closed >= 0 else _CUT_NUMBER.sub("", completion)


def sample_scores(
    config: R1kitConfig, samples: Sequence[Sequence[str]], golds: Sequence[str | None]
) -> tuple[list[list[float | None]], int]:
    """`answer_scores` of each problem's samples against its gold (a problem at a time), and how many answers the
    verifier could not judge (said once)."""
    scored, unverified = [], 0
    for completions, gold in zip(samples, golds, strict=True):
        scores, unjudged = answer_scores(config, list(completions), [gold] * len(completions))
        scored.append(scores)
        unverified += unjudged
    say_unverified(config, unverified)
    return scored, unverified


def say_unverified(config: R1kitConfig, count: int) -> None:
    """One line for the answers `answer_scores` could not judge, if any."""
    if count:
        logger.warning(
            "%d answer(s) could not be verified within rewards.verification.timeout_seconds (%s s): scored wrong",
            count,
            config.rewards.verification.timeout_seconds,
        )


def greedy_scores(model, tokenizer, rows: Dataset, config: R1kitConfig, desc: str) -> dict[str, Any]:
    """Greedy pass@1, format rate and lengths of `model` on canonical rows, with each completion and its score."""
    settings = config.evaluation
    prompts = [chat_prompt(q, config.prompt.system) for q in rows["question"]]
    greedy = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        progress=config.monitoring.progress,
        desc=desc,
    )
    completions = [g[0] for g in greedy.texts]
    answered = [without_cut_answer(text, cut[0]) for text, cut in zip(completions, greedy.truncated, strict=True)]
    scores, unverified = answer_scores(config, answered, list(rows["solution"]))
    say_unverified(config, unverified)
    scored = [s for s in scores if s is not None]
    formats = [split_r1(c) is not None for c in completions]
    lengths = [n[0] for n in greedy.lengths]
    # every row has a group column (None where the data names none): data without groups has no breakdown
    by_group = accuracy_by_group(scores, rows["group"]) if "group" in rows.column_names else {}
    shared_out = {}
    if distributed.launched():  # who generated what: each problem once, by one of the processes
        shared_out = {
            "processes": distributed.count(),
            "problems_per_process": [greedy.processes.count(p) for p in range(distributed.count())],
        }
    return {
        "problems": len(rows),
        "excluded": len(scores) - len(scored),  # the gold answer unreadable or hanging the verifier
        "unverified_answers": unverified,  # answers the verifier could not judge in time: scored wrong
        "accuracy": statistics.fmean(scored) if scored else None,
        "accuracy_ci95": list(wilson_interval(sum(s > 0.5 for s in scored), len(scored))) if scored else None,
        "format_rate": statistics.fmean(formats) if formats else None,
        # of the replies written: a prompt filling the model's whole context got none (0 tokens, said in the log)
        "mean_completion_tokens": statistics.fmean(written) if (written := [n for n in lengths if n]) else None,
        "truncated_rate": statistics.fmean(cut[0] for cut in greedy.truncated) if lengths else None,
        # pass@1 per group (dataset.group_column: a difficulty level, a task); empty for data without groups
        "by_group": by_group,
        "group_column": config.dataset.group_column if by_group else None,  # what a group is, where there are any
        "completions": completions,
        "answered": answered,  # what pass@1 read of each: a number or answer block the token limit cut left out
        "scores": scores,
        "formats": formats,
        **shared_out,
    }


def evaluate(
    ctx: StageContext,
    model_reference: str,
    rows: Dataset,
    label: str,
    judges: Mapping[str, str | None] | None = None,
    skipped_rows: int = 0,
    key: str | None = None,
    whole_file: bool = False,
) -> dict[str, Any]:
    """Evaluate a model on canonical rows; write RUN/eval/<label>.json and return the result.

    `whole_file`: the rows are a file named to score (`scored_rows`: evaluation.max_samples of them are drawn).

    `judges` (win_rate_against, reward_model → the model folder each setting stands for, `judge_folders`; None for a
    recipe stage's model not made yet): the win rate is left out (None) while either is not there. `skipped_rows`
    (the bad rows left out of `rows` under dataset.on_bad_row skip) is recorded when there were any, and `key` (what
    the result depends on, by which a run reuses it) when given."""
    config, settings = ctx.config, ctx.config.evaluation
    held_out_rows = len(rows)
    rows = scored_rows(rows, settings.max_samples, config.dataset, whole_file)
    loaded_from = _folder_identity(model_reference)
    tokenizer = load_tokenizer(config.model, model_reference)
    model = load_model(config.model, model_reference, ctx.hardware, for_training=False).eval()

    started = time.perf_counter()
    scored = greedy_scores(model, tokenizer, rows, config, desc=f"eval {label}")
    completions, answered, formats = scored.pop("completions"), scored.pop("answered"), scored.pop("formats")
    # scored["scores"] stays: per problem, in order, for paired comparisons between models on the same problems
    result: dict[str, Any] = {
        "label": label,
        # a folder by its full path: a stage redone later removes the evaluations of its old model (clear_stage)
        "model": str(Path(model_reference).resolve()) if Path(model_reference).exists() else model_reference,
        # and where the run folder it is written into was then: one moved since still knows its own models' paths
        "run_folder": str(ctx.run.root.resolve()),
        "dataset": held_out_source(config.dataset),
        "system_prompt": config.prompt.system,  # what the model was asked with: a score depends on it
        "max_new_tokens": settings.max_new_tokens,  # and how long it could answer
        "held_out_rows": held_out_rows,  # of which evaluation.max_samples are scored
        **scored,
        "pass_at_k": {},
    }
    if settings.num_samples > 1:
        accuracy = scoring_accuracy(config)
        result["sampling"] = {"num_samples": settings.num_samples, "temperature": settings.temperature}
        # seeded by the run's seed, not by whatever drew random numbers before: the same model, problems and
        # settings give the same pass@k in `r1kit eval` and inside `r1kit run`
        with torch.random.fork_rng():
            torch.manual_seed(config.run.seed)
            generated = generate(
                model,
                tokenizer,
                [chat_prompt(q, config.prompt.system) for q in rows["question"]],
                max_new_tokens=settings.max_new_tokens,
                batch_size=max(1, settings.batch_size // settings.num_samples),
                samples=settings.num_samples,
                temperature=settings.temperature,
                progress=config.monitoring.progress,
                desc=f"pass@k {label}",
            )
        sampled = [
            [without_cut_answer(text, cut) for text, cut in zip(texts, cuts, strict=True)]
            for texts, cuts in zip(generated.texts, generated.truncated, strict=True)
        ]
        # beside `sampling` (how the model was asked, which compare sets side by side), not in it
        scores, result["sampled_unverified_answers"] = sample_scores(config, sampled, rows["solution"])
        judged = [  # (samples, verdicts) of the problems with a readable gold: those pass@1 counts
            (samples, verdicts)
            for samples, verdicts in zip(sampled, scores, strict=True)
            if all(v is not None for v in verdicts)
        ]
        per_problem = [sum(v > 0.5 for v in verdicts) for _, verdicts in judged]
        voted_right = consensus([s for s, _ in judged], [v for _, v in judged], accuracy) if judged else []
        result["pass_at_k"] = {
            str(k): statistics.fmean(pass_at_k(settings.num_samples, c, k) for c in per_problem)
            if per_problem
            else None
            for k in settings.pass_k
        }
        # what sharpening the policy toward its own most frequent answer could reach (RL mostly does that)
        result["consensus"] = {
            "samples": settings.num_samples,
            "problems": len(voted_right),
            "accuracy": statistics.fmean(voted_right) if voted_right else None,
            "accuracy_ci95": list(wilson_interval(sum(voted_right), len(voted_right))) if voted_right else None,
        }
    prompts, references = reference_texts(rows, config.prompt.system)
    result["perplexity"] = perplexity(model, tokenizer, prompts, references)
    result["rouge_l"] = rouge_l(*answers_and_references(answered, rows))  # the answers pass@1 read
    if settings.win_rate_against and settings.reward_model:
        result |= _win_rate_entry(ctx, model_reference, rows, completions, judges or {})
    result["seconds"] = time.perf_counter() - started
    groups = rows["group"] if "group" in rows.column_names else [None] * len(rows)
    problems = [
        {"question": q, "gold": g, "completion": c, "correct": s, "format": f, "group": group}
        for q, g, c, s, f, group in zip(
            rows["question"], rows["solution"], completions, scored["scores"], formats, groups, strict=True
        )
    ]
    result["samples"] = problems[:_SAMPLES_KEPT]
    if skipped_rows:
        result["skipped_rows"] = skipped_rows
    if key is not None:
        result["key"] = key
    now = _folder_identity(model_reference)
    # a checkpoint its run let go of (save_total_limit) is gone for good: its figures are still its own (where its
    # stage's checkpoints are gone too, the stage is being redone)
    folder = Path(model_reference).parent
    let_go = now is None and folder.name == "checkpoints" and folder.is_dir()
    if now != loaded_from and not let_go:  # `r1kit eval` beside a run that redid the model's stage
        change = "replaced" if now is not None else "removed"
        raise ModelError(
            f"{model_reference} was {change} while it was evaluated (its stage redone?): these figures are the old "
            "model's, not written; evaluate it again"
        )
    if now != loaded_from:
        logger.warning("%s was removed while it was evaluated (its run kept newer checkpoints)", model_reference)
    if distributed.is_main():  # every process holds the same result; one writes it
        # each problem with its completion and verdict: which ones a stage fixed or broke, not only how many
        write_atomic(ctx.run.problems_path(label), "".join(json.dumps(p, default=jsonable) + "\n" for p in problems))
        write_json(ctx.run.eval_path(label), result)
    return result


def _folder_identity(model_reference: str) -> tuple[int, int] | None:
    """Which folder `model_reference` is now (a folder built anew and renamed into its place is another: it existed
    beside the old one, so its inode is another), or None for a hub id or alias."""
    path = Path(model_reference)
    if not path.is_dir():
        return None
    status = path.stat()
    return status.st_dev, status.st_ino


# ------------------------------------------------------------------------------------- perplexity, ROUGE-L, win rate


def reference_texts(rows: Dataset, system_prompt: str) -> tuple[list[list[dict]], list[str]]:
    """(prompt, reference completion) of each held-out row that has one: its worked solution in R1 form, or its
    reference reply for chat data."""
    prompts, texts = [], []
    for row in rows:
        if row.get("reasoning") and row.get("solution"):
            text = r1_completion(row["reasoning"], row["solution"])
        elif row.get("response"):
            text = row["response"]
        else:
            continue
        prompts.append(chat_prompt(row["question"], system_prompt))
        texts.append(text)
    return prompts, texts


_MARK = "\ue000"  # a private-use character: where a reply goes in its rendered turn


def completion_logprobs(
    model, tokenizer, prompts: Sequence[list[dict]], completions: Sequence[str], batch_size: int = 8
) -> list[tuple[float, int]]:
    """(sum of log-probabilities of the completion's tokens given the prompt, completion tokens) per pair; a pair
    longer than the model's context is scored up to its end.

    Prompt and completion are rendered with the chat template, the completion as the assistant's reply (its
    end-of-turn tokens included); the prompt's tokens are masked out. Rows of similar length are batched together,
    and the output layer runs only where a completion token is predicted (most of the cost on a small model).
    """
    rows: list[tuple[list[int], int]] = []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        # The reply as the model writes it after the prompt, then the turn's end: a template may drop an assistant
        # turn's reasoning (DeepSeek-R1-Distill keeps what follows </think>) and open <think> in its generation
        # prompt, so rendering the reply as a turn scored its answer alone. The turn is rendered around a mark.
        around = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": _MARK}], tokenize=False)
        if _MARK in around:
            reply = completion.removeprefix(think_opened_by(prompt_text))
            full_text = prompt_text + reply + around.rsplit(_MARK, 1)[1]
        else:  # a template that leaves a reply's text out: as it renders the turn
            full_text = tokenizer.apply_chat_template(
                [*prompt, {"role": "assistant", "content": completion}], tokenize=False
            )
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
        start = 0  # where prompt and prompt + completion part (usually the prompt's end)
        while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
            start += 1
        rows.append((full_ids, max(start, 1)))  # the first token has no prediction
    limit = context_limit(model)
    cut = sum(len(full_ids) > limit for full_ids, _ in rows) if limit else 0
    if cut:  # past its positions a model with learned ones (GPT-2's) fails with an index error: the tokens it has
        logger.warning(
            "%d of %d replies scored run past the model's %d positions (prompt and reply): scored up to there",
            cut,
            len(rows),
            limit,
        )
        rows = [(full_ids[:limit], min(start, limit)) for full_ids, start in rows]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    decoder, head = _decoder_and_head(model)
    results: list[tuple[float, int] | None] = [None] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    for begin in range(0, len(order), batch_size):
        batch = order[begin : begin + batch_size]
        width = max(len(rows[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        scored = torch.zeros((len(batch), width), dtype=torch.bool)  # positions whose token is a completion token
        for row, index in enumerate(batch):
            tokens, start = rows[index]
            ids[row, : len(tokens)] = torch.tensor(tokens)
            attention[row, : len(tokens)] = 1
            scored[row, start : len(tokens)] = True
        ids, attention, scored = ids.to(model.device), attention.to(model.device), scored.to(model.device)
        predicts = scored[:, 1:]  # position t predicts token t + 1
        with torch.inference_mode():
            if decoder is not None:
                hidden = decoder(input_ids=ids, attention_mask=attention).last_hidden_state[:, :-1][predicts]
                logits = head(hidden)
            else:  # a model without a separable output layer: every position's logits
                logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1][predicts]
            token_logprobs = -torch.nn.functional.cross_entropy(logits.float(), ids[:, 1:][predicts], reduction="none")
            row_of = torch.arange(len(batch), device=ids.device).unsqueeze(1).expand_as(predicts)[predicts]
            sums = torch.zeros(len(batch), device=ids.device).index_add_(0, row_of, token_logprobs).cpu()
            counts = predicts.sum(-1).cpu()
        for row, index in enumerate(batch):
            results[index] = (float(sums[row]), int(counts[row]))
    return results  # type: ignore[return-value]


def _decoder_and_head(model) -> tuple[Any, Any]:
    """The model's backbone and output layer where the model's logits are the layer's output on the backbone's
    last hidden state, else (None, None): some models rescale or cap them after the layer (Gemma's softcapping,
    Granite's logits_scaling, Cohere's logit_scale), which only their own forward knows, so it is checked on a probe."""
    decoder = getattr(model, "get_decoder", lambda: None)()
    head = model.get_output_embeddings()
    if decoder is None or head is None or decoder is model:
        return None, None
    settings = [model.config, getattr(model.config, "text_config", None)]
    if any(getattr(config, "final_logit_softcapping", None) for config in settings):  # a cap small logits never meet
        return None, None
    probe = torch.arange(1, 5, device=model.device).unsqueeze(0) % head.weight.shape[0]  # (1, 4) token ids
    with torch.inference_mode():
        logits = model(input_ids=probe).logits.float()
        split = head(decoder(input_ids=probe).last_hidden_state).float()
    if not torch.allclose(split, logits, rtol=1e-2, atol=1e-2 * float(logits.abs().max())):
        return None, None
    return decoder, head


def perplexity(
    model, tokenizer, prompts: Sequence[list[dict]], completions: Sequence[str], batch_size: int = 8
) -> float | None:
    """exp(mean negative log-likelihood per completion token) of the completions given their prompts; None without
    any completion token."""
    if not completions:
        return None
    # under several processes each scores its share of the pairs (see `generate`)
    share = distributed.shard(list(zip(prompts, completions, strict=True)))
    logprobs = distributed.gather(
        completion_logprobs(model, tokenizer, [p for p, _ in share], [c for _, c in share], batch_size) if share else []
    )
    tokens = sum(count for _, count in logprobs)
    if not tokens:
        return None
    return math.exp(-sum(total for total, _ in logprobs) / tokens)


_WORDS = re.compile(r"\w+|[^\w\s]")


class _Tokenizer:
    """Words and single symbols, lower-cased, in any script (rouge-score's default keeps only ASCII letters and
    digits, which would make "-3" and "3" the same answer and drop non-English text)."""

    def tokenize(self, text: str) -> list[str]:
        return _WORDS.findall(text.lower())


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """Mean ROUGE-L F-measure (longest common subsequence of tokens) of predictions against references, from the
    rouge-score library; None for no pair.

    >>> rouge_l(["the answer is 42"], ["the answer is 42"]), rouge_l(["cat"], ["dog"])
    (1.0, 0.0)
    """
    from rouge_score import rouge_scorer

    if not predictions:
        return None
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
    return statistics.fmean(
        scorer.score(reference, prediction)["rougeL"].fmeasure
        for prediction, reference in zip(predictions, references, strict=True)
    )


def answers_and_references(completions: Sequence[str], rows: Dataset) -> tuple[list[str], list[str]]:
    """What ROUGE-L compares: the completion's answer (`answer_part`: its <answer> block, else what follows its
    thinking, else the whole reply) against the gold where the row has one, else against the reference reply. A row
    with both (an R1-format or Bespoke-Stratos reply) compared the whole completion, thinking included, with the
    reply: the same answer scored 0.09 there and 1.0 beside a GSM8K row.

    >>> answers_and_references(["<think>6 * 7</think><answer>42</answer>", "<think>hm</think>Hello!"],
    ...                        [{"solution": "42", "response": "The product is 42."}, {"response": "Hello!"}])
    (['42', 'Hello!'], ['42', 'Hello!'])
    """
    predictions, references = [], []
    for completion, row in zip(completions, rows, strict=True):
        reference = str(row["solution"]) if row.get("solution") is not None else row.get("response")
        if reference:
            predictions.append(answer_part(completion))  # '' for a reply cut off while thinking
            references.append(reference)
    return predictions, references


def win_rate(
    policy_completions: Sequence[Any],
    reference_completions: Sequence[Any],
    prompts: Sequence[Any],
    reward_model: Callable[..., Sequence[float | None]],
) -> float | None:
    """Share of prompts where `reward_model` scores the policy's completion above the reference model's (ties count
    half). `reward_model` has the reward signature `(completions, prompts=…) -> scores`, as the `reward_model`
    reward does; prompts either completion has no score for are left out.

    >>> judge = lambda completions, prompts=None, **kwargs: [float(len(c)) for c in completions]
    >>> win_rate(["a long answer", "a", "same"], ["short", "bb", "same"], ["p1", "p2", "p3"], judge)
    0.5
    """
    policy = reward_model(list(policy_completions), prompts=list(prompts))
    reference = reward_model(list(reference_completions), prompts=list(prompts))
    outcomes = [
        1.0 if p > r else 0.5 if p == r else 0.0
        for p, r in zip(policy, reference, strict=True)
        if p is not None and r is not None
    ]
    return statistics.fmean(outcomes) if outcomes else None


def _win_rate_entry(
    ctx: StageContext, model_reference: str, rows: Dataset, completions: list[str], judges: Mapping[str, str | None]
) -> dict[str, Any]:
    """The evaluated model's win rate against evaluation.win_rate_against, judged by evaluation.reward_model."""
    config, settings = ctx.config, ctx.config.evaluation
    against, judge = judges.get("win_rate_against"), judges.get("reward_model")  # the folders (`judge_folders`)
    entry: dict[str, Any] = {"win_rate": None, "win_rate_against": settings.win_rate_against}
    made = against is not None and judge is not None and Path(against).exists() and Path(judge).exists()
    if not made or Path(against).resolve() == Path(model_reference).resolve():
        return entry  # a stage not run yet (or the model against itself): nothing to compare
    prompts = [chat_prompt(q, config.prompt.system) for q in rows["question"]]
    reward = build_reward("reward_model", path=judge)
    entry["win_rate"] = win_rate(completions, _reference_completions(ctx, against, prompts), prompts, reward)
    return entry


def _reference_completions(ctx: StageContext, against: str, prompts: list[list[dict]]) -> list[str]:
    """The win-rate reference model's greedy completions of `prompts`: generated once per run and kept in
    RUN/eval/win_rate_reference/, keyed by that model's content, the prompts' text as its chat template writes them
    (model.chat_template changes what it is asked), the reply's limit and the numerics (bf16 and fp32 greedy replies,
    and a batch's padding, differ), for every model judged after."""
    settings = ctx.config.evaluation
    tokenizer = load_tokenizer(ctx.config.model, against)
    asked = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    numerics = [ctx.hardware.device, ctx.hardware.precision, settings.batch_size]
    key = json_digest([content_hash(Path(against)), asked, settings.max_new_tokens, numerics])
    path = ctx.run.root / "eval" / "win_rate_reference" / f"{key}.json"
    kept = distributed.from_main(json.loads(path.read_text(encoding="utf-8")) if path.exists() else None)
    if kept is not None:
        return kept
    reference_model = load_model(ctx.config.model, against, ctx.hardware, for_training=False).eval()
    texts = generate(
        reference_model,
        tokenizer,
        prompts,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        progress=ctx.config.monitoring.progress,
        desc=f"win rate: {settings.win_rate_against}",
    ).texts
    completions = [samples[0] for samples in texts]
    if distributed.is_main():
        write_json(path, completions)
    return completions


class EvaluateEvery(TrainerCallback):
    """Greedy pass@1 and format rate on `evaluation.during_training_samples` held-out problems (`scored_rows`) every
    `evaluation.every_steps` optimizer steps: a `kind: eval` record in metrics.jsonl, a console line, report curves."""

    def __init__(self, ctx: StageContext, held_out: Dataset, tokenizer):
        settings = ctx.config.evaluation
        self.ctx, self.stage, self.tokenizer, self.every = ctx, ctx.stage, tokenizer, settings.every_steps
        self.rows = scored_rows(held_out, settings.during_training_samples, ctx.config.dataset)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.after_step(model, state.global_step, state.is_world_process_zero)

    def after_step(self, model, step: int, main_process: bool) -> None:
        """Score `model` if `step` is due (a trainer without TRL's callbacks, PPO's, calls it after each step)."""
        # Every process takes part: the problems are shared out between them (see `generate`); the main one writes.
        if not self.every or step % self.every:
            return
        padding_side, was_training = self.tokenizer.padding_side, model.training
        model.eval()
        try:
            with self.ctx.side_work.timed():  # not training: the speed figures leave it out
                record = self._scores(model, step)
        finally:  # the trainer's collator pads on its own side, and the model trains on
            self.tokenizer.padding_side = padding_side
            model.train(was_training)
        if not main_process:
            return
        self.ctx.run.append("metrics.jsonl", {"stage": self.stage, "kind": "eval", "step": step} | record)
        shown = []
        if "eval/accuracy" in record:
            accuracy = record["eval/accuracy"]
            shown += [
                f"pass@1 {'n/a' if accuracy is None else f'{accuracy:.1%}'}",
                f"format {record['eval/format_rate']:.0%}",
            ]
        if record.get("eval/perplexity") is not None:
            shown.append(f"perplexity {record['eval/perplexity']:.3g}")
        logger.warning(
            "  eval    [%s step %d] held-out %s · %d problems",
            self.stage,
            step,
            " · ".join(shown),
            len(self.rows),
        )

    def _scores(self, model, step: int) -> dict[str, Any]:
        """Greedy pass@1 and format rate where the rows have gold answers (chat data has none: generating would only
        give "n/a"), and the perplexity of their reference solutions or replies."""
        config, record = self.ctx.config, {}
        if any(self.rows["solution"]):
            scored = greedy_scores(model, self.tokenizer, self.rows, config, desc=f"eval @ {step}")
            record |= {f"eval/{key}": scored[key] for key in ("accuracy", "format_rate", "mean_completion_tokens")}
        record["eval/perplexity"] = perplexity(model, self.tokenizer, *reference_texts(self.rows, config.prompt.system))
        return record


def reserve_label(run: RunDir) -> str:
    """`eval`, or `eval_2`, `eval_3`, … where earlier evaluations were written into the same folder: each is kept.
    The label is reserved by creating `eval/<label>.reserved` (exclusively), which `main` removes once its JSON is
    written (a killed evaluation's stays, and its label goes unused): two evaluations started together took one
    label, and one result was lost."""
    run.path("eval").mkdir(parents=True, exist_ok=True)
    for label in map(eval_label, itertools.count(1)):
        if run.eval_path(label).exists():
            continue
        try:
            os.close(os.open(_reservation(run, label), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return label
        except FileExistsError:  # another evaluation's, in progress
            continue
    raise AssertionError("unreachable")


def _reservation(run: RunDir, label: str) -> Path:
    return run.path("eval") / f"{label}.reserved"


# what a folder setting takes here; a bare stage name (`sft`) is a recipe's own, read by `r1kit run`
_STAGE_NAMES = " (a model folder, a run or stage folder or RUN:STAGE here; a bare stage name only in `r1kit run`)"


def judges_named(config: R1kitConfig) -> dict[str, str]:
    """The evaluation settings that name a model, those set: win_rate_against, reward_model → the name given."""
    settings = config.evaluation
    named = {"win_rate_against": settings.win_rate_against, "reward_model": settings.reward_model}
    return {key: value for key, value in named.items() if value}


def judge_folders(config: R1kitConfig, stages: Collection[str] = ()) -> dict[str, str | None]:
    """evaluation.win_rate_against and evaluation.reward_model → the model folder each stands for, checked before any
    evaluation: a model alias (the policy the win rate is against), a model folder, a run or stage folder, RUN:STAGE.
    A name among `stages` (a recipe's) stays unresolved (None): the run maps it to that stage's model once made. Any
    other name is a ModelError: the win rate would stay empty without a word (a hub id too: download it first). Keyed
    by setting: one run folder names a policy as the one and its reward model as the other."""
    folders: dict[str, str | None] = {}
    for key, value in judges_named(config).items():
        if value in stages:
            folders[key] = None
            continue
        alias = key == "win_rate_against" and value in BUILTIN_MODELS
        if not alias and stage_named(value) is None and not Path(value).expanduser().is_dir():
            raise ModelError(f"evaluation.{key} {value}: no such model folder{_STAGE_NAMES}")
        # a run, stage or RUN:STAGE: that model (a run folder's reward model, not its final policy, for the judge)
        judge = reward_model_in(Path(value).expanduser()) if key == "reward_model" else None
        folder = str(judge) if judge else model_reference_of(value, config)
        if key == "win_rate_against":
            check_model(config.model, folder, training=False, key=f"evaluation.{key}")
        else:  # a policy's folder is refused now, not after the evaluation
            try:
                build_reward("reward_model", path=folder)
            except ModelError as error:  # said of the reward's own setting: name this one
                raise ModelError(str(error).replace("rewards.reward_model.path", f"evaluation.{key}", 1)) from None
        folders[key] = str(Path(folder).resolve())
    return folders


def main(config: R1kitConfig, data_named: bool = True) -> dict[str, Any]:
    """`r1kit eval`: one model on the held-out rows of the data; the JSON goes to RUN/eval/eval.json. `data_named`:
    the user named the data (a local file is then scored whole); else it is a run's own, scored on its held-out
    split."""
    hardware = setup_hardware(config.model.device, config.model.precision, config.model.threads)
    distributed.start(hardware.device, hardware.precision)
    quiet_libraries(config.monitoring.progress)  # no weight-loading bar above the table
    reference = loadable_model(config)
    check_model(config.model, reference, training=False)  # a reward model, say, before the data and the run folder
    judges = judge_folders(config)  # the models they stand for, in the settings the result records
    config = config.model_copy(update={"evaluation": config.evaluation.model_copy(update=judges)})
    rows, skipped = load_eval_rows(config.dataset, whole_file=data_named)
    say_scored_training_problems(config, rows["question"], "eval")
    if skipped:  # of the file the problems came from: a held-out file's own
        source = held_out_source(config.dataset) if config.dataset.test_split else config.dataset.name
        logger.warning("%s: %s skipped (dataset.on_bad_row skip)", source, counted(skipped, "bad row"))
    # A run's model is evaluated into its run folder, where `r1kit report` finds it; another model into a new
    # folder, one for every process: the main process's (a name from the clock could differ by a second).
    trained_in = run_of(reference)  # the resolved model: RUN:STAGE is RUN's too
    folder = config.run.output_dir or (trained_in.root if trained_in else None)
    if distributed.is_main():  # a folder that cannot be written is said now, not after the evaluation
        run = RunDir(folder) if folder else RunDir.new(prefix="eval-")
        run.create()
    run = RunDir(distributed.from_main(str(run.root) if distributed.is_main() else None))
    label = distributed.from_main(reserve_label(run) if distributed.is_main() else None)
    try:
        ctx = StageContext(config, run, hardware)
        whole_file = scores_whole_file(config.dataset, data_named)
        result = evaluate(ctx, reference, rows, label, judges=judges, skipped_rows=skipped, whole_file=whole_file)
    finally:  # written, or failed: the label is free again
        if distributed.is_main():
            _reservation(run, label).unlink(missing_ok=True)
    if distributed.is_main():
        print_eval_table({label: result}, title=f"r1kit eval · {config.model.name}")  # the name compare reads
        logger.warning("evaluation written to %s", run.eval_path(label))
    return result
