"""Classic RLHF: preference data, the reward_model / dpo / rloo stages on the tiny model, the reward-model reward, and
the evaluation figures they add (perplexity, ROUGE-L, win rate)."""

from __future__ import annotations

import json
import logging
import math
import pickle
import random
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from r1kit.config.sources import ConfigError, resolve_config
from r1kit.data.adapters import BadRow
from r1kit.data.loading import DatasetError
from r1kit.data.preferences import (
    degrade,
    detect_pair_format,
    general_pairs,
    general_prompts,
    hh_row,
    load_pairs,
    pairs_row,
    repeated,
    sentences,
    shuffled,
    split_hh,
    split_pairs,
    truncated,
    ultrafeedback_row,
)
from r1kit.models import ModelError, check_model, load_tokenizer
from r1kit.rewards import build_reward
from r1kit.rewards.guard import guarded
from r1kit.rewards.reward_model import resolve_reward_models
from r1kit.stages import dpo, reward_model, rloo
from r1kit.stages import evaluate as evaluate_module
from r1kit.stages.common import StageInputs, setup
from r1kit.stages.evaluate import Generations, evaluate, judge_folders, perplexity, reference_texts, rouge_l, win_rate
from r1kit.stages.pairs import math_pairs, stage_pairs
from r1kit.stages.traces import KEPT, TraceJudge, usable_general_answers

USER = [{"role": "user", "content": "What is 2 + 2?"}]


def config_for(tmp_path: Path, *overrides: str):
    return resolve_config(profile="test", environ={}, overrides=["--out", str(tmp_path / "run"), *overrides]).config


def stage_setup(tmp_path: Path, kind: str, *overrides: str):
    ctx, base, splits = setup(config_for(tmp_path, *overrides), "test")
    return ctx.for_stage(ctx.config, kind, kind), StageInputs(model=base, base=base, splits=splits)


def moved(base: Path, after: Path) -> list[str]:
    """Weights of `after` that differ from the same-named weights of `base` (compared in `after`'s dtype)."""
    before, now = load_file(str(base / "model.safetensors")), load_file(str(after / "model.safetensors"))
    return [k for k in before if k in now and not torch.equal(before[k].to(now[k].dtype), now[k])]


# ------------------------------------------------------------------------------------------------------ adapters


def test_pairs_rows_as_text_and_as_messages() -> None:
    assert pairs_row({"prompt": "What is 2 + 2?", "chosen": " 4 ", "rejected": "5"}) == {
        "prompt": USER,
        "chosen": "4",
        "rejected": "5",
    }
    conversational = {
        "prompt": [{"role": "system", "content": "Be brief."}, *USER],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "22"}],
    }
    assert pairs_row(conversational) == {
        "prompt": conversational["prompt"],
        "chosen": "4",
        "rejected": "22",
    }
    # TRL's implicit-prompt form: whole conversations that share their beginning
    implicit = {
        "chosen": [*USER, {"role": "assistant", "content": "4"}],
        "rejected": [*USER, {"role": "assistant", "content": "5"}],
    }
    assert pairs_row(implicit) == {"prompt": USER, "chosen": "4", "rejected": "5"}


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"prompt": "q", "rejected": "5"}, "chosen", "is missing"),
        ({"prompt": "  ", "chosen": "4", "rejected": "5"}, "prompt", "non-empty text"),
        ({"prompt": "q", "chosen": "4", "rejected": "   "}, "rejected", "empty reply"),
        ({"prompt": "q", "chosen": "4", "rejected": "4"}, "rejected", "same reply"),
        ({"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "4", "rejected": "5"}, "prompt", "user"),
        ({"prompt": [{"content": "hi"}], "chosen": "4", "rejected": "5"}, "prompt", "role"),
        ({"prompt": "q", "chosen": [{"role": "user", "content": "4"}], "rejected": "5"}, "chosen", "assistant"),
        ({"prompt": "q", "chosen": ["4"], "rejected": "5"}, "chosen", "message 0"),
        (
            {
                "chosen": [*USER, {"role": "assistant", "content": "4"}],
                "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "5"}],
            },
            "rejected",
            "same conversation",
        ),
        # was: "must be text or a non-empty list", of a reply that is text
        ({"chosen": [*USER, {"role": "assistant", "content": "4"}], "rejected": "5"}, "rejected", "text while chosen"),
    ],
)
def test_a_bad_pairs_row_names_its_field(row: dict, field: str, problem: str) -> None:
    with pytest.raises(BadRow, match=problem) as raised:
        pairs_row(row)
    assert raised.value.field == field


def test_ultrafeedback_rows() -> None:
    row = {
        "prompt": "What is 2 + 2?",
        "chosen": [*USER, {"role": "assistant", "content": "It is 4."}],
        "rejected": [*USER, {"role": "assistant", "content": "Maybe 5."}],
        "score_chosen": 9.0,
        "score_rejected": 2.0,
    }
    assert ultrafeedback_row(row) == {"prompt": USER, "chosen": "It is 4.", "rejected": "Maybe 5."}
    other = [{"role": "user", "content": "Something else"}, {"role": "assistant", "content": "Maybe 5."}]
    with pytest.raises(BadRow, match="same conversation"):  # was a pair of answers to two questions
        ultrafeedback_row(row | {"rejected": other})
    # chosen as its reply alone answers the prompt: a rejected reply to another question was taken as its pair
    alone = {"chosen": [{"role": "assistant", "content": "It is 4."}]}
    with pytest.raises(BadRow, match="does not answer the prompt") as raised:
        ultrafeedback_row(row | alone | {"rejected": other})
    assert raised.value.field == "rejected"  # the side whose conversation differs
    assert ultrafeedback_row(row | alone)["rejected"] == "Maybe 5."
    assert ultrafeedback_row(row | alone | {"rejected": other[1:]})["rejected"] == "Maybe 5."
    # and so does rejected as its reply alone (it was refused as answering another conversation), not another one
    assert ultrafeedback_row(row | {"rejected": other[1:]}) == {
        "prompt": USER,
        "chosen": "It is 4.",
        "rejected": "Maybe 5.",
    }
    with pytest.raises(BadRow, match="does not answer the prompt") as raised:
        ultrafeedback_row(row | {"chosen": [*other[:1], {"role": "assistant", "content": "4."}], "rejected": other[1:]})
    assert raised.value.field == "chosen"
    # the prompt as read (stripped) is its conversation's user message as written: a newline after both was refused
    spaced = {
        "prompt": "What is 2 + 2?\n",
        "chosen": [{"role": "user", "content": "What is 2 + 2?\n"}, row["chosen"][1]],
    }
    assert ultrafeedback_row(row | spaced | {"rejected": other[1:]})["chosen"] == "It is 4."
    with pytest.raises(BadRow) as raised:
        ultrafeedback_row(row | {"rejected": "Maybe 5."})
    assert raised.value.field == "rejected"
    with pytest.raises(BadRow) as raised:
        ultrafeedback_row(row | {"prompt": None})
    assert raised.value.field == "prompt"


HH_PROMPT = "\n\nHuman: Hi, can you help me?\n\nAssistant: Of course.\n\nHuman: What is 2 + 2?"


def test_hh_dialogues_split_into_the_shared_prompt_and_the_final_replies() -> None:
    pair = hh_row({"chosen": HH_PROMPT + "\n\nAssistant: It is 4.", "rejected": HH_PROMPT + "\n\nAssistant: Go away."})
    assert pair == {
        "prompt": [
            {"role": "user", "content": "Hi, can you help me?"},
            {"role": "assistant", "content": "Of course."},
            {"role": "user", "content": "What is 2 + 2?"},
        ],
        "chosen": "It is 4.",
        "rejected": "Go away.",
    }
    # Without the leading blank lines it reads the same
    assert split_hh("Human: q\n\nAssistant: a", "Human: q\n\nAssistant: b")["prompt"] == [
        {"role": "user", "content": "q"}
    ]


@pytest.mark.parametrize(
    ("chosen", "rejected", "field", "problem"),
    [
        (HH_PROMPT + "\n\nAssistant:", HH_PROMPT + "\n\nAssistant: no", "chosen", "empty Assistant reply"),
        (HH_PROMPT + "\n\nAssistant: 4", "\n\nHuman: other\n\nAssistant: 5", "rejected", "share"),
        (HH_PROMPT, HH_PROMPT + "\n\nAssistant: 5", "chosen", "must end with an Assistant reply"),
        ("just some text", HH_PROMPT + "\n\nAssistant: 5", "chosen", "dialogue"),
    ],
)
def test_a_bad_hh_row_names_its_field(chosen: str, rejected: str, field: str, problem: str) -> None:
    with pytest.raises(BadRow, match=problem) as raised:
        hh_row({"chosen": chosen, "rejected": rejected})
    assert raised.value.field == field


def test_the_pair_format_is_detected_from_the_columns() -> None:
    assert detect_pair_format(["chosen", "rejected"], {"chosen": HH_PROMPT}) == "hh"
    assert detect_pair_format(["prompt", "chosen", "rejected"], {"prompt": "q", "chosen": "a"}) == "pairs"
    messages = [*USER, {"role": "assistant", "content": "4"}]
    assert detect_pair_format(["prompt", "chosen", "rejected"], {"prompt": "q", "chosen": messages}) == "ultrafeedback"
    assert detect_pair_format(["chosen", "rejected"], {"chosen": messages}) == "pairs"
    with pytest.raises(ValueError, match="chosen and rejected"):
        detect_pair_format(["question", "answer"], {})
    # Intel/orca_dpo_pairs' columns: read as Anthropic-HH dialogues, a bad row each (no setting named the prompt)
    orca = {"system": "", "question": "What is 2 + 2?", "chosen": "4", "rejected": "5"}
    assert detect_pair_format(list(orca), orca) == "pairs"
    assert pairs_row(orca) == {
        "prompt": [{"role": "user", "content": "What is 2 + 2?"}],
        "chosen": "4",
        "rejected": "5",
    }
    alpaca = {
        "instruction": "Translate to French.",
        "input": "Good morning.",
        "chosen": "Bonjour.",
        "rejected": "Salut.",
    }
    assert pairs_row(alpaca)["prompt"] == [{"role": "user", "content": "Translate to French.\n\nGood morning."}]


# ------------------------------------------------------------------------------------------------------- loading


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


GOOD_ROWS = [{"prompt": f"What is {i} + {i}?", "chosen": str(2 * i), "rejected": str(2 * i + 1)} for i in range(20)]


def test_pairs_load_from_a_local_file_with_a_held_out_split_by_prompt(tmp_path: Path) -> None:
    cfg = config_for(tmp_path, "--preferences.dataset", str(write_jsonl(tmp_path / "p.jsonl", GOOD_ROWS)))
    splits = load_pairs(cfg.preferences.model_copy(update={"max_held_out": 100, "max_pairs": None}))
    assert len(splits.train) + len(splits.test) == 20 and splits.test and "pairs" in splits.source
    train_prompts = {json.dumps(p["prompt"]) for p in splits.train}
    assert not train_prompts & {json.dumps(p["prompt"]) for p in splits.test}
    # parquet loads the same way, and a test_split file is the held-out set as it is
    parquet = tmp_path / "p.parquet"
    Dataset.from_list(GOOD_ROWS).to_parquet(str(parquet))
    held = write_jsonl(tmp_path / "held.jsonl", GOOD_ROWS[:3])
    splits = load_pairs(cfg.preferences.model_copy(update={"dataset": str(parquet), "test_split": str(held)}))
    assert len(splits.test) == 3 and len(splits.train) == 16  # test profile: max_pairs 16
    # a held-out file in another format is read in its own (it was read in the training file's: every row bad)
    dialogue = "\n\nHuman: What is 9 + 9?\n\nAssistant: "
    hh = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": dialogue + "18", "rejected": dialogue + "19"}] * 2)
    splits = load_pairs(cfg.preferences.model_copy(update={"test_split": str(hh)}))
    assert [pair["chosen"] for pair in splits.test] == ["18", "18"]
    # an HH file whose first row is bad (no chosen dialogue) is still told HH (it was `pairs`: every row refused)
    asked = [f"\n\nHuman: What is {i} + {i}?\n\nAssistant: " for i in range(10)]
    bad_first = [{"chosen": None, "rejected": asked[0] + "1"}] + [
        {"chosen": q + "2", "rejected": q + "3"} for q in asked
    ]
    skip = cfg.preferences.model_copy(update={"dataset": str(write_jsonl(tmp_path / "hh_bad.jsonl", bad_first))})
    assert load_pairs(skip, "skip").skipped_rows == 1
    # every row bad under skip: the error says why (it said only "set preferences.format", right as it was)
    same = [{"prompt": "2+2?", "chosen": "4", "rejected": "4"}] * 3
    unusable = cfg.preferences.model_copy(update={"dataset": str(write_jsonl(tmp_path / "same.jsonl", same))})
    with pytest.raises(DatasetError, match=r"all 3 rows .* \(line 1: field 'rejected' is the same reply as chosen"):
        load_pairs(unusable, "skip")


def test_pairs_whose_messages_a_table_printed_as_text_are_refused(tmp_path: Path) -> None:
    """pandas' to_csv of UltraFeedback-style pairs writes each message list as its printed text, which was trained on
    as the reply: brackets, roles and the prompt's words included."""
    table = tmp_path / "pairs.csv"
    pd.DataFrame(
        {
            "prompt": ["2+2?"] * 3,
            "chosen": [[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]] * 3,
            "rejected": [[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]] * 3,
        }
    ).to_csv(table, index=False)
    cfg = config_for(tmp_path, "--preferences.dataset", str(table))
    with pytest.raises(DatasetError, match=r"line 2: field 'chosen' holds chat messages printed as text.*to_json"):
        load_pairs(cfg.preferences)


def test_pairs_under_other_column_names_are_read_with_preferences_columns(tmp_path: Path) -> None:
    """A file of `instruction`/`good`/`bad` columns (and a held-out file of the same) had to be rewritten by hand:
    only the problem data had a `columns` renaming."""
    rows = [{"instruction": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in GOOD_ROWS]
    data, held = write_jsonl(tmp_path / "p.jsonl", rows[3:]), write_jsonl(tmp_path / "held.jsonl", rows[:3])
    renaming = '{"instruction": "prompt", "good": "chosen", "bad": "rejected"}'
    cfg = config_for(tmp_path, "--preferences.dataset", str(data), "--preferences.columns", renaming)
    splits = load_pairs(cfg.preferences.model_copy(update={"test_split": str(held)}))
    assert len(splits.test) == 3 and splits.test[0] == {
        "prompt": [USER[0] | {"content": "What is 0 + 0?"}],
        "chosen": "0",
        "rejected": "1",
    }
    assert len(splits.train) == 16 and "pairs" in splits.source
    with pytest.raises(
        DatasetError, match=r"preferences\.columns renames instruction, good, bad, which the data does not have"
    ):
        load_pairs(cfg.preferences.model_copy(update={"dataset": str(write_jsonl(tmp_path / "g.jsonl", GOOD_ROWS))}))
    with pytest.raises(DatasetError, match=r"renamed with preferences\.columns"):
        load_pairs(cfg.preferences.model_copy(update={"columns": {}}))
    with pytest.raises(ConfigError, match="renames two columns to one name"):
        config_for(
            tmp_path, "--preferences.dataset", str(data), "--preferences.columns", '{"good": "chosen", "bad": "chosen"}'
        )
    with pytest.raises(ConfigError, match=r"preferences\.columns"):  # the built-in pairs have no columns to rename
        resolve_config(recipe="rlhf", profile="test", environ={}, overrides=["--preferences.columns", renaming])


def test_numeric_replies_are_text_and_a_skipped_pair_is_named(tmp_path: Path, caplog) -> None:
    """A file whose replies are all numbers (`"chosen": 0`) was refused as no text ("must be text"), where the same
    numbers beside one text reply loaded; and a pair skipped under on_bad_row skip was counted, never named."""
    rows = [{"prompt": f"{i} + {i}?", "chosen": 2 * i, "rejected": 2 * i + 1} for i in range(10)]
    rows += [{"prompt": "Same?", "chosen": 7, "rejected": 7}, {"prompt": "Blank?", "chosen": 1, "rejected": math.nan}]
    cfg = config_for(tmp_path, "--preferences.dataset", str(write_jsonl(tmp_path / "numbers.jsonl", rows)))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        splits = load_pairs(cfg.preferences.model_copy(update={"max_held_out": 2, "max_pairs": None}), "skip")
    assert splits.skipped_rows == 2 and {pair["chosen"] for pair in [*splits.train, *splits.test]} >= {"0", "18"}
    assert "line 11: field 'rejected' is the same reply as chosen" in caplog.text


def test_pairs_files_sorted_by_kind_are_sampled_and_a_held_out_file_is_checked(tmp_path: Path, caplog) -> None:
    """max_pairs took the first rows: a file of 30 "harmless" pairs then 30 "helpful" ones trained on harmless alone.
    A split name as test_split with a local file was looked up on the hub, and held-out prompts that were also
    trained on gave a pairwise accuracy without a word (then with a word: they are left out of training now)."""
    rows = [
        {"prompt": f"{kind} {i}?", "chosen": "Good.", "rejected": "Bad."}
        for kind in ("harm", "help")
        for i in range(30)
    ]
    cfg = config_for(tmp_path, "--preferences.dataset", str(write_jsonl(tmp_path / "sorted.jsonl", rows)))
    held_out = write_jsonl(tmp_path / "held_out.jsonl", rows[:10])
    settings = cfg.preferences.model_copy(update={"max_pairs": 20, "test_split": str(held_out)})
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        splits = load_pairs(settings)
    kinds = {pair["prompt"][0]["content"].split()[0] for pair in splits.train}
    assert len(splits.train) == 20 and kinds == {"harm", "help"}
    assert "10 training pairs with a prompt of the held-out file" in caplog.text
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        splits = load_pairs(settings.model_copy(update={"max_pairs": None}))
    assert len(splits.train) == 50 and not {p["prompt"][0]["content"] for p in splits.train} & {
        f"harm {i}?" for i in range(10)
    }
    with pytest.raises(DatasetError, match="every training pair has a prompt of the held-out file"):
        load_pairs(settings.model_copy(update={"test_split": str(tmp_path / "sorted.jsonl")}))
    with pytest.raises(DatasetError, match=r"preferences.test_split 'validation': .* split names are for hub datasets"):
        load_pairs(settings.model_copy(update={"test_split": "validation"}))


def test_hh_dialogue_prompts_of_prompt_chosen_rejected_rows_are_turns() -> None:
    """Dahoas/rm-static rows: the whole "Human: … Assistant:" dialogue, markers and all, was one user message."""
    row = {"prompt": HH_PROMPT + "\n\nAssistant:", "chosen": " It is 4.", "rejected": " Go away."}
    whole = {"chosen": HH_PROMPT + "\n\nAssistant: It is 4.", "rejected": HH_PROMPT + "\n\nAssistant: Go away."}
    assert pairs_row(row) == hh_row(whole)  # the pair the same dialogues give as Anthropic-HH rows
    with pytest.raises(BadRow, match="must end with a Human turn"):
        pairs_row({**row, "prompt": "Human: Hi\n\nAssistant: Hello there."})


def test_pairs_that_share_one_prompt_say_nothing_is_held_out(tmp_path: Path, caplog) -> None:
    rows = [{"prompt": "Name a colour.", "chosen": f"Blue {i}.", "rejected": f"Car {i}."} for i in range(6)]
    cfg = config_for(tmp_path, "--preferences.dataset", str(write_jsonl(tmp_path / "one.jsonl", rows)))
    splits = load_pairs(cfg.preferences)
    assert len(splits.train) == 6 and not splits.test
    assert "none is held out and pairwise accuracy is not measured" in caplog.text  # was: null, without a word


def test_pairs_whose_replies_hold_turns_the_pair_leaves_out_are_counted(tmp_path: Path, caplog) -> None:
    """A chosen conversation beside the row's own prompt was cut to its final reply without a word."""
    say = lambda role, text: {"role": role, "content": text}  # noqa: E731
    rows = [{"prompt": f"Name a colour ({i}).", "chosen": f"Blue {i}.", "rejected": f"Car {i}."} for i in range(6)]
    rows[1]["chosen"] = [say("user", "Name a colour (1)."), say("assistant", "Blue 1.")]  # the prompt again: kept
    rows[2]["chosen"] = [say("user", "Something else."), say("assistant", "Blue 2.")]  # a turn left out
    cfg = config_for(tmp_path, "--preferences.dataset", str(write_jsonl(tmp_path / "odd.jsonl", rows)))
    first = load_pairs(cfg.preferences)
    assert "odd.jsonl: 1 of 6 pairs hold earlier turns in a reply, other than the prompt" in caplog.text
    # read once: a recipe checks the file up front, then its reward model and DPO stages read it (the warning came
    # once for each), unless the file changed
    assert load_pairs(cfg.preferences) is first and caplog.text.count("hold earlier turns") == 1
    write_jsonl(tmp_path / "odd.jsonl", rows[:5])
    assert len(load_pairs(cfg.preferences).train) + len(load_pairs(cfg.preferences).test) == 5
    assert caplog.text.count("hold earlier turns") == 2


def test_a_bad_row_in_a_file_names_the_file_row_and_field(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS[:3], {"prompt": "q", "chosen": "a"}, *GOOD_ROWS[3:6]]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    cfg = config_for(tmp_path, "--preferences.dataset", str(path))
    with pytest.raises(DatasetError, match=r"bad\.jsonl: line 4: field 'rejected' is missing") as raised:
        load_pairs(cfg.preferences, cfg.dataset.on_bad_row)
    assert "on_bad_row=skip" in str(raised.value)
    splits = load_pairs(cfg.preferences, "skip")
    assert splits.skipped_rows == 1 and len(splits.train) + len(splits.test) == 6


def test_a_file_that_is_not_preference_data_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "solution": "1"}])
    cfg = config_for(tmp_path, "--preferences.dataset", str(path))
    with pytest.raises(DatasetError, match=r"qa\.jsonl: cannot tell the preference format"):
        load_pairs(cfg.preferences)


def test_split_pairs_keeps_every_prompt_on_one_side() -> None:
    pairs = [
        {"prompt": [{"role": "user", "content": str(i % 7)}], "chosen": "a", "rejected": str(i)} for i in range(30)
    ]
    train, test = split_pairs(pairs, 0.3, seed=1)
    assert len(train) + len(test) == 30 and test and train
    assert not {p["prompt"][0]["content"] for p in train} & {p["prompt"][0]["content"] for p in test}
    assert split_pairs(pairs[:1], 0.5, seed=1) == (pairs[:1], [])

    # held_out is a share of the pairs: one prompt with 8 of 10 pairs went to the held-out side at 0.1 (a tenth of
    # the 3 prompts rounded up to one), leaving training 2 pairs
    lopsided = [{"prompt": [{"role": "user", "content": "many"}], "chosen": "a", "rejected": str(i)} for i in range(8)]
    lopsided += [{"prompt": [{"role": "user", "content": q}], "chosen": "a", "rejected": "b"} for q in ("x", "y")]
    for seed in range(10):
        train, test = split_pairs(lopsided, 0.1, seed=seed)
        assert (len(train), len(test)) == (9, 1), seed
    train, test = split_pairs(lopsided[:8] + lopsided[:8], 0.1, seed=0)  # one prompt alone: nothing to hold out
    assert (len(train), len(test)) == (16, 0)


# ------------------------------------------------------------------------------------------------ built-in pairs


CORRECT = "<think>\n2 + 2 = 4, so the total is 4.\n</think>\n<answer>4</answer>"
WRONG = "<think>\n2 + 2 = 5, so the total is 5.\n</think>\n<answer>5</answer>"
MALFORMED = "the answer is 4 I think"


def test_built_in_math_pairs_prefer_verified_correct_traces(tmp_path: Path) -> None:
    judge = TraceJudge(config_for(tmp_path))
    samples = [[CORRECT, WRONG, MALFORMED, WRONG], [WRONG, MALFORMED], [MALFORMED]]
    questions, golds = ["What is 2 + 2?", "What is 2 + 2?", "What is 2 + 2?"], ["4", "4", "4"]
    reasons = [
        judge(group, [q] * len(group), [g] * len(group)) for group, q, g in zip(samples, questions, golds, strict=True)
    ]
    assert reasons[0] == [KEPT, "wrong", "malformed", "wrong"]
    prompts = [USER] * 3
    pairs = math_pairs(prompts, samples, reasons, [None, None, None], pairs_per_prompt=3)
    # problem 1: the kept trace against each distinct rejected one; problems 2 and 3: nothing verified correct
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(CORRECT, WRONG), (CORRECT, MALFORMED)]
    chosen_verdicts = judge([p["chosen"] for p in pairs], [questions[0]] * 2, ["4"] * 2)
    assert chosen_verdicts == [KEPT, KEPT]
    assert KEPT not in judge([p["rejected"] for p in pairs], [questions[0]] * 2, ["4"] * 2)
    # a problem without a verified sample falls back to its (verified) worked solution
    with_reference = math_pairs(prompts, samples, reasons, [None, CORRECT, None], pairs_per_prompt=1)
    assert [(p["chosen"], p["rejected"]) for p in with_reference] == [(CORRECT, WRONG), (CORRECT, WRONG)]


def test_degradations_make_a_worse_copy() -> None:
    answer = "Paris is the capital of France. It lies on the Seine. It is known for the Eiffel Tower."
    assert truncated(answer) == "Paris is the capital of France."  # the first third of the words
    mixed = shuffled(answer, random.Random(0))
    assert mixed != answer and sorted(sentences(mixed)) == sorted(sentences(answer))
    assert repeated(answer) == " ".join(["Paris is the capital of France."] * 4)
    assert truncated("two words") is None and shuffled("One sentence only.", random.Random(0)) is None
    hows = {degrade(answer, random.Random(seed))[0] for seed in range(30)}
    assert hows == {"truncated", "shuffled", "repeated"}
    pairs = general_pairs([USER, USER], [answer, "   "], seed=0)
    assert len(pairs) == 1 and pairs[0]["chosen"] == answer and pairs[0]["rejected"] != answer


def test_a_cut_or_looping_general_answer_is_no_preferred_reply() -> None:
    """The built-in pairs preferred a reply cut at general_max_new_tokens to its own first third, and a looping one to
    a shorter loop: the reward model and DPO learnt to prefer cut, looping text. A cut answer is kept up to its last
    full sentence (SFT 2 drops it: it would teach a model to stop there)."""
    answers = Generations(
        texts=[
            ["Keep a regular schedule. Avoid screens late. Keep the room dark and"],
            ["Sleep is good. Sleep is good. Sleep is good. Sleep is good. Sleep is"],
            ["Here are three tips for better"],
            ["Paris is the capital of France."],
        ],
        lengths=[[96], [96], [96], [7]],
        truncated=[[True], [True], [True], [False]],
        processes=[0] * 4,
    )
    limit = "preferences.sampling.general_max_new_tokens"
    usable, dropped = usable_general_answers(answers, 0.2, limit, whole_sentences=True)
    assert usable == ["Keep a regular schedule. Avoid screens late.", None, None, "Paris is the capital of France."]
    assert dropped == {"looping": 1, f"cut at {limit} before a sentence ended": 1}
    # an unclosed thinking block is its own reason, cut or not; an empty answer is empty
    tagged = Generations([["<think>Sleep matters. I should"], [""]], [[96], [0]], [[True], [True]], [0, 0])
    assert usable_general_answers(tagged, 0.2, limit, whole_sentences=True)[1] == {"reasoning tags": 1, "empty": 1}
    usable, dropped = usable_general_answers(answers, 0.2, "sft2.general_max_new_tokens")
    assert usable == [None, None, None, "Paris is the capital of France."]
    assert dropped == {"cut at sft2.general_max_new_tokens": 2, "looping": 1}


def test_a_degraded_multi_line_reply_keeps_its_line_breaks() -> None:
    """Every rejected copy was joined on one line: "has a line break" alone told it from its chosen reply."""
    tips = "Here are three tips:\n1. Sleep early.\n2. Avoid screens.\n3. Keep it dark."
    worse = {how: text for how, text in (degrade(tips, random.Random(seed)) for seed in range(30))}
    assert set(worse) == {"truncated", "shuffled", "repeated"}
    assert "\n" in worse["shuffled"] and "\n" in worse["repeated"], worse  # (the first third is on line 1 here)
    assert tips.startswith(worse["truncated"])  # cut where the words end, as written
    assert sorted(worse["shuffled"].splitlines()) == sorted(tips.splitlines())  # whole numbered lines move


def test_the_shipped_general_prompts_are_read() -> None:
    prompts = general_prompts()
    assert len(prompts) >= 8 and all(p and not p.startswith("#") for p in prompts)


# ----------------------------------------------------------------------------------------------------- stages


def test_reward_model_trains_and_reports_held_out_pairwise_accuracy(tmp_path: Path, monkeypatch) -> None:
    ctx, inputs = stage_setup(tmp_path, "reward_model")
    output = reward_model.run(ctx, inputs)

    assert output.evaluate is False  # not a policy
    assert 0.0 <= output.metrics["pairwise_accuracy"] <= 1.0
    assert output.metrics["train_pairs"] > 0 and output.metrics["held_out_pairs"] > 0
    assert moved(Path(inputs.model), output.model), "training changed no weight of the backbone"
    loaded = AutoModelForSequenceClassification.from_pretrained(output.model)
    assert loaded.config.num_labels == 1 and loaded.config.pad_token_id is not None
    records = [r for r in ctx.run.read("metrics.jsonl") if r["stage"] == "reward_model" and r["kind"] == "step"]
    assert [r["step"] for r in records] == [1, 2] and all("loss" in r and "accuracy" in r for r in records)

    # the built-in pairs are cached in the stage folder and reused
    lines = (ctx.dir / "pairs.jsonl").read_text().splitlines()
    assert {json.loads(line)["split"] for line in lines} == {"train", "test"}
    monkeypatch.setattr("r1kit.stages.pairs.builtin_pairs", lambda *a, **k: pytest.fail("not reused"))
    again = stage_pairs(ctx, inputs.model, inputs.splits.train, load_tokenizer(ctx.config.model, inputs.model))
    assert len(again.train) == output.metrics["train_pairs"]
    # pairs judged under other verification settings, or asked through another template, are not these
    for changed in ({"rewards": {"verification": {"timeout_seconds": 3.0}}}, {"model": {"chat_template": "chatml"}}):
        config = ctx.config.model_validate(
            {key: value | changed[key] if key in changed else value for key, value in ctx.config.model_dump().items()}
        )
        with pytest.raises(pytest.fail.Exception, match="not reused"):
            stage_pairs(ctx.for_stage(config, "reward_model", "reward_model"), inputs.model, inputs.splits.train,
                        load_tokenizer(config.model, inputs.model))  # fmt: skip
    # nor are pairs of other problems under the same settings (a recipe stage's `data_from` rows): DPO from the same
    # model in the same run took the reward model's pairs, none of them its own problems
    with pytest.raises(pytest.fail.Exception, match="not reused"):
        stage_pairs(ctx.for_stage(ctx.config, "dpo", "dpo"), inputs.model, inputs.splits.train.select(range(10)),
                    load_tokenizer(ctx.config.model, inputs.model))  # fmt: skip
    # the same questions with other worked solutions or replies are other problems too
    other = inputs.splits.train.map(lambda row: {"reasoning": f"{row['reasoning']}\nChecked."})
    with pytest.raises(pytest.fail.Exception, match="not reused"):
        stage_pairs(
            ctx.for_stage(ctx.config, "dpo", "dpo"), inputs.model, other, load_tokenizer(ctx.config.model, inputs.model)
        )

    # the trained model is a reward for RL: deterministic scores, the same after pickling
    reward = guarded("reward_model", build_reward("reward_model", path=str(output.model)))
    prompts = [USER, USER]
    first = reward([CORRECT, MALFORMED], prompts=prompts)
    assert first == reward([CORRECT, MALFORMED], prompts=prompts) and all(math.isfinite(s) for s in first)
    assert pickle.loads(pickle.dumps(reward))([CORRECT, MALFORMED], prompts=prompts) == first
    # its stage folder and its run folder stand for it, as they do for model.name (both were "not a model folder")
    for folder in (ctx.dir, ctx.run.root):
        assert build_reward("reward_model", path=str(folder)).path == str(output.model)

    # it scores replies and writes none: eval, chat and a stage starting from it refuse it, naming where it belongs
    for training in (False, True):
        with pytest.raises(ModelError, match=r"is a reward model \(\w+ForSequenceClassification: it scores replies"):
            check_model(ctx.config.model, str(output.model), training=training)


def test_dpos_held_out_accuracy_ranks_per_token_where_its_loss_does(tmp_path: Path) -> None:
    """ipo and sigmoid_norm train on the replies' log-ratios per token; the held-out accuracy ranked their sums, which
    put a long rejected reply (a sum of many small ratios) apart from what the model learned."""
    from r1kit.models import load_model
    from r1kit.stages.evaluate import completion_logprobs

    ctx, inputs = stage_setup(tmp_path, "dpo")
    policy = AutoModelForCausalLM.from_pretrained(inputs.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in policy.parameters():
            weight.add_(0.05 * torch.randn(weight.shape, generator=generator))
    policy.save_pretrained(tmp_path / "policy")
    AutoTokenizer.from_pretrained(inputs.model).save_pretrained(tmp_path / "policy")
    replies = [("4", "the answer is four, I think, after adding two and two"), ("5", "4"), (CORRECT, MALFORMED)]
    pairs = [{"prompt": USER, "chosen": chosen, "rejected": rejected} for chosen, rejected in replies]

    def scored(model: str) -> list[tuple[float, int]]:
        loaded = load_model(ctx.config.model, model, ctx.hardware, for_training=False).eval()
        tokenizer = load_tokenizer(ctx.config.model, model)
        return completion_logprobs(loaded, tokenizer, [USER] * 6, [c for c, _ in replies] + [r for _, r in replies])

    trained, reference = scored(str(tmp_path / "policy")), scored(inputs.model)
    figures = {}
    for per_token in (False, True):
        ratio = [(p - r) / (n if per_token else 1) for (p, n), (r, _) in zip(trained, reference, strict=True)]
        margins = [0.1 * (ratio[i] - ratio[i + 3]) for i in range(3)]
        expected = (sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins) / 3, sum(margins) / 3)
        got = dpo.implicit_reward_accuracy(ctx, str(tmp_path / "policy"), inputs.model, pairs, 0.1, per_token)
        assert got == pytest.approx(expected, rel=1e-4), per_token
        figures[per_token] = got
    assert figures[False] != pytest.approx(figures[True])  # the two rankings' figures differ on these pairs
    assert dpo.PER_TOKEN_LOSSES == ("ipo", "sigmoid_norm")


def test_dpo_trains_on_preference_pairs(tmp_path: Path) -> None:
    ctx, inputs = stage_setup(tmp_path, "dpo")
    output = dpo.run(ctx, inputs)
    assert output.evaluate and moved(Path(inputs.model), output.model)
    assert 0.0 <= output.metrics["preference_accuracy"] <= 1.0
    records = [r for r in ctx.run.read("metrics.jsonl") if r["stage"] == "dpo" and r["kind"] == "step"]
    assert [r["step"] for r in records] == [1, 2]
    assert records[-1]["perf/tokens_per_second"] > 0  # from TRL's num_tokens: it read 0 tok/s, MFU 0.0%
    assert AutoModelForCausalLM.from_pretrained(output.model).num_parameters() > 0


@pytest.mark.parametrize("stage", [dpo, reward_model], ids=["dpo", "reward_model"])
def test_lora_dropout_is_kept_where_it_is_asked_for(tmp_path: Path, monkeypatch, stage) -> None:
    """TRL's DPO and reward trainers turn every dropout off by default: model.lora.dropout 0.3 trained at 0."""
    trainer_class = stage.DPOTrainer if stage is dpo else stage.RewardTrainer
    seen: list[set[float]] = []
    train = trainer_class.train

    def recording_train(self, *args, **kwargs):
        seen.append({m.p for name, m in self.model.named_modules() if "lora_dropout" in name and hasattr(m, "p")})
        checkpointing.append(self.args.gradient_checkpointing)
        return train(self, *args, **kwargs)

    checkpointing: list[bool] = []
    monkeypatch.setattr(trainer_class, "train", recording_train)
    ctx, inputs = stage_setup(tmp_path, stage.__name__.rsplit(".", 1)[-1], "--model.lora.dropout", "0.3")
    stage.run(ctx, inputs)
    assert seen == [{0.3}]
    # and activations are recomputed by default: a batch of long pairs held ~11 GB of them for SmolLM2-135M
    assert checkpointing == [True]


def test_a_model_that_cannot_recompute_activations_trains_without(caplog: pytest.LogCaptureFixture) -> None:
    """transformers refuses gradient checkpointing, at the trainer's start, for a model that cannot do it (some
    trust_remote_code ones), which DPO and the reward model now ask for by default."""
    from types import SimpleNamespace

    from r1kit.stages.common import recomputes_activations

    able, unable = (
        SimpleNamespace(supports_gradient_checkpointing=True),
        SimpleNamespace(supports_gradient_checkpointing=False),
    )
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        assert recomputes_activations(True, able, "dpo") and not recomputes_activations(False, able, "dpo")
        assert not caplog.text
        assert not recomputes_activations(True, unable, "dpo")
    assert "dpo: SimpleNamespace cannot recompute activations; it trains without" in caplog.text


def test_dpo_trains_on_a_pairs_file_with_a_full_fine_tune(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", GOOD_ROWS)
    ctx, inputs = stage_setup(
        tmp_path, "dpo", "--preferences.dataset", str(path), "--model.lora.enabled", "false", "--dpo.max_steps", "1"
    )
    output = dpo.run(ctx, inputs)
    assert len(moved(Path(inputs.model), output.model)) > 14  # every layer, not only LoRA targets
    assert not (ctx.dir / "pairs.jsonl").exists()  # a configured dataset is read, not cached


def test_a_stage_run_alone_keeps_its_figures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`r1kit dpo` alone: the held-out preference accuracy and the skipped rows go to RUN/dpo/manifest.json."""
    path = write_jsonl(tmp_path / "p.jsonl", [*GOOD_ROWS, {"prompt": "What is 1 + 1?", "chosen": "2"}])  # no rejected
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        dpo.main(
            config_for(
                tmp_path, "--preferences.dataset", str(path), "--dataset.on_bad_row", "skip", "--dpo.max_steps", "1"
            )
        )
    # the header named only the problems it is evaluated on, then their training rows, which a pairs file leaves unused
    assert re.search(rf"\| pairs {re.escape(str(path))} \| scored on [^|]+: \d+ held-out \|", caplog.text)
    assert re.search(r"\| model \S+ \(LoRA r\d+\) \|", caplog.text)  # was: no word that only an adapter trains
    manifest = json.loads((tmp_path / "run" / "dpo" / "manifest.json").read_text())
    figures = manifest["output"]["metrics"]
    assert manifest["status"] == "complete" and manifest["output"]["model"] == "dpo/model"
    assert figures["skipped_rows"] == 1 and 0.0 <= figures["preference_accuracy"] <= 1.0
    assert manifest["inputs"]["data"] == f"preference pairs from {path}"  # the pairs file, not the built-in task


def test_rloo_trains_with_rule_rewards_and_a_reward_model(tmp_path: Path, tiny_model: Path) -> None:
    judge = tiny_reward_model(tmp_path / "rm", tiny_model)
    ctx, inputs = stage_setup(
        tmp_path,
        "rloo",
        "--rewards.functions",
        "[cosine, reward_model]",
        "--rewards.cosine.max_len",
        "64",
        "--rewards.reward_model.path",
        "judge",  # an earlier stage's name, resolved to its model
    )
    inputs.earlier["judge"] = SimpleNamespace(model=judge)
    output = rloo.run(ctx, inputs)
    assert moved(Path(inputs.model), output.model)
    step = [r for r in ctx.run.read("metrics.jsonl") if r["stage"] == "rloo" and r["kind"] == "step"][-1]
    assert step["step"] == 2 and "rewards/reward_model/mean" in step and "rewards/cosine/mean" in step
    assert output.metrics["steps"] == 2  # the run table's figure (it was the prompt count alone, read as steps)


def test_rloo_rollouts_are_not_reshaped_by_the_models_own_generation_settings(
    tmp_path: Path, tiny_model: Path, monkeypatch
) -> None:
    """TRL's RLOO sets some sampling settings; `generate` filled the others from the model's own generation config
    (a shipped no_repeat_ngram_size, min_p), so rollouts were not the samples of softmax(logits / T) the loss uses."""
    from transformers.generation import utils

    shipped = tmp_path / "shipped"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.generation_config.update(no_repeat_ngram_size=2, min_p=0.2, do_sample=True)
    model.save_pretrained(shipped)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(shipped)
    built, processors = [], utils.GenerationMixin._get_logits_processor

    def recorded(self, generation_config, *args, **kwargs):
        made = processors(self, generation_config, *args, **kwargs)
        built.append({type(processor).__name__ for processor in made})
        return made

    monkeypatch.setattr(utils.GenerationMixin, "_get_logits_processor", recorded)
    ctx, inputs = stage_setup(tmp_path, "rloo", "--model.name", str(shipped), "--rloo.max_steps", "1")
    rloo.run(ctx, inputs)
    assert built and all(found <= {"TemperatureLogitsWarper"} for found in built), built


# --------------------------------------------------------------------------------------------- reward-model reward


def tiny_reward_model(dest: Path, tiny_model: Path) -> Path:
    """The tiny model with a random score head, saved as a reward model folder."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def test_a_reward_model_named_by_its_run_folder_is_that_model_everywhere(tmp_path: Path, tiny_model: Path) -> None:
    """A stage-alone `r1kit reward_model --out rm` named as the reward model was fingerprinted as the whole folder
    (`r1kit report rm` redid the GRPO stage scored by it), and as the win rate's judge it was refused ("no finished
    model": a run folder stood for its final policy)."""
    from r1kit.stages.common import files_read

    made = tiny_reward_model(tmp_path / "rm" / "reward_model" / "model", tiny_model)
    (tmp_path / "rm" / "config.yaml").write_text("{}\n")
    (tmp_path / "rm" / "reward_model" / "manifest.json").write_text('{"kind": "reward_model", "status": "complete"}')
    config = config_for(
        tmp_path, "--reward_funcs", "accuracy,reward_model", "--rewards.reward_model.path", str(tmp_path / "rm")
    )
    assert files_read(config, "grpo")["reward_model"] == str(made)
    named = {"win_rate_against": str(tiny_model), "reward_model": str(tmp_path / "rm")}
    judged = config.model_copy(update={"evaluation": config.evaluation.model_copy(update=named)})
    assert judge_folders(judged)["reward_model"] == str(made.resolve())


QUESTION_TEMPLATE = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + ('Question: ' if m['role'] == 'user' else '') + "
    "m['content'] + '<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}"
)


def test_win_rate_reference_completions_are_kept_per_chat_template(tmp_path: Path, tiny_model: Path) -> None:
    """The reference model's completions were keyed by the prompts' messages: an evaluation into the same run under
    another model.chat_template reused the ones made under the first, so the policy and the reference were asked
    differently."""
    from r1kit.prompts import chat_prompt

    prompts = [chat_prompt(f"What is {i} + 2?", None) for i in range(2)]
    kept = tmp_path / "run" / "eval" / "win_rate_reference"
    ctx, _, _ = setup(config_for(tmp_path), "test")
    first = evaluate_module._reference_completions(ctx, str(tiny_model), prompts)
    assert evaluate_module._reference_completions(ctx, str(tiny_model), prompts) == first  # kept, not made again
    assert len(list(kept.iterdir())) == 1
    ctx, _, _ = setup(config_for(tmp_path, "--model.chat_template", QUESTION_TEMPLATE), "test")
    evaluate_module._reference_completions(ctx, str(tiny_model), prompts)
    assert len(list(kept.iterdir())) == 2


def test_the_reward_model_reward_scores_deterministically_and_pickles(tmp_path: Path, tiny_model: Path) -> None:
    path = tiny_reward_model(tmp_path / "rm", tiny_model)
    reward = build_reward("reward_model", path=str(path), batch_size=2)
    completions = [CORRECT, WRONG, MALFORMED, [{"role": "assistant", "content": CORRECT}]]
    scores = reward(completions, prompts=[USER] * 4, solution=["4"] * 4)
    assert len(scores) == 4 and all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert scores[0] == pytest.approx(scores[3])  # text or chat-message completions score the same
    assert len(set(scores[:3])) == 3
    assert reward(completions, prompts=[USER] * 4) == scores  # same batch, same scores
    assert [reward([c], prompts=[USER])[0] for c in completions] == pytest.approx(scores, abs=1e-4)  # padding-free
    copy = pickle.loads(pickle.dumps(reward))
    assert copy == reward and copy.__name__ == "reward_model" and copy(completions, prompts=[USER] * 4) == scores
    with pytest.raises(ModelError, match=r"rewards\.reward_model\.path"):
        build_reward("reward_model")
    with pytest.raises(ModelError, match="neither a model folder nor a hub id"):
        build_reward("reward_model", path="rm")  # a stage name nobody resolved
    # a missing folder, or a run folder instead of its model folder: refused when the rewards are built (before
    # training), not found batch after batch while the run goes on without a reward signal
    for wrong in (tmp_path / "nope", tmp_path):
        with pytest.raises(
            ModelError,
            match=r"rewards.reward_model.path .*: not a model folder \(no config.json or adapter_config.json\)",
        ):
            build_reward("reward_model", path=str(wrong))


def test_a_lora_adapter_folder_is_a_reward_model(tmp_path: Path, tiny_model: Path) -> None:
    """A reward model trained elsewhere with LoRA (task_type SEQ_CLS) and saved as an adapter, without a tokenizer:
    it scores as its merged model does; a causal-LM adapter is refused (it would score with a random head)."""
    from peft import LoraConfig, get_peft_model

    base = tiny_reward_model(tmp_path / "base", tiny_model)
    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForSequenceClassification.from_pretrained(base, num_labels=1),
        LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "adapter")
    merged = tmp_path / "merged"
    model.merge_and_unload().save_pretrained(merged)
    AutoTokenizer.from_pretrained(base).save_pretrained(merged)
    completions = [CORRECT, WRONG, MALFORMED]
    scores = build_reward("reward_model", path=str(tmp_path / "adapter"))(completions, prompts=[USER] * 3)
    assert scores == pytest.approx(
        build_reward("reward_model", path=str(merged))(completions, prompts=[USER] * 3), abs=1e-5
    )
    assert scores != pytest.approx(build_reward("reward_model", path=str(base))(completions, prompts=[USER] * 3))

    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(task_type="CAUSAL_LM", r=4))
    policy.save_pretrained(tmp_path / "policy_adapter")
    with pytest.raises(ModelError, match="a CAUSAL_LM adapter, not a reward model's"):
        build_reward("reward_model", path=str(tmp_path / "policy_adapter"))
    # nor a policy's whole folder: it loaded with a random score head and scored noise
    with pytest.raises(ModelError, match="a LlamaForCausalLM model writes replies, it does not score them"):
        build_reward("reward_model", path=str(tiny_model))


def test_a_reward_model_trains_from_a_policys_lora_adapter_folder(tmp_path: Path, tiny_model: Path) -> None:
    """`--model.name ADAPTER` (model.save_adapter's folder) trained every step, then failed at the final save:
    transformers loaded the adapter unmerged into the classifier and TRL added a second one. It starts from the
    adapter merged into its base, as every other stage does."""
    from peft import LoraConfig, get_peft_model

    from r1kit.config.schema import ModelConfig
    from r1kit.hardware import Hardware
    from r1kit.models import load_model
    from r1kit.stages.reward_model import load_reward_model
    from tests.conftest import REPO, r1kit_cli

    torch.manual_seed(1)
    policy = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj"], init_lora_weights=False),
    )
    policy.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "adapter")  # as model.save_adapter saves it
    cpu = Hardware(device="cpu", precision="fp32", threads=1)
    reward_model = load_reward_model(ModelConfig(), str(tmp_path / "adapter"), cpu, for_training=True)
    merged = load_model(ModelConfig(), str(tmp_path / "adapter"), cpu, for_training=False)
    assert not getattr(reward_model, "_hf_peft_config_loaded", False)
    assert torch.equal(
        reward_model.model.layers[0].self_attn.q_proj.weight, merged.model.layers[0].self_attn.q_proj.weight
    )
    out = tmp_path / "run"
    args = ("reward_model", "--profile", "test", "--model.name", str(tmp_path / "adapter"), "--out", str(out))
    done = r1kit_cli(*args, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "reward_model" / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("stage", ["grpo", "rloo"])
def test_a_full_fine_tunes_kl_reference_is_loaded_at_the_policys_revision(
    stage: str, tmp_path: Path, monkeypatch, tiny_model: Path
) -> None:
    """TRL loads a full fine-tune's KL reference by the policy's name with its own arguments: a hub model given with
    --model.revision was compared with its default branch's weights (GRPO also without trust_remote_code)."""
    import trl.trainer.grpo_trainer
    import trl.trainer.rloo_trainer

    from tests.conftest import REPO, r1kit_cli

    module = {"grpo": trl.trainer.grpo_trainer, "rloo": trl.trainer.rloo_trainer}[stage]
    loaded = []
    real = module.create_model_from_path
    monkeypatch.setattr(module, "create_model_from_path", lambda name, **kw: loaded.append(kw) or real(name, **kw))
    steps = {"grpo": "--training.max_steps", "rloo": "--rloo.max_steps"}[stage]
    args = (stage, "--profile", "test", "--model.lora.enabled", "false", f"--{stage}.beta", "0.05", steps, "1")
    # the hub is out of reach: the repo is put in a hub cache as a download leaves it (a folder or a built-in model
    # has no revision: refused)
    import shutil

    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny"
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = ("--model", "org/tiny", "--model.revision", "main")
    done = r1kit_cli(*args, *model, "--out", str(tmp_path / "run"), cwd=REPO)
    assert loaded and loaded[-1]["revision"] == "main" and loaded[-1]["trust_remote_code"] is False, done.stderr


def test_the_policy_s_revision_goes_to_trl_only_for_a_reference_it_loads() -> None:
    """With LoRA (the reference is the adapter turned off) or beta 0 (none), TRL was given the revision all the same,
    and said on every GRPO run that it "will be ignored"."""
    from r1kit.stages.common import reference_loading

    def passed(*flags: str, beta: float) -> dict:
        config = resolve_config(overrides=["--model.revision", "main", *flags], environ={}).config
        hub_model = SimpleNamespace(config=SimpleNamespace(_name_or_path="org/tiny"))  # loaded by its name
        return reference_loading(SimpleNamespace(config=config), hub_model, beta)

    assert "model_init_kwargs" not in passed(beta=0.04)  # LoRA, r1kit's default
    assert "model_init_kwargs" not in passed("--model.lora.enabled", "false", beta=0.0)
    assert passed("--model.lora.enabled", "false", beta=0.04)["model_init_kwargs"] == {"revision": "main"}


@pytest.mark.parametrize("stage", ["grpo", "rloo"])
def test_a_full_fine_tune_from_an_adapter_folder_has_a_kl_reference(
    stage: str, tmp_path: Path, tiny_model: Path
) -> None:
    """The policy merged from an adapter folder is named by that folder, which TRL loaded as the KL reference:
    "Unrecognized model" (RLOO's default beta 0.05 from any LoRA checkpoint, GRPO's with grpo.beta above 0)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from r1kit.config.schema import ModelConfig
    from r1kit.models import load_tokenizer, save_adapter
    from r1kit.stages import grpo

    torch.manual_seed(0)
    lora = PeftLoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), lora)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)  # an adapter that changes the weights it is merged into
    adapter = tmp_path / "adapter"
    save_adapter(adapted, load_tokenizer(ModelConfig(), str(tiny_model)), adapter, ModelConfig())
    steps = {"grpo": "--training.max_steps", "rloo": "--rloo.max_steps"}[stage]
    flags = ("--model.name", str(adapter), "--model.lora.enabled", "false", f"--{stage}.beta", "0.05", steps, "1")
    ctx, inputs = stage_setup(tmp_path, stage, *flags)
    inputs.model = str(adapter)
    output = {"grpo": grpo, "rloo": rloo}[stage].run(ctx, inputs)
    reference = ctx.dir / "reference"
    assert (reference / "config.json").is_file() and output.model.is_dir()
    # the reference is the merged start model (the adapter's weights in it), not its base
    merged = load_file(str(reference / "model.safetensors"))
    base = load_file(str(tiny_model / "model.safetensors"))
    assert any(not torch.equal(merged[k].to(base[k].dtype), base[k]) for k in base if "q_proj" in k)


def test_reward_model_config_and_stage_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rewards\.reward_model\.path is not set"):
        config_for(tmp_path, "--rewards.functions", "[accuracy, reward_model]")
    config = config_for(
        tmp_path,
        "--rewards.functions",
        "[reward_model]",
        "--rewards.reward_model.path",
        "rm",
        "--evaluation.win_rate_against",
        "sft",
        "--evaluation.reward_model",
        "rm",
    )
    resolved = resolve_reward_models(config, {"rm": SimpleNamespace(model=Path("/runs/x/02_rm/model"))})
    assert resolved.rewards.reward_model.path == "/runs/x/02_rm/model"
    assert resolved.evaluation.reward_model == "/runs/x/02_rm/model"
    assert resolved.evaluation.win_rate_against == "sft"  # not (yet) a stage: left as given
    assert config.rewards.reward_model.path == "rm"  # the original is untouched
    with pytest.raises(ConfigError, match=r"win_rate_against needs evaluation\.reward_model"):
        config_for(tmp_path, "--evaluation.win_rate_against", "sft")
    with pytest.raises(ConfigError, match=r"divisible by rloo\.num_generations"):
        config_for(tmp_path, "--rloo.num_generations", "3")


# ---------------------------------------------------------------------------------------------------- evaluation


def test_perplexity_of_held_out_solutions_is_finite_and_above_one(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    rows = Dataset.from_list(
        [
            {"question": "What is 2 + 2?", "solution": "4", "reasoning": "2 + 2 = 4", "response": None},
            {"question": "Say hi.", "solution": None, "reasoning": None, "response": "Hi there!"},
            {"question": "What is 3 + 3?", "solution": "6", "reasoning": None, "response": None},  # no reference
        ]
    )
    prompts, texts = reference_texts(rows, "Solve it.")
    assert texts == ["<think>\n2 + 2 = 4\n</think>\n<answer>4</answer>", "Hi there!"]
    value = perplexity(model, tokenizer, prompts, texts, batch_size=1)
    assert math.isfinite(value) and value > 1.0
    assert perplexity(model, tokenizer, prompts, texts, batch_size=2) == pytest.approx(value, rel=1e-4)  # padding
    # the output layer applied only where completion tokens are predicted = every position's logits, masked
    monkeypatch.setattr(evaluate_module, "_decoder_and_head", lambda model: (None, None))
    assert perplexity(model, tokenizer, prompts, texts, batch_size=2) == pytest.approx(value, rel=1e-4)
    assert perplexity(model, tokenizer, [], []) is None


def test_rouge_l_of_identical_and_of_disjoint_texts() -> None:
    assert rouge_l(["the answer is 42"], ["the answer is 42"]) == 1.0
    assert rouge_l(["completely different words"], ["nothing shared here"]) == 0.0
    assert 0.0 < rouge_l(["the answer is 41"], ["the answer is 42"]) < 1.0
    assert rouge_l(["-3"], ["3"]) < 1.0  # the sign counts
    assert rouge_l([], []) is None


def test_rouge_l_reads_a_problems_answer_as_the_verifier_does() -> None:
    """A tag mentioned in unfinished thinking was taken as the answer ("X"), where the verifier reads none."""
    from r1kit.stages.evaluate import answers_and_references

    rows = Dataset.from_list([{"question": "3 + 4?", "solution": "7", "response": None}] * 3)
    completions = ["<think>Reply as <answer>X</answer>. 3 + 4 =", "<think>3 + 4 = 7</think><answer>7</answer>", "7"]
    assert answers_and_references(completions, rows) == (["", "7", "7"], ["7", "7", "7"])


def test_win_rate_on_hand_made_scores() -> None:
    scores = {"great": 3.0, "good": 2.0, "poor": 1.0, "unscored": None}

    def judge(completions, prompts=None, **kwargs):
        return [scores[c] for c in completions]

    prompts = ["p1", "p2", "p3", "p4"]
    assert win_rate(["great", "good", "poor", "good"], ["poor", "poor", "great", "good"], prompts, judge) == 0.625
    assert win_rate(["great", "unscored"], ["poor", "poor"], prompts[:2], judge) == 1.0  # unscored prompts left out
    assert win_rate(["unscored"], ["poor"], prompts[:1], judge) is None


def test_evaluation_reports_perplexity_rouge_and_win_rate(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"  # a second policy: the tiny model with nudged weights
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(other)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(other)
    judge = tiny_reward_model(tmp_path / "rm", tiny_model)

    ctx, inputs = stage_setup(
        tmp_path, "eval", "--evaluation.win_rate_against", "sft", "--evaluation.reward_model", "rm"
    )
    judges = {"win_rate_against": str(other), "reward_model": str(judge)}
    result = evaluate(ctx, inputs.model, inputs.splits.test, "base", judges=judges)
    assert math.isfinite(result["perplexity"]) and result["perplexity"] > 1.0
    assert 0.0 <= result["rouge_l"] <= 1.0
    assert 0.0 <= result["win_rate"] <= 1.0 and result["win_rate_against"] == "sft"
    saved = json.loads(ctx.run.eval_path("base").read_text())
    assert saved["perplexity"] == result["perplexity"] and "rouge_l" in saved
    # a stage that has not run yet: no win rate, no error
    later = evaluate(ctx, inputs.model, inputs.splits.test, "base2", judges={"reward_model": str(judge)})
    assert later["win_rate"] is None
    # a stage of the recipe not made yet maps to None, whatever folder of its name the current folder holds
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sft").mkdir()
    unmade = evaluate(ctx, inputs.model, inputs.splits.test, "base3", judges=judges | {"win_rate_against": None})
    assert unmade["win_rate"] is None
    monkeypatch.setenv("HOME", str(tmp_path))  # folders named from the home folder, as `r1kit eval` accepts them
    named = {"win_rate_against": "~/other", "reward_model": "~/rm"}
    config = ctx.config.model_copy(update={"evaluation": ctx.config.evaluation.model_copy(update=named)})
    assert judge_folders(config) == {"win_rate_against": str(other), "reward_model": str(judge)}


def test_a_run_resolves_the_win_rates_models_before_any_work(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`r1kit run` used evaluation.win_rate_against and evaluation.reward_model as raw paths: a hub id left the win
    rate empty without a word, a stage folder (RUN/01_sft) crashed the base evaluation ("has no tokenizer"), an alias
    was refused; `r1kit eval` refused RUN:STAGE for the reward model, which its own message offers."""
    from r1kit.atomic import COMPLETE_MARKER

    run = tmp_path / "run"  # a finished recipe run's stage folders: a policy and a reward model
    (run / "config.yaml").parent.mkdir()
    (run / "config.yaml").write_text("{}\n")
    for stage, source in (("01_sft", tiny_model), ("02_rm", tiny_reward_model(tmp_path / "rm", tiny_model))):
        (run / stage / "model").mkdir(parents=True)
        (run / stage / "manifest.json").write_text("{}\n")
        for file in source.iterdir():
            (run / stage / "model" / file.name).write_bytes(file.read_bytes())
        (run / stage / "model" / COMPLETE_MARKER).write_text("{}\n")
    monkeypatch.chdir(tmp_path)

    def folders(against: str, judge: str, stages: tuple[str, ...] = ()) -> dict:
        named = {"win_rate_against": against, "reward_model": judge}
        config = config_for(tmp_path, "--stages", "[{name: sft}]")
        return judge_folders(
            config.model_copy(update={"evaluation": config.evaluation.model_copy(update=named)}), stages
        )

    sft, rm = run / "01_sft" / "model", run / "02_rm" / "model"
    assert folders("run/01_sft", "run:rm") == {"win_rate_against": str(sft), "reward_model": str(rm)}
    assert folders("sft", "run/02_rm", stages=("sft",)) == {"win_rate_against": None, "reward_model": str(rm)}
    # one run folder for both: its final policy, and its reward model (keyed by name, the judge replaced the policy)
    (run / "summary.json").write_text(json.dumps({"final_model": "01_sft/model"}))
    assert folders("run", "run") == {"win_rate_against": str(sft), "reward_model": str(rm)}
    with pytest.raises(ModelError, match=r"evaluation.win_rate_against org/policy: no such model folder"):
        folders("org/policy", "run:rm")  # a hub id: the win rate stayed empty
    with pytest.raises(ModelError, match=r"evaluation\.reward_model .*01_sft/model: a \w+ model writes replies"):
        folders("run/01_sft", "run:sft")  # a policy as the judge: refused before any work


def test_eval_resolves_win_rate_against_before_checking_it(tmp_path: Path, tiny_model: Path) -> None:
    """`RUN:STAGE` names a stage's model everywhere a model goes; it was refused here as "no such model folder",
    being checked before it was resolved. A reward model there is refused up front, as for model.name."""
    from r1kit.atomic import COMPLETE_MARKER
    from r1kit.config.sources import resolve_config as resolved
    from r1kit.stages.evaluate import main as eval_main

    run = tmp_path / "run"  # a run folder as `r1kit sft --out run` leaves it
    (run / "sft").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    (run / "sft" / "manifest.json").write_text("{}\n")
    model = run / "sft" / "model"
    model.mkdir()
    for file in tiny_model.iterdir():
        (model / file.name).write_bytes(file.read_bytes())
    (model / COMPLETE_MARKER).write_text("{}\n")
    judge = tiny_reward_model(tmp_path / "rm", tiny_model)

    def evaluated(against: str) -> dict:
        overrides = ["--model.name", str(tiny_model), "--out", str(tmp_path / "e"), "--evaluation.reward_model"]
        overrides += [str(judge), "--evaluation.win_rate_against", against]
        return eval_main(resolved(profile="test", overrides=overrides, environ={}).config)

    result = evaluated(f"{run}:sft")
    assert result["win_rate"] is not None and result["win_rate_against"] == str(model)
    with pytest.raises(ModelError, match=r"is a reward model .* evaluation\.win_rate_against takes a text model"):
        evaluated(str(judge))
    with pytest.raises(ModelError, match=r"win_rate_against .*nowhere: no such model folder"):
        evaluated(str(tmp_path / "nowhere"))


def test_the_reward_models_trained_weights_are_fp32_master_weights(tiny_model: Path) -> None:
    """PEFT trains the new score head in full, in the load dtype (bf16/fp16); under fp16 the gradient scaler then
    refused the first step."""
    from peft import get_peft_model

    from r1kit.config.schema import ModelConfig
    from r1kit.hardware import Hardware
    from r1kit.stages.reward_model import load_reward_model, sequence_lora_config, trained_in_fp32

    cfg = ModelConfig()
    bf16 = Hardware(device="cpu", precision="bf16", threads=1)
    model = get_peft_model(load_reward_model(cfg, str(tiny_model), bf16, for_training=True), sequence_lora_config(cfg))
    trained = lambda: {p.dtype for p in model.parameters() if p.requires_grad}  # noqa: E731
    assert torch.bfloat16 in trained()  # the score head's copy
    trained_in_fp32(model)
    assert trained() == {torch.float32}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}  # frozen: as loaded
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(torch.tensor([[5, 6, 7]])).logits.shape == (1, 1)


def test_completion_logprobs_of_a_model_that_rescales_its_logits(tiny_model: Path) -> None:
    """Granite divides its logits by logits_scaling after the output layer: the layer's output alone gave
    log-probabilities (perplexity, DPO's implicit reward) of another distribution."""
    from transformers import GraniteConfig, GraniteForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    shape = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    torch.manual_seed(0)
    model = GraniteForCausalLM(GraniteConfig(vocab_size=len(tokenizer), logits_scaling=8.0, **shape)).eval()
    prompt, completion = [{"role": "user", "content": "What is 2 + 2?"}], "The answer is 4."
    [(total, count)] = evaluate_module.completion_logprobs(model, tokenizer, [prompt], [completion])

    asked = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    said = tokenizer.apply_chat_template([prompt[0], {"role": "assistant", "content": completion}], tokenize=False)
    ids = tokenizer(said, add_special_tokens=False, return_tensors="pt")["input_ids"]
    start = len(tokenizer(asked, add_special_tokens=False)["input_ids"])
    with torch.inference_mode():
        logps = model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    assert count == ids.shape[1] - start
    assert total == pytest.approx(logps[start - 1 :].sum().item(), rel=1e-4)


# A ChatML template that, like DeepSeek-R1-Distill's, keeps only what follows </think> of an assistant turn and opens
# <think> in its generation prompt
DISTILL_LIKE_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|im_start|>user\n{{ m['content'] }}<|im_end|>\n"
    "{% elif m['role'] == 'assistant' %}{% set c = m['content'] %}{% if '</think>' in c %}"
    "{% set c = c.split('</think>')[-1] %}{% endif %}<|im_start|>assistant\n{{ c }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


def test_reference_logprobs_score_the_reasoning_through_a_template_that_drops_it(tiny_model: Path) -> None:
    """The reference reply was rendered as an assistant turn, which such a template cuts to its answer: perplexity
    scored `<answer>391</answer>` alone (12 of 47 tokens). Now the reply as the model writes it after the prompt."""
    from r1kit.config.schema import ModelConfig
    from r1kit.models import load_tokenizer
    from r1kit.prompts import chat_prompt, r1_completion

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    reference = r1_completion("First 17 * 20 = 340, then 17 * 3 = 51, and 340 + 51 = 391.", "391")
    prompt = chat_prompt("What is 17 * 23?", "Be brief.")
    chatml = load_tokenizer(ModelConfig(chat_template="chatml"), str(tiny_model))
    distill = load_tokenizer(ModelConfig(chat_template=DISTILL_LIKE_TEMPLATE), str(tiny_model))
    [(plain_total, plain_count)] = evaluate_module.completion_logprobs(model, chatml, [prompt], [reference])
    [(total, count)] = evaluate_module.completion_logprobs(model, distill, [prompt], [reference])
    opening = len(chatml("<think>\n", add_special_tokens=False)["input_ids"])
    assert count == plain_count - opening  # the whole reply but the <think> the prompt opened, and the turn's end
    # the same reply after the same text: the same log-probabilities, but those of the opening tokens
    asked = chatml.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = chatml(asked + reference + "<|im_end|>\n", add_special_tokens=False, return_tensors="pt")["input_ids"]
    start = len(chatml(asked, add_special_tokens=False)["input_ids"])
    with torch.inference_mode():
        logps = model(ids).logits[0, :-1].float().log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    assert plain_total == pytest.approx(logps[start - 1 :].sum().item(), rel=1e-3)
    assert total == pytest.approx(logps[start - 1 + opening :].sum().item(), rel=1e-3)


def test_built_in_pairs_past_max_pairs_are_a_seeded_draw(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    """The built-in pairs come math first, general last, and `max_pairs` kept the first ones: every general pair was
    cut. A file's pairs were already drawn with the seed; the built-in ones now are too."""
    from r1kit.stages import pairs as pairs_module

    def pair(question: str, kind: str) -> dict:
        return {"prompt": [{"role": "user", "content": question}], "chosen": f"{kind} good", "rejected": f"{kind} bad"}

    built = [pair(f"m{i}", "math") for i in range(30)] + [pair(f"g{i}", "general") for i in range(10)]
    monkeypatch.setattr(pairs_module, "builtin_pairs", lambda ctx, model, rows: (list(built), {}))
    config = config_for(tmp_path, "--preferences.max_pairs", "16")
    ctx, _, splits = setup(config, "test")
    tokenizer = load_tokenizer(config.model, str(tiny_model))
    drawn = stage_pairs(ctx.for_stage(config, "dpo", "dpo"), str(tiny_model), splits.train, tokenizer)
    assert len(drawn.train) == 16 and {p["chosen"].split()[0] for p in drawn.train} == {"math", "general"}


@pytest.mark.parametrize("stage", ["reward_model", "dpo"])
def test_a_template_that_drops_reasoning_is_refused_before_pairs_are_built(
    stage: str, tmp_path: Path, tiny_model: Path
) -> None:
    """Through DeepSeek-R1-Distill's kind of template the reward model scored two replies with one answer and other
    reasoning alike, and DPO's chosen and rejected tokens were the same: refused, as SFT refuses it."""
    from r1kit.config.schema import ModelConfig
    from r1kit.models import drops_reasoning, load_tokenizer
    from tests.conftest import REPO, r1kit_cli

    assert drops_reasoning(load_tokenizer(ModelConfig(chat_template=DISTILL_LIKE_TEMPLATE), str(tiny_model)))
    assert not drops_reasoning(load_tokenizer(ModelConfig(chat_template="chatml"), str(tiny_model)))
    out = tmp_path / "run"
    template = ("--model.chat_template", DISTILL_LIKE_TEMPLATE)
    done = r1kit_cli(stage, "--profile", "test", *template, "--out", str(out), cwd=REPO)
    assert done.returncode == 1 and "drops the reasoning from an assistant's reply" in done.stderr, done.stderr[-2000:]
    assert not (out / stage / "pairs.jsonl").exists()  # before any pair was sampled


def test_rloo_resumed_inside_a_generation_cycle_trains_as_the_uninterrupted_one(
    tiny_model: Path, tmp_path: Path
) -> None:
    """RLOO trains a generation's rollouts over num_iterations optimizer steps, as GRPO does: resumed from a
    checkpoint inside the cycle, TRL generated afresh there (test_fast_grpo has GRPO's case)."""
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import RLOOConfig

    from r1kit.stages.rloo import R1kitRLOOTrainer

    class StopAtTwo(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 2

    def trainer(out: Path) -> R1kitRLOOTrainer:
        torch.manual_seed(0)
        args = RLOOConfig(
            output_dir=str(out), per_device_train_batch_size=12, num_generations=4, num_iterations=3, max_steps=4,
            save_strategy="steps", save_steps=2, learning_rate=1e-2, max_completion_length=12, use_cpu=True,
            report_to="none", logging_steps=1, gradient_checkpointing=False,
        )  # fmt: skip
        return R1kitRLOOTrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_model),
            reward_funcs=lambda completions, **kw: [float(len(c[0]["content"]) % 3) for c in completions],
            args=args,
            train_dataset=Dataset.from_dict({"prompt": [[{"role": "user", "content": f"Add {a}."}] for a in range(6)]}),
            processing_class=AutoTokenizer.from_pretrained(tiny_model),
            peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        )

    straight = trainer(tmp_path / "straight")
    straight.train()
    stopped = trainer(tmp_path / "stopped")
    stopped.add_callback(StopAtTwo())
    stopped.train()
    resumed = trainer(tmp_path / "stopped")
    resumed.train(resume_from_checkpoint=str(tmp_path / "stopped" / "checkpoint-2"))
    trained = {name: p for name, p in straight.model.named_parameters() if p.requires_grad}
    assert all(torch.equal(p, trained[name]) for name, p in resumed.model.named_parameters() if p.requires_grad)
