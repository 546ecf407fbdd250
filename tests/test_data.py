"""Built-in tasks, adapters for each seed format, local loaders, and bad rows named precisely."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
from datasets import Dataset

from r1kit.config.schema import DatasetConfig
from r1kit.data import synthetic
from r1kit.data.adapters import detect_format
from r1kit.data.loading import (
    DatasetError,
    grpo_rows,
    load_all_rows,
    load_eval_rows,
    load_file,
    load_splits,
    r1_target,
    sft_rows,
    sft_target,
)
from r1kit.rewards import build_reward
from tests.conftest import GSM8K


def dataset(name: str | Path, **kwargs) -> DatasetConfig:
    return DatasetConfig(name=str(name), **kwargs)


# ---------------------------------------------------------------------------------------------------- built-in


@pytest.mark.parametrize("task", synthetic.BUILTIN_TASKS)
def test_builtin_tasks_are_seeded_distinct_and_exactly_answered(task: str) -> None:
    rows = synthetic.generate(task, 300, seed=7)
    assert rows == synthetic.generate(task, 300, seed=7)
    assert rows != synthetic.generate(task, 300, seed=8)
    assert len({r["question"] for r in rows}) == 300
    for row in rows:
        # the trace is a chain of correct equations that ends at the gold answer
        for line in str(row["reasoning"]).splitlines():
            left, right = line.split(" = ")
            assert eval(left) == int(right)
        assert str(row["reasoning"]).splitlines()[-1].endswith(f"= {row['solution']}")
        assert int(str(row["solution"])) >= 0


def test_builtin_difficulty_is_graded() -> None:
    levels = {r["level"] for r in synthetic.generate("arithmetic", 200, seed=0)}
    assert levels == {1, 2, 3, 4}


def test_the_mixed_task_s_groups_say_which_task_their_level_is_of() -> None:
    """An arithmetic level is a difficulty, a word problem's a kind of story: in `mixed` both shared the labels 2-4,
    so its per-level table blended unlike problems (group 4: four-operand chains and spending stories)."""
    groups = {row["level"] for row in synthetic.generate("mixed", 300, seed=0)}
    assert groups == {f"arithmetic {level}" for level in (1, 2, 3, 4)} | {f"word_problem {k}" for k in (2, 3, 4)}
    assert {row["level"] for row in synthetic.generate("arithmetic", 50, seed=0)} == {1, 2, 3, 4}


def test_builtin_split_keeps_held_out_problems_out_of_training() -> None:
    splits = load_splits(dataset("mixed", synthetic={"num_examples": 500, "seed": 3}))
    assert len(splits.test) == 50 and 440 <= len(splits.train) <= 450  # less the held-out problems' twins and steps
    assert not set(splits.train["question"]) & set(splits.test["question"])


def test_a_builtin_task_is_evaluated_on_the_held_out_file_given(tmp_path: Path) -> None:
    """dataset.test_split with a built-in task: training rows from the task, held-out rows from the file (it was
    silently ignored, and the task's own split evaluated)."""
    path = tmp_path / "held_out.jsonl"
    path.write_text(
        "".join(json.dumps({"question": f"Subtract {n} from 50.", "solution": str(50 - n)}) + "\n" for n in range(5))
    )
    config = dataset("arithmetic", test_split=str(path), synthetic={"num_examples": 100})
    splits = load_splits(config)
    assert len(splits.train) == 100 and splits.test["question"][0] == "Subtract 0 from 50."
    assert load_eval_rows(config)[0]["solution"] == ["50", "49", "48", "47", "46"]
    # a hub split name means nothing here: it was a bare "dataset file not found: validation"
    for name in ("arithmetic", str(path)):
        with pytest.raises(DatasetError, match=r"test_split 'validation': .* split names are for hub datasets"):
            load_splits(dataset(name, test_split="validation"))
        # was: "dataset file not found: tset.jsonl", which named no key
        with pytest.raises(DatasetError, match=r"dataset.test_split 'tset.jsonl': held-out file not found"):
            load_splits(dataset(name, test_split="tset.jsonl"))


def test_other_column_names_are_renamed_with_dataset_columns(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"problem": "What is 3 + 4?", "answer": 7}) + "\n")
    unknown = write_rows(tmp_path / "unknown.jsonl", [{"query": "What is 3 + 4?", "target": 7}])
    with pytest.raises(DatasetError, match=r"or rename columns to them with dataset.columns"):
        load_eval_rows(dataset(unknown))
    # AIME's problem + answer (and a quiz's question + answer without GSM8K's ####) were refused too: read now
    assert load_eval_rows(dataset(path))[0]["solution"] == ["7"]
    quiz = write_rows(tmp_path / "quiz.jsonl", [{"question": "What is 3 + 4?", "answer": "7"}])
    assert load_eval_rows(dataset(quiz))[0]["solution"] == ["7"]
    rows, _ = load_eval_rows(dataset(path, columns={"problem": "question", "answer": "solution"}))
    assert (rows["question"], rows["solution"]) == (["What is 3 + 4?"], ["7"])
    with pytest.raises(DatasetError, match=r"renames prompt, which the data does not have .*: problem, answer"):
        load_eval_rows(dataset(path, columns={"prompt": "question"}))
    with pytest.raises(DatasetError, match="renames a column to answer, which the data has"):
        load_eval_rows(dataset(path, columns={"problem": "answer"}))
    # a bad row's field is named as the file names it (was: field 'solution' is missing, a column the file lacks)
    rows = [{"problem": "What is 1 + 1?", "answer": 2}, {"problem": "What is 2 + 2?", "answer": ""}]
    renaming = {"problem": "question", "answer": "solution"}
    bad = "line 2: field 'answer' (read as 'solution' through dataset.columns) is missing"
    with pytest.raises(DatasetError, match=re.escape(bad)):
        load_splits(dataset(write_rows(tmp_path / "blank.jsonl", rows), columns=renaming))


def test_dataset_columns_is_read_from_flags_env_and_yaml(tmp_path: Path) -> None:
    from r1kit.config.sources import resolve_config

    wanted = {"q": "question", "a": "solution"}
    assert (
        resolve_config(overrides=["--dataset.columns", "{q: question, a: solution}"], environ={}).config.dataset.columns
        == wanted
    )
    assert (
        resolve_config(environ={"R1KIT_DATASET_COLUMNS": "{q: question, a: solution}"}).config.dataset.columns == wanted
    )
    (tmp_path / "c.yaml").write_text("dataset:\n  columns: {q: question, a: solution}\n")
    assert resolve_config(config_file=str(tmp_path / "c.yaml"), environ={}).config.dataset.columns == wanted


def test_gold_answers_verify_against_their_own_traces() -> None:
    rows = load_splits(dataset("word_problems", synthetic={"num_examples": 40, "seed": 1})).train
    completions = sft_rows(rows, "sys")["completion"]
    assert build_reward("accuracy")(completions, solution=list(rows["solution"])) == [1.0] * len(rows)
    assert build_reward("format")(completions) == [1.0] * len(rows)


def test_rows_without_a_worked_solution_left_out_of_sft_are_counted(tmp_path: Path, caplog) -> None:
    """Only the final `train_rows` count said that 33 of 36 rows were not trained on (final answers only)."""
    rows = [
        {"question": f"{i} + 1?", "solution": str(i + 1)} | ({"reasoning": f"{i} + 1 = {i + 1}"} if i < 3 else {})
        for i in range(10)
    ]
    loaded = load_eval_rows(dataset(write_rows(tmp_path / "partial.jsonl", rows)))[0]
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        assert len(sft_rows(loaded, "sys")) == 3
    assert "7 of 10 training rows have no worked solution or reference reply (final answers only)" in caplog.text


# ------------------------------------------------------------------------------------------------------ GSM8K


needs_gsm8k = pytest.mark.skipif(
    not GSM8K.exists(), reason=f"GSM8K sample data not found at {GSM8K} (CI has it in ../shared)"
)


@needs_gsm8k
def test_real_gsm8k_file() -> None:
    splits = load_splits(dataset(GSM8K / "train.jsonl", test_split=str(GSM8K / "test.jsonl")))
    assert (len(splits.train), len(splits.test)) == (7473, 1319)
    row = splits.train[0]
    assert row["solution"] == "72" and "<<" not in row["reasoning"] and "####" not in row["reasoning"]
    completion = sft_rows(splits.train.select(range(1)), "sys")["completion"][0][0]["content"]
    assert completion.startswith("<think>\n") and completion.endswith("<answer>72</answer>")


@needs_gsm8k
def test_eval_rows_of_a_file_are_the_whole_file() -> None:
    assert len(load_eval_rows(dataset(GSM8K / "test.jsonl"))[0]) == 1319
    assert len(load_eval_rows(dataset(GSM8K / "test.jsonl", max_test_samples=25))[0]) == 25


def test_gold_numbers_of_a_jsonl_file_are_read_as_written(tmp_path: Path) -> None:
    """The datasets library's column types changed golds without a word: a column with an integer past int64 became
    float64 (2**53 + 1 read as 2**53, 25! off in its last digits), and one mixing numbers and strings decoded its
    strings as JSON ("007" read as 7, "1.50" as 1.5, "null" dropped the row)."""
    big = tmp_path / "big.jsonl"
    golds = [2**53 + 1, 10**20, 15511210043330985984000000, 7]
    big.write_text("".join(json.dumps({"question": f"q{i}", "solution": g}) + "\n" for i, g in enumerate(golds)))
    rows, _ = load_eval_rows(DatasetConfig(name=str(big)))
    assert [row["solution"] for row in rows] == [str(g) for g in golds]
    mixed = tmp_path / "mixed.jsonl"
    answers = [5, "1.50", "007", "null", "2.5"]
    mixed.write_text("".join(json.dumps({"question": f"q{i}", "solution": a}) + "\n" for i, a in enumerate(answers)))
    rows, _ = load_eval_rows(DatasetConfig(name=str(mixed)))
    assert [row["solution"] for row in rows] == ["5", "1.50", "007", "null", "2.5"]


def test_gold_numbers_of_a_csv_file_are_read_as_written(tmp_path: Path) -> None:
    """pandas guessed each CSV column's type: "007" was 7, 2**53 + 1 beside a 1.5 lost its last digit, a 24-digit
    integer failed the load, and a "1/2" after 10,000 whole numbers (pandas reads 10,000 rows at a time) failed it."""
    golds = ["007", "9007199254740993", "1.5", "123456789012345678901234", "3.141592653589793238"]
    path = tmp_path / "golds.csv"
    path.write_text("question,solution\n" + "".join(f"q{i},{g}\n" for i, g in enumerate(golds)))
    assert load_eval_rows(dataset(path))[0]["solution"] == golds
    path.write_text(
        "question,solution\n" + "".join(f"q{i},{i}\n" for i in range(10_050)).replace("q10020,10020", "q,1/2")
    )
    assert load_eval_rows(dataset(path))[0]["solution"][10_020] == "1/2"
    path.write_text(",question,solution,\n0,q,007,\n")  # pandas' index column, a trailing comma: unnamed columns
    assert load_eval_rows(dataset(path))[0]["solution"] == ["007"]


def test_a_jsonl_file_whose_columns_change_type_after_its_first_10_mb_loads(tmp_path: Path) -> None:
    """The datasets library inferred each column's type from a JSONL file's first 10 MB: an integer gold column with a
    2.5 after them, a group that was null until then, or a column first met there failed the load."""
    pad = "x" * 1000
    rows = [{"question": f"What is {i} + 1? {pad}", "solution": i + 1, "level": None} for i in range(11_000)]
    rows[10_900] |= {"solution": 2.5, "level": "hard", "reasoning": "1 + 1.5 = 2.5"}
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded, _ = load_eval_rows(dataset(path))
    assert (loaded[10_900]["solution"], loaded[10_900]["group"], loaded[0]["solution"]) == ("2.5", "hard", "1")


def test_gold_numbers_of_a_json_array_are_read_as_written(tmp_path: Path) -> None:
    """A .json file skipped the JSONL reading's care: 25! was refused ("Value is too big!"), 2**53 + 1 beside a 1.5
    read as 2**53 and "007" beside a 7 as 7; a small float gold became "1e-05", which the verifier reads as no
    0.00001."""
    golds = [15511210043330985984000000, 2**53 + 1, 1.5, "007", 7, 0.00001]
    path = write_rows(tmp_path / "golds.json", [{"question": f"q{i}", "solution": g} for i, g in enumerate(golds)])
    rows, _ = load_eval_rows(dataset(path))
    assert rows["solution"] == ["15511210043330985984000000", "9007199254740993", "1.5", "007", "7", "0.00001"]
    # an item that is no object is named as the array's item
    path.write_text(json.dumps([{"question": "q", "solution": "1"}, ["q", "2"], {"question": "r", "solution": "3"}]))
    with pytest.raises(DatasetError, match=r"item 2 must be a JSON object"):
        load_eval_rows(dataset(path))
    assert load_eval_rows(dataset(path, on_bad_row="skip"))[0]["solution"] == ["1", "3"]


def test_a_json_file_needing_no_rewrite_is_read_as_it_is(tmp_path: Path) -> None:
    """Read through a temporary copy, every load of a .json array left a new copy in the datasets cache; a JSON
    object ({column: [values]}) was refused as JSON lines ("line 1 is not valid JSON")."""
    from r1kit.data.loading import load_file

    path = write_rows(tmp_path / "rows.json", [{"question": "q", "solution": "1"}] * 2)
    assert load_file(path)[0].cache_files == load_file(path)[0].cache_files
    columns = tmp_path / "columns.json"
    columns.write_text(json.dumps({"question": ["q1", "q2"], "solution": ["1", "2"]}, indent=2))
    assert load_file(columns)[0].column_names == ["question", "solution"]


def test_a_chat_column_mixing_text_and_text_parts_keeps_its_text(tmp_path: Path) -> None:
    """Turns whose content is text in some and OpenAI-style parts in others made the datasets library decode the
    texts as JSON: the reply "5" became the number 5, a bad row ("must be text or text parts (got 5)")."""
    parts = [{"type": "text", "text": "What is 2 + 3?"}]
    rows = [
        {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "5"}]},
        {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "null"}]},
    ]
    loaded, _ = load_eval_rows(dataset(write_rows(tmp_path / "chat.jsonl", rows)))
    assert list(zip(loaded["question"], loaded["response"], strict=True)) == [
        ("What is 2 + 3?", "5"),
        ("Name a colour.", "null"),
    ]


def test_a_sharegpt_reply_in_r1_form_is_a_worked_solution_with_its_gold(tmp_path: Path) -> None:
    """Its <answer> block was taken as the final text: no gold, and the reference reply <answer><answer>5</answer>
    </answer>; a messages row with the same reply was read right."""
    reply = "<think>2 + 3 = 5</think>\n<answer>5</answer>"
    for column, turns in (
        ("conversations", [{"from": "human", "value": "What is 2 + 3?"}, {"from": "gpt", "value": reply}]),
        ("messages", [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": reply}]),
    ):
        row = load_eval_rows(dataset(write_rows(tmp_path / f"{column}.jsonl", [{column: turns}] * 2)))[0][0]
        assert (row["solution"], row["reasoning"], row["response"]) == ("5", "2 + 3 = 5", reply), column


@pytest.mark.parametrize(
    "reply",
    [
        "<think>\n2 + 3 = 5\n</think>\n\nSo the answer is \\boxed{5}.",  # R1-distill data (OpenR1, Mixture-of-Thoughts)
        "<|begin_of_thought|>2 + 3 = 5<|end_of_thought|><|begin_of_solution|>\\boxed{5}<|end_of_solution|>",
    ],
)
def test_a_messages_reply_with_marked_thinking_is_read_as_in_sharegpt_rows(reply: str, tmp_path: Path) -> None:
    """A messages row with R1-distill or Bespoke thinking was a reference reply: no gold for GRPO and evaluation, and
    SFT learned the markup; the same reply in a conversations column was a worked solution with its gold."""
    turns = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": reply}]
    row = load_eval_rows(dataset(write_rows(tmp_path / "m.jsonl", [{"messages": turns}] * 2)))[0][0]
    assert (row["solution"], row["reasoning"]) == ("5", "2 + 3 = 5")
    assert r1_target(row) == "<think>\n2 + 3 = 5\n</think>\n<answer>5</answer>"
    plain = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! \\boxed{5}"}]
    row = load_eval_rows(dataset(write_rows(tmp_path / "p.jsonl", [{"messages": plain}] * 2)))[0][0]
    assert (row["solution"], row["response"]) == (None, "Hello! \\boxed{5}")  # a plain chat reply stays one


def test_gsm8k_is_told_from_more_than_its_first_row(tmp_path: Path) -> None:
    """One first row without its #### line made the whole file "cannot tell the dataset format", even under
    on_bad_row skip: it is a bad row of a GSM8K file."""
    rows = [{"question": "q0", "answer": "no final line"}] + [
        {"question": f"q{i}", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 4)
    ]
    path = write_rows(tmp_path / "gsm.jsonl", rows)
    with pytest.raises(DatasetError, match=r"line 1: field 'answer' has no final '####"):
        load_eval_rows(dataset(path))
    assert load_eval_rows(dataset(path, on_bad_row="skip"))[0]["solution"] == ["2", "4", "6"]


def test_a_data_file_s_suffix_may_be_upper_case(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", [{"question": "q", "solution": "1"}] * 2).rename(tmp_path / "DATA.JSONL")
    assert load_all_rows(dataset(path))[0]["solution"] == ["1", "1"]


def test_max_train_samples_of_data_in_its_own_order_is_a_seeded_draw(tmp_path: Path) -> None:
    """With a held-out file, the training rows are the data's in its order, and max_train_samples kept its head: a
    file sorted by level trained on level 1 alone."""
    data, held = tmp_path / "sorted.jsonl", tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "solution": str(i), "level": i // 200 + 1}) + "\n"
                            for i in range(1000)))  # fmt: skip
    held.write_text(json.dumps({"question": "held", "solution": "1"}) + "\n")
    train = load_splits(dataset(data, test_split=str(held), max_train_samples=200)).train
    levels = {row["group"] for row in train}
    assert len(train) == 200 and levels == {"1", "2", "3", "4", "5"}
    again = load_splits(dataset(data, test_split=str(held), max_train_samples=200)).train
    assert again["question"] == train["question"]  # seeded


def test_eval_rows_of_a_builtin_task_are_its_held_out_split() -> None:
    assert len(load_eval_rows(dataset("arithmetic", synthetic={"num_examples": 100, "seed": 0}))[0]) == 10


# -------------------------------------------------------------------------------------------------- adapters

SAMPLES = {
    "numina": {"problem": "What is $1+1$?", "solution": "Adding gives $\\boxed{2}$."},
    "gsm8k": {"question": "Sam has 3 + 4 apples?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    "sharegpt": {
        "system": "sys",
        "conversations": [
            {"from": "user", "value": "What is 2*3?"},
            {
                "from": "assistant",
                "value": "<|begin_of_thought|>2*3 is 6<|end_of_thought|><|begin_of_solution|>So \\boxed{6}<|end_of_solution|>",
            },
        ],
    },
    "messages": {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]},
    "dolly": {
        "instruction": "Summarise",
        "context": "Some text.",
        "response": "A summary.",
        "category": "summarization",
    },
    "r1kit": {"question": "What is 5-2?", "solution": 3},
    "alpaca": {"instruction": "Translate", "input": "bonjour", "output": "hello"},
    "prompt_completion": {"prompt": "Name a colour.", "completion": "Blue."},  # TRL's SFT format
    "prompt_solution": {  # TRL's prompt-only GRPO rows with a gold answer (open-r1, the tutorial's make_conversation)
        "prompt": [{"role": "system", "content": "Think first."}, {"role": "user", "content": "What is 6*7?"}],
        "solution": "6*7 = 42, so \\boxed{42}.",
    },
    "text": {"text": "What is 2 + 5?\n<think>2 + 5 = 7</think>\n<answer>7</answer>"},  # TRL's dataset_text_field
}
EXPECTED = {
    "numina": ("What is $1+1$?", "2", "Adding gives $\\boxed{2}$.", None),
    "gsm8k": ("Sam has 3 + 4 apples?", "7", "3 + 4 = 7", None),
    "sharegpt": ("What is 2*3?", "6", "2*3 is 6", "So \\boxed{6}"),
    "messages": ("Hi there", None, None, "Hello!"),
    "dolly": ("Summarise\n\nSome text.", None, None, "A summary."),
    "r1kit": ("What is 5-2?", "3", None, None),
    "alpaca": ("Translate\n\nbonjour", None, None, "hello"),
    "prompt_completion": ("Name a colour.", None, None, "Blue."),
    "prompt_solution": ("What is 6*7?", "42", "6*7 = 42, so \\boxed{42}.", None),
    "text": ("What is 2 + 5?", "7", "2 + 5 = 7", None),
}


def write_rows(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("fmt", SAMPLES)
def test_each_format_is_detected_and_adapted(fmt: str, tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", [SAMPLES[fmt]] * 4)
    rows, _ = load_eval_rows(dataset(path))
    assert detect_format(list(SAMPLES[fmt]), [SAMPLES[fmt]]) == fmt
    row = rows[0]
    assert (row["question"], row["solution"], row["reasoning"], row["response"]) == EXPECTED[fmt]


def test_gsm8k_in_trl_s_prompt_solution_shape_is_split_at_its_answer_line(tmp_path: Path) -> None:
    """GSM8K mapped to {prompt, solution}: the whole worked text, calculator notes and all, was the gold, with no
    reasoning, so SFT said the file had no worked solution."""
    worked = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    rows, _ = load_eval_rows(
        dataset(write_rows(tmp_path / "ps.jsonl", [{"prompt": "How many?", "solution": worked}] * 3))
    )
    assert rows[0]["solution"] == "72"
    assert rows[0]["reasoning"] == "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips."


def test_conversational_prompt_completion_rows_and_input_output_files_are_read(tmp_path: Path) -> None:
    """TRL's conversational prompt-completion rows and a file of input/output pairs could not be told apart from
    unknown columns ("cannot tell the dataset format")."""
    turns = {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
        "completion": [{"role": "assistant", "content": "Blue."}],
    }
    rows, _ = load_eval_rows(dataset(write_rows(tmp_path / "turns.jsonl", [turns] * 3)))
    assert (rows[0]["question"], rows[0]["response"]) == ("Name a colour.", "Blue.")
    pairs = [{"input": "2 + 2?", "output": "4"}] * 3
    rows, _ = load_eval_rows(dataset(write_rows(tmp_path / "io.jsonl", pairs)))
    assert (rows[0]["question"], rows[0]["response"]) == ("2 + 2?", "4")
    no_reply = {"prompt": "Hi", "completion": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(DatasetError, match=r"line 1: field 'completion' has no assistant message with text"):
        load_eval_rows(dataset(write_rows(tmp_path / "bad.jsonl", [no_reply])))


def test_chat_replies_in_r1_format_are_worked_solutions_with_a_gold_answer(tmp_path: Path) -> None:
    """A prompt-completion or messages file of R1-format replies (the shape r1kit's own traces have) was read as plain
    chat: no gold answer, so GRPO refused it and evaluation had nothing to verify."""
    reply = "<think>6 * 7 = 42</think>\n<answer>42</answer>"
    pairs = [{"prompt": "What is 6 * 7?", "completion": reply}] * 3
    rows, _ = load_eval_rows(dataset(write_rows(tmp_path / "pc.jsonl", pairs)))
    assert (rows[0]["question"], rows[0]["reasoning"], rows[0]["solution"]) == ("What is 6 * 7?", "6 * 7 = 42", "42")
    turns = [{"messages": [{"role": "user", "content": "What is 6 * 7?"}, {"role": "assistant", "content": reply}]}]
    rows, _ = load_eval_rows(dataset(write_rows(tmp_path / "m.jsonl", turns * 3)))
    assert rows[0]["solution"] == "42" and rows[0]["response"] == reply
    # not worked examples: text before the blocks, between them (the format reward gives such a reply 0), after
    for name, completion in [
        ("before", "Hello! <think>a</think><answer>b</answer>"),
        ("between", "<think>6 * 7 = 42</think> So the answer: <answer>42</answer>"),
        ("after", "<think>6 * 7 = 42</think><answer>42</answer> Hope that helps!"),
    ]:
        rows, _ = load_eval_rows(
            dataset(write_rows(tmp_path / f"{name}.jsonl", [{"prompt": "Hi", "completion": completion}] * 3))
        )
        assert rows[0]["solution"] is None and rows[0]["response"] == completion, name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("User: Name a colour.\n\nAssistant: Blue.", ("Name a colour.", None, None, "Blue.")),  # the RLHF notebook's
        ("### Human: Name a colour. ### Assistant: Blue.", ("Name a colour.", None, None, "Blue.")),  # Guanaco
        ("Human: Hi\n\nAssistant: Hello.\n\nHuman: Bye\n\nAssistant: Bye.", ("Hi", None, None, "Hello.")),
        ("User: Hi\n\nAssistant: Click NewUser: then save.", ("Hi", None, None, "Click NewUser: then save.")),
        (
            "System: Be kind.\nuser: Is Assistant: a word?\nassistant: Yes.",
            ("Is Assistant: a word?", None, None, "Yes."),
        ),
        (
            "User: What is 2 + 2?\nAssistant: <think>2 + 2 = 4</think><answer>4</answer>",
            ("What is 2 + 2?", "4", "2 + 2 = 4", "<think>2 + 2 = 4</think><answer>4</answer>"),
        ),
        (  # a worked example a notebook ended with the end-of-text token: still one (it became a bad row)
            "What is 2 + 2? <think>2 + 2 = 4</think><answer>4</answer><|endoftext|>",
            ("What is 2 + 2?", "4", "2 + 2 = 4", None),
        ),
    ],
)
def test_a_text_column_of_written_out_exchanges_is_read(text: str, expected: tuple, tmp_path: Path) -> None:
    """TRL's text-field SFT data ("User: …\n\nAssistant: …") was "cannot tell the dataset format"."""
    rows, _ = load_eval_rows(dataset(write_rows(tmp_path / "text.jsonl", [{"text": text}] * 3)))
    assert (rows[0]["question"], rows[0]["solution"], rows[0]["reasoning"], rows[0]["response"]) == expected


def test_text_rows_whose_later_turns_are_left_out_are_counted(tmp_path: Path, caplog) -> None:
    rows = [
        {"text": "Human: Hi\n\nAssistant: Hello.\n\nHuman: Bye\n\nAssistant: Bye."},
        {"text": "User: A\nAssistant: B"},
    ]
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        load_eval_rows(dataset(write_rows(tmp_path / "text.jsonl", rows * 2)))
    assert "text.jsonl: 2 of 4 rows hold their own system message or more than one exchange" in caplog.text


def test_chat_rows_whose_later_turns_or_system_message_are_left_out_are_counted(tmp_path: Path, caplog) -> None:
    """smoltalk's rows are mostly conversations of several exchanges: all but the first were dropped without a word."""
    say = lambda role, text: {"role": role, "content": text}  # noqa: E731
    long = {"messages": [say("user", "Hi"), say("assistant", "Hello."), say("user", "Bye"), say("assistant", "Bye.")]}
    own_system = {"messages": [say("system", "Be brief."), say("user", "Hi"), say("assistant", "Hello.")]}
    one = {"messages": [say("user", "Hi"), say("assistant", "Hello.")]}
    no_reply = {"messages": [say("user", "Hi"), say("user", "Hello?"), say("user", "Anyone?")]}  # skipped, not cut
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        rows, _ = load_eval_rows(
            dataset(write_rows(tmp_path / "chat.jsonl", [long, own_system, one, one, no_reply]), on_bad_row="skip")
        )
    assert (rows[0]["question"], rows[0]["response"]) == ("Hi", "Hello.")
    assert "chat.jsonl: 2 of 5 rows hold their own system message or more than one exchange" in caplog.text
    caplog.clear()
    stratos = {
        "system": "Think first.",
        "conversations": [{"from": "user", "value": "Hi"}, {"from": "gpt", "value": "Yo"}],
    }
    with caplog.at_level(logging.WARNING, logger="r1kit"):  # Bespoke-Stratos: its system prompt is a top-level field
        load_eval_rows(dataset(write_rows(tmp_path / "stratos.jsonl", [stratos] * 2)))
    assert "stratos.jsonl: 2 of 2 rows hold their own system message" in caplog.text
    caplog.clear()
    tutorial = {  # the R1 tutorial's processed rows: its prompt (system message and problem) beside the problem
        "problem": "What is 2 + 3?",
        "solution": "$\\boxed{5}$",
        "prompt": [say("system", "Think, then answer in tags."), say("user", "What is 2 + 3?")],
    }
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        load_eval_rows(dataset(write_rows(tmp_path / "tutorial.jsonl", [tutorial] * 3)))
    assert "tutorial.jsonl: 3 of 3 rows hold their own system message" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        load_eval_rows(dataset(write_rows(tmp_path / "plain.jsonl", [one] * 3)))
    assert "exchange" not in caplog.text


def test_numina_rows_without_a_boxed_answer_are_counted(tmp_path: Path, caplog) -> None:
    """Their gold is the whole solution: a silent fallback that scored "Adding gives 6." as the gold answer."""
    rows = [{"problem": "2 + 4?", "solution": "Adding gives $\\boxed{6}$."}] * 3 + [
        {"problem": "5 + 5?", "solution": "It is 10."}
    ]
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        load_eval_rows(dataset(write_rows(tmp_path / "numina.jsonl", rows)))
    assert "numina.jsonl: 1 of 4 NuminaMath rows have no \\boxed{} answer" in caplog.text


def test_held_out_problems_are_never_trained_on_nor_scored_twice(tmp_path: Path, caplog) -> None:
    """A held-out file's problems in the training data were only said (and trained on); a file with several rows of a
    problem (k traces each) was split by row: a problem held out was trained on through its other rows, and scored
    as often as it was held out."""
    rows = [{"question": f"{i} + 1?", "solution": str(i + 1)} for i in range(6)]
    path = write_rows(tmp_path / "same.jsonl", rows)
    with pytest.raises(DatasetError, match="every training row asks a problem of the held-out file"):
        load_splits(DatasetConfig(name=str(path), test_split=str(path)))
    held_out = write_rows(tmp_path / "held_out.jsonl", rows[:2] + rows[:1])
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        splits = load_splits(DatasetConfig(name=str(path), test_split=str(held_out)))
    assert splits.test["question"] == ["0 + 1?", "1 + 1?"] and set(splits.train["question"]).isdisjoint(
        splits.test["question"]
    )
    assert "1 row repeating an earlier problem left out" in caplog.text
    assert "2 training rows with a problem of the held-out file" in caplog.text
    # `r1kit eval --data` of that file scores the same problems, once each: it read the repeat, and paired with no run
    assert load_eval_rows(DatasetConfig(name=str(held_out)))[0]["question"] == ["0 + 1?", "1 + 1?"]

    traces = [{"question": f"{i} * 3?", "solution": str(3 * i)} for i in range(50) for _ in range(4)]
    splits = load_splits(DatasetConfig(name=str(write_rows(tmp_path / "traces.jsonl", traces))))
    assert len(splits.test) == len(set(splits.test["question"])) == 5  # 10% of the 50 problems, each once
    assert len(splits.train) == 4 * 45 and set(splits.train["question"]).isdisjoint(splits.test["question"])
    arithmetic = load_splits(DatasetConfig(name="arithmetic"))  # distinct problems: the split of rows as before
    assert arithmetic.test["question"][:2] == ["Evaluate 7 + 11 - 5.", "What is 46 - 1 - 45 + 26?"]


def test_a_hub_configuration_name_given_for_a_local_file_is_said_to_be_unused(tmp_path: Path, caplog) -> None:
    rows = [{"question": f"{i} + 1?", "solution": str(i + 1)} for i in range(4)]
    path = write_rows(tmp_path / "mine.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="r1kit"):  # was: read, and nothing said
        load_splits(DatasetConfig(name=str(path), subset="all"))
    said = f"dataset.subset 'all' names a configuration of a hub dataset; {path} has none, so it is not used"
    assert caplog.text.count(said) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):  # `r1kit eval` of a local file reads it on its own path
        load_eval_rows(DatasetConfig(name=str(path), subset="all"))
    assert caplog.text.count(said) == 1
    # so is a split (TRL's --dataset_train_split train_sft): the file and a built-in task were read whole, unsaid
    for name in (str(path), "arithmetic"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="r1kit"):
            load_splits(DatasetConfig(name=name, train_split="train_sft"))
        assert f"dataset.train_split 'train_sft' names a split of a hub dataset; {name} is read whole" in caplog.text


def test_a_text_column_beside_its_answer_column_is_told_how_to_name_them(tmp_path: Path) -> None:
    """A notebook's `text` + `target_text` rows were refused with "fix the row or set dataset.on_bad_row=skip", and
    skipping refused every row: the way that works, dataset.columns, was named nowhere."""
    rows = [{"text": f"What is {i} + 1?", "target_text": str(i + 1)} for i in range(6)]
    path = write_rows(tmp_path / "kaggle.json", rows)
    advice = 'name the columns: --dataset.columns "{text: question, target_text: solution}"'
    for on_bad_row in ("error", "skip"):
        with pytest.raises(DatasetError) as raised:
            load_splits(DatasetConfig(name=str(path), on_bad_row=on_bad_row))
        assert advice in str(raised.value) and "on_bad_row=skip" not in str(raised.value)
    # one bad row among rows that read: that row's fault, not the columns'
    good = [{"id": i, "text": f"What is {i}?\n<think>It is {i}.</think><answer>{i}</answer>"} for i in range(4)]
    cut = write_rows(tmp_path / "r1.jsonl", [*good, {"id": 4, "text": "What is 4?\n<think>It is"}])
    with pytest.raises(DatasetError, match=r"fix the row or set dataset.on_bad_row=skip$"):
        load_splits(DatasetConfig(name=str(cut)))
    named = load_splits(DatasetConfig(name=str(path), columns={"text": "question", "target_text": "solution"}))
    assert sorted([*named.train["solution"], *named.test["solution"]], key=int) == [str(i + 1) for i in range(6)]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_local_file_types(suffix: str, tmp_path: Path) -> None:
    rows = [{"question": f"What is {i}+1?", "solution": str(i + 1)} for i in range(20)]
    splits = load_splits(dataset(write_rows(tmp_path / f"data{suffix}", rows), split={"test_size": 0.25, "seed": 0}))
    assert (len(splits.train), len(splits.test)) == (15, 5)


def test_float32_answers_of_a_parquet_file_read_as_written(tmp_path: Path) -> None:
    """A Parquet column of float32 golds read 99.99 as 99.98999786376953: a right answer of 99.99 scored 0, and SFT
    learned to write the long number."""
    import numpy as np

    from r1kit.rewards.functions import get_accuracy_reward

    golds = np.array([99.99, 1234.56, 0.00001, 2.5] * 5, dtype=np.float32)
    path = tmp_path / "f32.parquet"
    pd.DataFrame({"question": [f"q{i}" for i in range(20)], "solution": golds}).to_parquet(path)
    golds = load_eval_rows(dataset(path), whole_file=True)[0]["solution"][:4]
    assert golds == ["99.99", "1234.56", "0.00001", "2.5"]
    right = [f"<think>x</think><answer>{gold}</answer>" for gold in ("99.99", "1234.56", "0.00001", "2.5")]
    assert get_accuracy_reward()(right, solution=golds) == [1.0] * 4


def test_a_text_column_written_with_a_chat_template_asks_its_user_turn(tmp_path: Path) -> None:
    """A `text` from `apply_chat_template` (ChatML, Llama 3, GLM, Alpaca and its variants) before an R1 reply was
    taken whole for the question: SFT asked the template, its system prompt and its tokens under r1kit's own prompt.
    A question that only mentions such markup is asked as written."""
    reply = "<think>6 + 3 = 9</think>\n<answer>9</answer>"
    texts = [
        f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 6 + 3?<|im_end|>\n<|im_start|>assistant\n{reply}",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 6 + 3?<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{reply}<|eot_id|>",
        f"<|user|>\nWhat is 6 + 3?<|assistant|>\n{reply}",
        f"### Instruction:\nWhat is 6 + 3?\n\n### Response:\n{reply}",
        f"### Instruction:\nYou are a math expert.\n\n### Question:\nWhat is 6 + 3?\n\n### Response:\n{reply}",
    ]  # each section before ### Response: is the question's (an instruction and its input, a question's context)
    path = write_rows(tmp_path / "templated.jsonl", [{"text": text} for text in texts])
    rows = load_all_rows(dataset(path))[0]  # every row as read (eval scores a problem once)
    assert list(rows["question"]) == ["What is 6 + 3?"] * 4 + ["You are a math expert.\n\nWhat is 6 + 3?"]
    assert list(rows["solution"]) == ["9"] * 5
    mention = "What does the ### Response: header do in a prompt?"
    write_rows(path, [{"text": f"{mention}\n{reply}"}])
    assert list(load_eval_rows(dataset(path))[0]["question"]) == [mention]


def test_a_json_array_that_does_not_read_names_where(tmp_path: Path) -> None:
    """A trailing comma or a Latin-1 byte in a .json array was "line 1 is not valid JSON; … set on_bad_row=skip", and
    skip then said "none of its 26 lines is a JSON object"; a UTF-16 file (PowerShell's default) was "line 1 must be
    a JSON object, not list"."""
    rows = [{"question": f"What is {i}+1?", "solution": str(i + 1)} for i in range(4)]
    text = json.dumps(rows, indent=2)
    cases = [
        ("trailing.json", (text[:-2] + ",\n]").encode(), r"not valid JSON at line 18, column 1 \(Expecting value\)"),
        (
            "latin1.json",
            text.replace("What", "Wh\xe4t", 1).encode("latin-1"),
            r"not UTF-8 text \(byte 26 is not UTF-8\)",
        ),
        ("utf16.json", text.encode("utf-16"), "UTF-16 or UTF-32 text"),
        ("utf16.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode("utf-16"), "UTF-16 or UTF-32 text"),
    ]
    for name, data, said in cases:
        (tmp_path / name).write_bytes(data)
        for on_bad_row in ("error", "skip"):
            with pytest.raises(DatasetError, match=said):
                load_eval_rows(dataset(tmp_path / name, on_bad_row=on_bad_row))


def test_a_one_column_json_file_pandas_wrote_is_its_rows(tmp_path: Path) -> None:
    """`pd.DataFrame({"messages": ...}).to_json(path)` writes {"messages": {"0": …, "1": …}}: read as one row, refused
    ("field 'messages' must be a non-empty list"); two columns or more were read as rows."""
    turns = [
        [{"role": "user", "content": f"What is {i}+1?"}, {"role": "assistant", "content": str(i + 1)}] for i in range(6)
    ]
    path = tmp_path / "chat.json"
    pd.DataFrame({"messages": turns}).to_json(path)
    assert len(load_eval_rows(dataset(path))[0]) == 6


def test_a_list_or_mapping_gold_is_its_item_or_a_bad_row(tmp_path: Path) -> None:
    """`"solution": ["3"]` became the gold "['3']" (an SFT target of <answer>['3']</answer>), a mapping its Python
    text, which the verifier could not read."""
    path = write_rows(tmp_path / "g.jsonl", [{"question": f"{i} + 2?", "solution": [str(i + 2)]} for i in range(4)])
    assert load_eval_rows(dataset(path))[0]["solution"] == ["2", "3", "4", "5"]
    write_rows(path, [{"question": "1 + 2?", "solution": {"value": "3"}}])
    with pytest.raises(
        DatasetError, match=r"line 1: field 'solution' is a mapping .*a gold answer is text or a number"
    ):
        load_eval_rows(dataset(path))


def test_eval_counts_the_bad_rows_of_the_held_out_file_it_scores(tmp_path: Path) -> None:
    """With dataset.test_split, `r1kit eval` counted the training file's bad rows as skipped from what it scored."""
    good = [{"question": f"What is {i}+1?", "solution": str(i + 1)} for i in range(30)]
    train = write_rows(tmp_path / "train.jsonl", [*good, {"question": "q", "solution": None}])
    held_out = write_rows(tmp_path / "test.jsonl", good[:6])
    rows, skipped = load_eval_rows(dataset(train, test_split=str(held_out), on_bad_row="skip"), whole_file=False)
    assert (len(rows), skipped) == (6, 0)
    write_rows(held_out, [*good[:6], {"question": "q", "solution": None}])
    rows, skipped = load_eval_rows(dataset(train, test_split=str(held_out), on_bad_row="skip"), whole_file=False)
    assert (len(rows), skipped) == (6, 1)


@pytest.mark.parametrize(
    ("fmt", "broken", "field"),
    [
        ("gsm8k", {"question": "q"}, "answer"),
        ("gsm8k", {"question": "q", "answer": "no final line"}, "answer"),
        ("numina", {"problem": "", "solution": "s"}, "problem"),
        ("sharegpt", {"conversations": [{"from": "user", "value": "q"}]}, "conversations"),
        ("messages", {"messages": []}, "messages"),
        ("dolly", {"instruction": "i", "context": ""}, "response"),
        ("r1kit", {"question": "q"}, "solution"),
        ("alpaca", {"instruction": "", "input": ""}, "instruction"),
        ("prompt_completion", {"prompt": "p", "completion": ""}, "completion"),
        ("text", {"text": "Free text, with no question and worked answer in it."}, "text"),
    ],
)
def test_a_bad_row_names_file_row_and_field(fmt: str, broken: dict, field: str, tmp_path: Path) -> None:
    good = {key: value for key, value in SAMPLES[fmt].items()}
    path = write_rows(tmp_path / "data.jsonl", [good, good, {**{k: None for k in good}, **broken}, good])
    with pytest.raises(DatasetError, match=rf"data.jsonl: line 3: field '{field}' .*\({fmt} format\)"):
        load_eval_rows(dataset(path, format=fmt))
    with pytest.raises(DatasetError, match="3 usable rows of 1 problem, too few to hold out"):  # held out by problem
        load_splits(dataset(path, format=fmt, on_bad_row="skip", split={"test_size": 0.34, "seed": 0}))
    rows, skipped_rows = load_all_rows(dataset(path, format=fmt, on_bad_row="skip"))
    assert skipped_rows == 1 and len(rows) == 3
    assert len(load_eval_rows(dataset(path, format=fmt, on_bad_row="skip"))[0]) == 1  # one problem, scored once


def test_a_bad_row_is_named_by_its_place_in_the_file(tmp_path: Path, caplog) -> None:
    """Rows were numbered as read: a JSONL file's bad row after blank or unreadable lines was "row 3" on line 6, a
    CSV file's counted neither its header nor a quoted cell's lines."""
    lines = ['{"question": "a", "solution": "1"}', "", "not json", '{"question": "b", "solution": "2"}', ""]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join([*lines, '{"question": "c"}', '{"question": "d", "solution": "4"}']) + "\n")
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["solution"], skipped) == (["1", "2", "4"], 2)
    assert "line 6: field 'solution' is missing" in caplog.text
    array = tmp_path / "data.json"
    array.write_text(json.dumps([{"question": "a", "solution": "1"}, 7, {"question": "c"}]))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        load_eval_rows(dataset(array, on_bad_row="skip"))  # item 2, not an object, is skipped first
    assert "item 3: field 'solution' is missing" in caplog.text
    table = tmp_path / "data.csv"
    table.write_text('question,solution\n\n"What is\n1 + 1?",2\nq,\n')
    with pytest.raises(DatasetError, match=r"data\.csv: line 5: field 'solution' is missing"):
        load_eval_rows(dataset(table))
    # blank lines before the header, a line of spaces, and a cell longer than the csv module's default limit
    table.write_text(f"\n\nquestion,solution\nq1,{'7' * 200_000}\n  \t\nq2,\nq3,3\n")
    with pytest.raises(DatasetError, match="line 6: field 'solution' is missing"):
        load_eval_rows(dataset(table))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        rows, skipped = load_eval_rows(dataset(table, on_bad_row="skip"))
    assert (len(rows[0]["solution"]), skipped) == (200_000, 1) and "line 6: field 'solution'" in caplog.text
    table.write_text("\n\nquestion,solution\nq1,007\nq2,2.50\n")  # its header past the blank lines: text columns
    assert load_eval_rows(dataset(table))[0]["solution"] == ["007", "2.50"]  # were 7 and 2.5


def test_a_jsonl_file_with_blank_lines_and_a_column_of_mixed_kinds_is_read(tmp_path: Path) -> None:
    """A gold written as a one-item list in a column of text, in a file with a blank line (a trailing one too), failed
    the load: "cannot be read as json: Expected object or value"."""
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "a", "solution": "1"}\n\n{"question": "b", "solution": ["2"]}\n\n')
    assert load_eval_rows(dataset(path))[0]["solution"] == ["1", "2"]


def test_missing_file_unknown_columns_and_offline_hub_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset file not found"):
        load_splits(dataset(tmp_path / "nope.jsonl"))
    with pytest.raises(
        DatasetError, match=r"cannot tell the dataset format from its columns \['x', 'y'\]; set dataset.format"
    ):
        load_splits(dataset(write_rows(tmp_path / "odd.jsonl", [{"x": 1, "y": 2}] * 3)))
    with pytest.raises(DatasetError, match=r"cannot load dataset 'no-such-org/no-such-dataset'.*Offline"):
        load_splits(dataset("no-such-org/no-such-dataset"))


def test_a_hub_datasets_held_out_share_is_said_and_its_test_split_taken_when_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Held-out problems cut from a hub dataset's train split without a word in training (seeds 000 and 003 score
    on its test split), and TRL's --dataset_test_split had no alias. No hub here: its loader answers from rows."""
    from r1kit.config.sources import resolve_config
    from r1kit.data import loading

    asked = []

    def hub(name: str, subset: str | None, split: str):
        asked.append(split)
        return Dataset.from_list([{"question": f"{split} {i} + 1?", "solution": str(i + 1)} for i in range(20)])

    monkeypatch.setattr(loading, "load_dataset", hub)
    monkeypatch.setattr(loading, "offline_if_unreachable", lambda: None)
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        load_splits(dataset("org/set"))
    assert asked == ["train"]
    assert "org/set: the held-out problems are 10% of its 'train' split (dataset.split.test_size), not its own" in (
        caplog.text
    )
    caplog.clear()
    config = resolve_config(overrides=["--dataset_name", "org/set", "--dataset_test_split", "test"], environ={}).config
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        splits = load_splits(config.dataset)
    assert asked == ["train", "train", "test"] and splits.test[0]["question"].startswith("test ")
    assert "not its own test split" not in caplog.text


def test_a_json_file_of_columns_is_read_as_rows(tmp_path: Path) -> None:
    """{"question": [...], "solution": [...]} and pandas' to_json() ({column: {index: value}}) were one row of lists:
    every row bad ("question must be text")."""
    questions, golds = [f"{i} + 1?" for i in range(12)], [str(i + 1) for i in range(12)]
    lists, by_index = tmp_path / "lists.json", tmp_path / "pandas.json"
    lists.write_text(json.dumps({"question": questions, "solution": golds}))
    by_index.write_text(json.dumps({"question": dict(enumerate(questions)), "solution": dict(enumerate(golds))}))
    for path in (lists, by_index):
        rows = load_eval_rows(dataset(path))[0]
        assert rows["question"] == questions and rows["solution"] == golds
    # one conversational row as TRL writes it stays one row (its turns are no columns)
    turns = tmp_path / "turns.json"
    turns.write_text(
        json.dumps(
            {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]}
        )
    )
    assert load_file(turns)[0][0]["prompt"] == [{"role": "user", "content": "Hi"}]


def test_rows_for_each_trainer() -> None:
    rows = load_splits(dataset("arithmetic", synthetic={"num_examples": 20, "seed": 0})).train
    grpo = grpo_rows(rows, "SYSTEM")
    assert grpo.column_names == ["prompt", "solution"]
    assert grpo[0]["prompt"] == [
        {"role": "system", "content": "SYSTEM"},
        {"role": "user", "content": rows[0]["question"]},
    ]
    sft = sft_rows(rows, "SYSTEM")
    assert sft[0]["completion"] == [{"role": "assistant", "content": r1_target(rows[0])}]
    assert sft[0]["completion"][0]["content"].endswith(f"<answer>{rows[0]['solution']}</answer>")


# ------------------------------------------------------------------------------------- rows read as they mean


@pytest.mark.parametrize("task", synthetic.BUILTIN_TASKS)
def test_builtin_held_out_problems_are_not_trained_on_in_other_words(task: str) -> None:
    """The same sum asked with another template ("What is 3 + 17?" / "Compute 3 + 17.") or a word problem with
    another name was a new question: 37 of the 300 held-out arithmetic problems were training problems reworded."""
    splits = load_splits(dataset(task))
    assert len(splits.test) == 300  # the held-out problems are unchanged: training leaves out their twins
    held_out = set(splits.test["reasoning"])
    assert not held_out & set(splits.train["reasoning"])
    # nor is a held-out one-step problem a step of a training solution (53 of 56 held-out level-1 sums were)
    steps = {step for worked in splits.train["reasoning"] for step in worked.splitlines()}
    assert not held_out & steps
    assert len(splits.train) > 2500


def test_chat_content_given_as_text_parts_is_read_and_other_content_is_a_bad_row(tmp_path: Path) -> None:
    """OpenAI-style content parts crashed the load with an AttributeError that `on_bad_row skip` did not catch."""
    parts = [{"type": "text", "text": "What is"}, {"type": "text", "text": "2 + 2?"}]
    reply = [{"type": "text", "text": "4"}]
    rows = [{"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": reply}]}] * 3
    assert load_eval_rows(dataset(write_rows(tmp_path / "parts.jsonl", rows)))[0][0]["question"] == "What is\n2 + 2?"
    good = rows[0]
    image = [{"type": "image", "text": None}]  # nothing to read
    bad = {"messages": [{"role": "user", "content": image}, {"role": "assistant", "content": reply}]}
    path = write_rows(tmp_path / "images.jsonl", [good, bad, good])
    with pytest.raises(DatasetError, match=r"line 2: field 'messages' .*must be text"):
        load_eval_rows(dataset(path))
    rows, skipped = load_all_rows(dataset(path, on_bad_row="skip"))
    assert (len(rows), skipped) == (2, 1)


def test_a_sharegpt_reply_is_the_one_after_the_question(tmp_path: Path) -> None:
    """A conversation that opens with the assistant's greeting trained on the greeting and lost the gold answer."""
    turns = [
        {"from": "gpt", "value": "Hi! How can I help?"},
        {"from": "human", "value": "What is 2+2?"},
        {"from": "gpt", "value": "It is \\boxed{4}."},
    ]
    row = load_eval_rows(dataset(write_rows(tmp_path / "greeting.jsonl", [{"conversations": turns}] * 2)))[0][0]
    assert (row["question"], row["solution"], row["response"]) == ("What is 2+2?", "4", "It is \\boxed{4}.")


def test_a_builtin_task_stays_built_in_beside_a_folder_of_its_name(tmp_path: Path, monkeypatch) -> None:
    """Run from a folder holding `arithmetic/`, `r1kit eval --data arithmetic` failed: "arithmetic is a folder"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "arithmetic").mkdir()
    rows, skipped = load_eval_rows(DatasetConfig(name="arithmetic", max_test_samples=5))
    assert len(rows) == 5 and skipped == 0


def test_csv_answers_that_pandas_reads_as_missing_are_kept(tmp_path: Path) -> None:
    """Gold answers "None", "NA" and "null" in a CSV were read as missing: under skip those rows were dropped."""
    path = tmp_path / "answers.csv"
    path.write_text("question,solution\nWhich set is empty?,None\nAbbreviate not applicable.,NA\nNull in JS?,null\n")
    rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["solution"], skipped) == (["None", "NA", "null"], 0)


def test_sharegpt_rows_keep_their_thinking_without_a_boxed_answer(tmp_path: Path) -> None:
    """Bespoke-Stratos' code and puzzle rows (a thought, no \\boxed{}) trained a reply without its thought; and
    {role, content} turns in a `conversations` column (Unsloth's standardize_sharegpt) were "no user turn"."""
    reply = "<|begin_of_thought|>Return one.<|end_of_thought|><|begin_of_solution|>def f(): return 1<|end_of_solution|>"
    turns = [{"role": "user", "content": "Write f."}, {"role": "assistant", "content": reply}]
    rows = load_eval_rows(dataset(write_rows(tmp_path / "code.jsonl", [{"conversations": turns}] * 2)))[0]
    assert sft_target(rows[0]) == "<think>\nReturn one.\n</think>\n<answer>def f(): return 1</answer>"


def test_a_bare_boxed_or_unboxed_solution_is_no_worked_solution(tmp_path: Path, caplog) -> None:
    """`$\\boxed{5}$` alone was a worked solution (SFT thought "$\\boxed{5}$"), and an unboxed NuminaMath
    solution was pasted whole into <answer>."""
    rows = [
        {"problem": "2 + 3?", "solution": "$\\boxed{5}$"},
        {"problem": "2x = 6?", "solution": "Halve both sides: x = 3."},
        {"problem": "1 + 1?", "solution": "One and one make \\boxed{2}."},
    ]
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        loaded = load_eval_rows(dataset(write_rows(tmp_path / "numina.jsonl", rows)))[0]
    assert "1 of 3 NuminaMath rows have no \\boxed{} answer" in caplog.text  # the bare box is a gold answer
    assert [sft_target(row) for row in loaded] == [
        None,
        None,
        "<think>\nOne and one make \\boxed{2}.\n</think>\n<answer>2</answer>",
    ]
    assert loaded["solution"] == ["5", "Halve both sides: x = 3.", "2"]  # still gold answers for GRPO and eval


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_whole_numbers_read_as_floats_stay_whole(suffix: str, tmp_path: Path) -> None:
    """One blank cell (or one 2.5) makes the column float: gold 10 became "10.0", the SFT target <answer>10.0</answer>."""
    rows = [{"question": f"What is {i} + {i}?", "solution": 2 * i} for i in range(6)]
    rows += [{"question": "Half of 5?", "solution": 2.5}, {"question": "Blank?", "solution": None}]
    loaded, skipped = load_eval_rows(dataset(write_rows(tmp_path / f"data{suffix}", rows), on_bad_row="skip"))
    assert skipped == 1
    assert loaded["solution"] == ["0", "2", "4", "6", "8", "10", "2.5"]


def test_a_numina_style_answer_column_is_the_gold(tmp_path: Path) -> None:
    """MATH-500 / OpenR1-Math rows: {problem, solution, answer}; a solution without \\boxed{} made the whole solution
    the gold, whose last number ("1" of "1/2 … 1 half") the verifier read."""
    rows = [{"problem": "Half of one?", "solution": "One half, that is 1 of 2 equal parts.", "answer": "\\frac{1}{2}"}]
    row = load_eval_rows(dataset(write_rows(tmp_path / "math.jsonl", rows * 2)))[0][0]
    assert (row["solution"], row["reasoning"]) == ("\\frac{1}{2}", "One half, that is 1 of 2 equal parts.")


def test_gsm8k_drops_thousands_separators_only(tmp_path: Path) -> None:
    rows = [
        {"question": "Big?", "answer": "steps\n#### 1,234,567"},
        {"question": "Decimal comma?", "answer": "steps\n#### 3,5"},
    ]
    loaded = load_eval_rows(dataset(write_rows(tmp_path / "gsm.jsonl", rows)))[0]
    assert loaded["solution"] == ["1234567", "3,5"]  # was "35"


def test_too_few_usable_rows_to_hold_some_out_is_a_dataset_error(tmp_path: Path) -> None:
    """One usable row gave scikit-style "With n_samples=1 … the train set will be empty", reported as a bug."""
    path = write_rows(tmp_path / "one.jsonl", [{"question": "2 + 2?", "solution": "4"}, {"question": "3?"}])
    with pytest.raises(DatasetError, match=r"one.jsonl: 1 usable row.*dataset.test_split"):
        load_splits(dataset(path, on_bad_row="skip"))


def test_a_file_the_library_cannot_read_names_the_underlying_cause() -> None:
    from r1kit.data.loading import innermost_cause

    try:
        try:
            raise ValueError("Failed to parse string: '1/2' as a scalar of type int64")
        except ValueError as inner:
            raise RuntimeError("An error occurred while generating the dataset") from inner
    except RuntimeError as outer:
        assert innermost_cause(outer) == "Failed to parse string: '1/2' as a scalar of type int64"


def test_every_format_the_config_names_has_an_adapter() -> None:
    from typing import get_args

    from r1kit.config.schema import DatasetConfig
    from r1kit.data.adapters import ADAPTERS

    assert set(get_args(DatasetConfig.model_fields["format"].annotation)) == {"auto", *ADAPTERS}


def test_numina_placeholder_answers_are_no_gold(tmp_path: Path) -> None:
    """NuminaMath-1.5 writes `proof` or `notfound` in its answer column: they were the gold (GRPO rewarded the
    word "proof", SFT learned <answer>proof</answer>)."""
    rows = [{"problem": f"Show that {n} + {n} is even.", "solution": "Proof: 2n is even.", "answer": "proof"}
            for n in range(4)]  # fmt: skip
    rows += [{"problem": f"What is {n} + 1?", "solution": f"It is {n + 1}.", "answer": str(n + 1)} for n in range(20)]
    rows.append({"problem": "Find x.", "solution": "We could not.", "answer": "notfound"})
    path = tmp_path / "numina.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    splits = load_splits(DatasetConfig(name=str(path), on_bad_row="skip"))
    assert splits.skipped_rows == 5
    assert all(gold not in ("proof", "notfound") for gold in [*splits.train["solution"], *splits.test["solution"]])


def test_a_sharegpt_gold_is_never_a_guess_boxed_in_the_thinking() -> None:
    from r1kit.data.adapters import sharegpt_row

    def reply(text: str) -> dict:
        return sharegpt_row({"conversations": [{"from": "human", "value": "2 + 3?"}, {"from": "gpt", "value": text}]})

    r1_style = reply("<think>Maybe \\boxed{4}? No: 2 + 3 = 5.</think> The answer is \\boxed{5}.")
    assert (r1_style["solution"], r1_style["reasoning"]) == ("5", "Maybe \\boxed{4}? No: 2 + 3 = 5.")
    assert reply("<think>Maybe \\boxed{4}? No: 2 + 3 = 5.</think> The answer is 5.")["solution"] is None
    cut = reply("<|begin_of_thought|>Guess \\boxed{4}; no.<|end_of_thought|><|begin_of_solution|>It is 5.")
    assert cut["solution"] is None and "<|" not in cut["response"]
    broken = "<think>Maybe \\boxed{4}? No.</think> So: <answer>5</answer>"  # R1's form broken: a plain reply
    assert (reply(broken)["solution"], reply(broken)["response"]) == (None, broken)


def test_a_held_out_file_of_a_built_in_tasks_problems_leaves_their_twins_out_of_training(tmp_path: Path) -> None:
    """Only the carved-out held-out split left out the training rows with a held-out problem's arithmetic; with
    dataset.test_split a file of the task's own problems had 39 of 200 trained on in other words."""
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps(row) + "\n" for row in synthetic.generate("arithmetic", 200, 1)))
    cfg = DatasetConfig(name="arithmetic", test_split=str(held))
    cfg.synthetic.num_examples = 2000
    splits = load_splits(cfg)
    assert not set(splits.train["reasoning"]) & set(splits.test["reasoning"])
    assert len(splits.train) < 2000


def test_boxed_answers_as_math_writes_them_and_folders_left_by_a_reused_pid(tmp_path: Path) -> None:
    import os

    from r1kit.atomic import build_complete
    from r1kit.rewards.text import last_boxed
    from r1kit.stats import t95

    assert [last_boxed(t) for t in ("Hence $\\boxed 5$.", "\\boxed {7}", "\\fbox{8}")] == ["5", "7", "8"]
    # a build left aside by a killed process of this pid (pids repeat in a container) made every rebuild fail
    dest = tmp_path / "model"
    build_complete(dest, lambda folder: (folder / "a").write_text("1"), {})
    (leftover := tmp_path / f".model.old-{os.getpid()}").mkdir()
    (leftover / "x").write_text("old")
    build_complete(dest, lambda folder: (folder / "a").write_text("2"), {})
    assert (dest / "a").read_text() == "2"
    with pytest.raises(ValueError):  # no spread to estimate: it read the table's last entry
        t95(0)


def test_a_text_row_with_a_long_run_of_blank_lines_reads_at_once() -> None:
    """The dialogue's pattern cost cubic time in a run of blank lines: 800 of them took 12 s a row (and loading has
    no time limit). A run reads as one blank line; the next line keeps its indentation."""
    import time

    from r1kit.data.adapters import text_row

    started = time.perf_counter()
    row = text_row({"text": "User: Code?\n\nAssistant: Here:" + " \n" * 3000 + "    x = 1"})
    assert time.perf_counter() - started < 5.0  # a hang guard, not a speed target: 3,000 lines took hours
    assert (row["question"], row["response"]) == ("Code?", "Here:\n\n\n    x = 1")  # at most two blank lines
    # so a run of white space in a line, its time square in its length (30,000 spaces took 12 s a row, twice a row;
    # NBSP and U+3000 as long), and many shorter runs: read as written, at once
    started = time.perf_counter()
    text = "User: Hi" + " " * 30_000 + "there\n\nAssistant: Hello" + "\u00a0" * 30_000 + "!" + "\u3000" * 30_000
    row = text_row({"text": text})
    padded = text_row({"text": "User: " + "cell" + " " * 256 + "cell" * 800 + "\n\nAssistant: ok"})
    assert time.perf_counter() - started < 5.0  # a hang guard
    assert (row["question"], row["response"]) == ("Hi" + " " * 30_000 + "there", "Hello" + "\u00a0" * 30_000 + "!")
    assert padded["response"] == "ok"
    code = "def f(x):\n" + "".join(" " * (4 * depth) + "if x:\n" for depth in range(1, 7)) + " " * 28 + "return x"
    assert text_row({"text": f"User: Code?\n\nAssistant: {code}"})["response"] == code  # indentation kept


def test_an_answer_column_beside_a_worked_solution_is_the_gold(tmp_path: Path) -> None:
    """{question, solution, answer}: the worked solution was taken whole as the gold (its last number, "1", read as
    the answer) and the answer column ignored, without a word."""
    rows = [
        {"question": "Tom has 3 apples and gets 1. How many?", "solution": "3 + 1 = 4 apples, 1 more.", "answer": 4}
    ]
    row = load_eval_rows(dataset(write_rows(tmp_path / "qsa.jsonl", rows * 2)))[0][0]
    assert (row["solution"], row["reasoning"]) == ("4", "3 + 1 = 4 apples, 1 more.")
    # the shorter of the two was the gold: a LaTeX answer longer than its brief solution was lost; and the columns the
    # other way round (the worked text in `answer`) lost the worked text
    rows = [
        {
            "question": "Solve x^2-x-6>0.",
            "solution": "Factor: (x-3)(x+2)>0.",
            "answer": "(-\\infty,-2)\\cup(3,\\infty)",
        },
        {"question": "Tom has 3 apples and gets 1?", "solution": "4", "answer": "3 + 1 = 4 apples, 1 more."},
    ]
    read = load_eval_rows(dataset(write_rows(tmp_path / "qsa.jsonl", rows)))[0]
    assert read["solution"] == ["(-\\infty,-2)\\cup(3,\\infty)", "4"]
    assert read["reasoning"] == ["Factor: (x-3)(x+2)>0.", "3 + 1 = 4 apples, 1 more."]


def test_a_gold_column_beside_chat_turns_or_without_a_solution_is_read(tmp_path: Path) -> None:
    """A chat file with a `solution` or `answer` column (turns for SFT, a gold for RL) lost its gold: GRPO refused it
    as "no row has a gold answer"; a NuminaMath row with its `answer` and an empty `solution` was a bad row."""
    turns = [{"role": "user", "content": "What is 6 + 2?"}, {"role": "assistant", "content": "6 plus 2 is 8."}]
    rows = [{"question": "What is 6 + 2?", "solution": "8", "messages": turns}, {"messages": turns, "answer": 8}]
    rows.append({"prompt": "What is 6 + 2?", "completion": "It is 8.", "solution": 8})
    read = [load_eval_rows(dataset(write_rows(tmp_path / f"chat{i}.jsonl", [row])))[0][0] for i, row in enumerate(rows)]
    assert [(row["solution"], row["response"]) for row in read] == [("8", "6 plus 2 is 8.")] * 2 + [("8", "It is 8.")]
    aliases = {"messages": turns, "answer": {"value": "8", "aliases": ["eight"]}}  # not one gold: the row as it was
    assert load_eval_rows(dataset(write_rows(tmp_path / "aliases.jsonl", [aliases])))[0][0]["solution"] is None
    numina = [{"problem": "What is 2 + 2?", "solution": "", "answer": "4"}, {"problem": "1 + 1?", "answer": 2}]
    read = load_eval_rows(dataset(write_rows(tmp_path / "numina.jsonl", numina), format="numina"))[0]
    assert (read["solution"], read["reasoning"]) == (["4", "2"], [None, None])


def test_a_worked_solution_ending_in_its_answer_is_split_into_gold_and_reasoning(tmp_path: Path) -> None:
    """{question, solution} whose solution ends in `#### 72` or \\boxed{42}: the whole text was the gold and no row
    had a worked solution, so `r1kit run` refused the file for SFT ("no row has a worked solution")."""
    from r1kit.data.loading import has_sft_rows

    rows = [
        {"question": "How many clips?", "solution": "In May she sold 48/2 = <<48/2=24>>24.\n48 + 24 = 72.\n#### 1,072"},
        {"question": "What is 40 + 2?", "solution": "We add 40 and 2 to get $\\boxed{42}$."},
        {"question": "What is 2 + 2?", "solution": "4"},  # a final answer alone stays one
        {"question": "A million?", "solution": "10^6\n#### 1,000,000"},  # the steps shorter than the answer
    ]
    loaded = load_eval_rows(dataset(write_rows(tmp_path / "worked.jsonl", rows)))[0]
    assert loaded["solution"] == ["1072", "42", "4", "1000000"]
    assert loaded["reasoning"] == [
        "In May she sold 48/2 = 24.\n48 + 24 = 72.",
        "We add 40 and 2 to get $\\boxed{42}$.",
        None,
        "10^6",
    ]
    assert has_sft_rows(loaded)
    # the worked text beside an `answer` column loses its calculator notes and `####` line too (both were the
    # reasoning SFT taught), and a markdown `#### Final Answer: \\boxed{5}` heading gives its boxed answer in every
    # format that reads GSM8K's line (it was the gold, taught inside <answer>)
    beside = {"question": "q", "solution": "48/2 = <<48/2=24>>24 clips.\n#### 24", "answer": "24"}
    heading = {"question": "What is 2 + 3?", "solution": "2 + 3 = 5.\n#### Final Answer: $\\boxed{5}$"}
    labelled = {"question": "What is 70 + 2?", "solution": "70 + 2 = 72.\n#### Answer: 72"}  # the words after it
    loaded = load_eval_rows(dataset(write_rows(tmp_path / "beside.jsonl", [beside, heading, labelled])))[0]
    assert loaded["solution"] == ["24", "5", "72"]
    assert loaded["reasoning"] == ["48/2 = 24 clips.", "2 + 3 = 5.", "70 + 2 = 72."]
    gsm8k = [{"question": "What is 2 + 3?", "answer": heading["solution"]}]
    loaded = load_eval_rows(dataset(write_rows(tmp_path / "gsm8k.jsonl", gsm8k), format="gsm8k"))[0]
    assert (loaded["solution"], loaded["reasoning"]) == (["5"], ["2 + 3 = 5."])


def test_a_held_out_files_sample_is_drawn_and_its_float_levels_are_whole(tmp_path: Path) -> None:
    """dataset.max_test_samples took a held-out file's first rows: a file sorted by level held out level 1 alone. And a
    level column with one blank cell is float: its groups were "1.0", "2.0", apart from another file's "1", "2"."""
    rows = [
        {"question": f"L{level} q{i}", "solution": str(i), "level": level} for level in (1, 2, 3) for i in range(10)
    ]
    path = write_rows(tmp_path / "sorted.jsonl", rows)
    scored = load_eval_rows(dataset(path, max_test_samples=10))[0]  # a file named to score: its first rows
    assert scored["question"] == [f"L1 q{i}" for i in range(10)]
    held_out = load_splits(
        dataset(
            write_rows(tmp_path / "train.jsonl", [{**row, "question": f"T{row['question']}"} for row in rows]),
            test_split=str(path),
            max_test_samples=10,
        )
    )
    assert len(held_out.test) == 10 and len(set(held_out.test["group"])) > 1
    floats = tmp_path / "levels.csv"
    floats.write_text("question,solution,level\nq1,1,1\nq2,2,\nq3,3,2\n")
    assert load_eval_rows(dataset(floats))[0]["group"] == ["1", None, "2"]


def test_an_empty_array_a_table_of_no_rows_and_rows_nested_under_one_key(tmp_path: Path) -> None:
    """`[]` was "only blank lines", a Parquet table of no rows the library's batch size error, and `{"data": [rows]}`
    (the datasets library's `field="data"`) one row of a column `data`, of no format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(DatasetError, match=r"empty.json: holds no rows \(an empty array\)"):
        load_eval_rows(dataset(empty))
    table = tmp_path / "none.parquet"
    pq.write_table(pa.table({"question": pa.array([], pa.string()), "solution": pa.array([], pa.string())}), table)
    with pytest.raises(DatasetError, match=r"none\.parquet: holds no rows"):
        load_eval_rows(dataset(table))
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"data": [{"question": f"{i} + 1?", "solution": str(i + 1)} for i in range(3)]}))
    assert load_eval_rows(dataset(nested))[0]["solution"] == ["1", "2", "3"]


def test_a_csv_row_with_an_extra_field_is_skipped_and_named_under_skip(tmp_path: Path, caplog) -> None:
    """An unquoted comma in a question (`What is 1,000 + 1?,1001`) stopped the load under on_bad_row skip too."""
    path = tmp_path / "commas.csv"
    path.write_text('question,solution\nWhat is 1 + 1?,2\nWhat is 1,000 + 1?,1001\n"What is\n2 + 2?",4\nq4,\n')
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["solution"], skipped) == (["2", "4"], 2)  # the wide row and the one without a gold
    assert "1 row with more fields than the header skipped (dataset.on_bad_row skip): line 3" in caplog.text
    with pytest.raises(
        DatasetError, match=r"line 3 has 3 fields, the header 2 \(an unquoted comma\?\).*on_bad_row=skip"
    ):
        load_eval_rows(dataset(path))  # pandas' words counted records ("line 3" of a quoted cell's lines: wrong)
    path.write_text('question,solution\n"What is\n2 + 2?",4\nWhat is 1,000 + 1?,1001\n')
    with pytest.raises(DatasetError, match="line 4 has 3 fields"):
        load_eval_rows(dataset(path))
    # row names in a first column without a header (R's write.table): pandas' index, no bad rows (all 4 were
    # skipped as "more fields than the header", and pandas then read every one of them)
    path.write_text("question,solution\n0,What is 2+2?,4\n1,What, is 3+3?,6\n2,What is 4+4?,8\n")
    rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["question"], skipped) == (["What is 2+2?", "What is 4+4?"], 1)


def test_a_wider_first_csv_row_is_a_bad_row_and_commas_at_row_ends_are_dropped(tmp_path: Path) -> None:
    """A first row one field wider than the header (an unquoted comma in its question) made pandas read the first
    column as the index of every row: each question became its gold, without a word, under on_bad_row error too."""
    path = tmp_path / "shifted.csv"
    path.write_text("question,solution,level\nAdd 1,000 and 2.,1002,1\nWhat is 3+3?,6,1\nWhat is 4+4?,8,2\n")
    with pytest.raises(DatasetError, match=r"line 2 has 4 fields, the header 3 \(an unquoted comma\?\)"):
        load_eval_rows(dataset(path))
    rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["question"], rows["solution"], skipped) == (["What is 3+3?", "What is 4+4?"], ["6", "8"], 1)
    # a comma at the end of every row (a blank cell more) is read without it (its rows were shifted as row names);
    # a row with more fields still is a bad row
    path.write_text("question,solution,level\nWhat is 2+2?,4,1,\nWhat is 1,000 + 1?,1001,1,\nWhat is 3+3?,6,2,\n")
    rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["question"], rows["solution"], rows["group"]) == (
        ["What is 2+2?", "What is 3+3?"],
        ["4", "6"],
        ["1", "2"],
    )
    assert skipped == 1
    # on some rows only it is a bad row, said so
    path.write_text("question,solution\nWhat is 2+2?,4\nWhat is 3+3?,6,\nWhat is 4+4?,8\n")
    with pytest.raises(DatasetError, match=r"line 3 has 3 fields, the header 2 \(a comma at its end\?\)"):
        load_eval_rows(dataset(path))
    rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["question"], skipped) == (["What is 2+2?", "What is 4+4?"], 1)
    # R's row names, one row's gold blank: row names still (the blank last cell was taken for a comma at its end)
    path.write_text('question,solution\n"1","What is 2+2?","4"\n"2","What is 3+3?",""\n"3","What is 4+4?","8"\n')
    rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["question"], rows["solution"], skipped) == (["What is 2+2?", "What is 4+4?"], ["4", "8"], 1)
    # and with a last column blank in every row, as R quotes it (it was read as commas at the rows' ends, shifted)
    path.write_text('question,solution,note\n"1","What is 2+2?","4",""\n"2","What is 3+3?","6",""\n')
    assert load_eval_rows(dataset(path))[0]["question"] == ["What is 2+2?", "What is 3+3?"]
    # every row wider, most ending in a comma: commas at the rows' ends with a cell more in one, or R's row names
    # with blank cells unquoted? Either reading shifts the other's rows: refused, said so (one guess read rows
    # shifted without a word); and so is an id column (1, 2, …) with a comma at every row's end, which R's numbered
    # row names with a blank last column write alike
    ambiguous = (
        "question,solution\nWhat is 2+2?,4, \nWhat is 3+3?,6,\nWhat is 4+4?,8,oops\n",
        "id,question,solution\n1,What is 2+2?,4,\n2,What is 3+3?,6,\n",
    )
    for text in ambiguous:
        path.write_text(text)
        with pytest.raises(DatasetError, match=r"stray commas at the rows' ends .* or row names in a first column"):
            load_eval_rows(dataset(path, on_bad_row="skip"))
    # R's row names of words, unquoted, a few golds blank (their lines end in a comma): row names
    path.write_text("question,solution\nq1,What is 2+2?,4\nq2,What is 3+3?,\nq3,What is 4+4?,8\n")
    assert load_eval_rows(dataset(path, on_bad_row="skip"))[0]["question"] == ["What is 2+2?", "What is 4+4?"]
    # row names 1, 2, … written without quotes, one gold blank (its line ends in a comma), and a space after every
    # row's comma: read as they are
    path.write_text("question,solution\n1,What is 2+2?,4\n2,What is 3+3?,\n3,What is 4+4?,8\n")
    rows, skipped = load_eval_rows(dataset(path, on_bad_row="skip"))
    assert (rows["question"], skipped) == (["What is 2+2?", "What is 4+4?"], 1)  # the one without a gold
    path.write_text("question,solution\nWhat is 2+2?,4, \nWhat is 3+3?,6, \n")
    assert load_eval_rows(dataset(path))[0]["solution"] == ["4", "6"]


def test_a_prompt_whose_messages_a_table_printed_as_text_is_refused(tmp_path: Path) -> None:
    """open-r1-style {prompt: messages, solution} rows saved by pandas' to_csv: the printed list was the question."""
    path = tmp_path / "printed.csv"
    messages = [{"role": "system", "content": "Think first."}, {"role": "user", "content": "What is 1+1?"}]
    pd.DataFrame({"prompt": [messages] * 2, "solution": ["2"] * 2}).to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"line 2: field 'prompt' holds chat messages printed as text"):
        load_eval_rows(dataset(path))
    # through the datasets library (its lists print their turns without commas), and with a key more in a turn
    Dataset.from_list([{"prompt": messages, "solution": "2"}] * 2).to_pandas().to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"line 2: field 'prompt' holds chat messages printed as text"):
        load_eval_rows(dataset(path))
    pd.DataFrame({"prompt": [[{**messages[1], "tool_calls": None}]] * 2, "solution": ["2"] * 2}).to_csv(
        path, index=False
    )
    with pytest.raises(DatasetError, match=r"line 2: field 'prompt' holds chat messages printed as text"):
        load_eval_rows(dataset(path))
    # a tool call through the datasets library (numpy prints it as `array([...], dtype=object)`), short turns
    called = [messages[1], {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]}]
    short = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    for turns in (called, short):
        Dataset.from_list([{"prompt": turns, "solution": "2"}] * 2).to_pandas().to_csv(path, index=False)
        with pytest.raises(DatasetError, match=r"line 2: field 'prompt' holds chat messages printed as text"):
            load_eval_rows(dataset(path))


def test_text_golds_beside_lists_or_booleans_in_a_column_are_read_as_written(tmp_path: Path) -> None:
    """The datasets library reads a column mixing text with lists or true/false as JSON and decoded its texts: "007"
    was 7, "2.50" 2.5, "true" True, and the text "[1, 2]" a list (refused as a list gold)."""
    path = tmp_path / "mixed.jsonl"
    golds = ["007", "2.50", "true", ["3"], "[1, 2]", True]
    path.write_text("".join(json.dumps({"question": f"q{i}", "solution": gold}) + "\n" for i, gold in enumerate(golds)))
    rows, _ = load_eval_rows(dataset(path))
    assert rows["solution"] == ["007", "2.50", "true", "3", "[1, 2]", "True"]


def test_a_json_array_saved_as_jsonl_is_read_as_rows(tmp_path: Path) -> None:
    """json.dump of a list of rows into train.jsonl (which the datasets library reads) was "line 1 must be a JSON
    object, not list; … set dataset.on_bad_row=skip", and under skip an indented one had "none of its lines"."""
    rows = [{"question": f"What is {i} + 1?", "solution": str(i + 1)} for i in range(3)]
    for indent in (None, 2):
        path = tmp_path / f"array{indent}.jsonl"
        path.write_text(json.dumps(rows, indent=indent))
        assert load_eval_rows(dataset(path))[0]["solution"] == ["1", "2", "3"]
    path.write_text("[1, 2]\n[3, 4]\n")  # lines that are arrays: bad lines, as before
    with pytest.raises(DatasetError, match="line 1 must be a JSON object, not list"):
        load_eval_rows(dataset(path))


@pytest.mark.parametrize(
    "row",
    [
        {"instruction": "What is 2 + 3?", "input": "", "output": "<think>2 + 3 = 5</think><answer>5</answer>"},
        {"instruction": "What is 2 + 3?", "context": "", "response": "<think>2 + 3 = 5</think><answer>5</answer>"},
    ],
)
def test_an_instruction_rows_r1_form_reply_is_a_worked_solution_with_its_gold(tmp_path: Path, row: dict) -> None:
    """Alpaca and Dolly rows of R1-distilled data had no gold (`r1kit grpo` refused the file) where the same replies
    as chat messages had theirs."""
    loaded = load_all_rows(dataset(write_rows(tmp_path / "r1.jsonl", [row] * 2)))[0]
    assert (loaded["solution"], loaded["reasoning"]) == (["5", "5"], ["2 + 3 = 5", "2 + 3 = 5"])
    # an R1-distill reply (its thinking, then prose boxing the answer) too
    distilled = {
        key: "<think>2 + 3 = 5</think>\nSo \\boxed{5}." if "<think>" in str(v) else v for key, v in row.items()
    }
    assert load_all_rows(dataset(write_rows(tmp_path / "distilled.jsonl", [distilled] * 2)))[0]["solution"] == [
        "5",
        "5",
    ]
    # a reply thinking without its answer block (an end token after it at most) stays the reply it is (not an R1
    # reply with an empty answer)
    thinking = "<think>Not sure.</think>\n<|im_end|>"
    unanswered = {key: thinking if "<think>" in str(value) else value for key, value in row.items()}
    loaded = load_all_rows(dataset(write_rows(tmp_path / "think.jsonl", [unanswered] * 2)))[0]
    assert (loaded["solution"], loaded["response"]) == ([None, None], [thinking, thinking])


def test_a_replys_end_tokens_and_bespoke_markers_are_read_where_they_belong() -> None:
    """Only end tokens at a reply's end are no answer (`<s>old</s>` and `<|im_start|>` inside an answer were cut
    out of it); a reply of Bespoke's solution block alone keeps its gold (it was read as a plain reply)."""
    from r1kit.data.adapters import messages_row

    def read(reply: str) -> dict:
        return messages_row({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}]})

    assert read("<think>t</think>\nWrite <s>old</s> new.<|im_end|>")["response"].count("<s>old</s> new.") == 1
    assert read("<think>t</think>\n<|im_end|>")["response"] == "<think>t</think>\n<|im_end|>"
    bespoke = read("<|begin_of_solution|>2 + 3 = \\boxed{5}<|end_of_solution|>")
    assert bespoke["solution"] == "5"
    after_thinking = read("<think>2 + 3 = 5</think>\n<|begin_of_solution|>So \\boxed{5}<|end_of_solution|>")
    assert (after_thinking["solution"], after_thinking["response"]) == ("5", "So \\boxed{5}")
    assert read("Bespoke wraps answers in <|begin_of_solution|> tags.")["solution"] is None


def test_a_rewritten_copy_of_a_file_leaves_nothing_in_the_datasets_cache(tmp_path: Path, monkeypatch) -> None:
    """A JSON-lines file read from a rewritten copy (a bad line skipped, golds of mixed types) was cached by the
    datasets library under the copy's new path each time: every command added a copy of the whole file to
    ~/.cache/huggingface, never reused nor removed."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    path = tmp_path / "mixed.jsonl"
    rows = [{"question": f"What is {i} + 1?", "solution": i + 1 if i % 2 else str(i + 1)} for i in range(40)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "not json\n")
    for _ in range(2):
        loaded, skipped = load_all_rows(dataset(path, on_bad_row="skip"))
        assert (len(loaded), skipped, loaded["solution"][:2]) == (40, 1, ["1", "2"])
    assert not list((tmp_path / "hf").rglob("*.arrow"))


def test_a_json_file_of_rows_by_number_is_read_as_rows(tmp_path: Path) -> None:
    """pandas' `to_json(orient="index")` ({row number: row}) was read transposed: the rows' numbers taken for
    columns, and refused as a format not told (a 2,714-character message naming every number)."""
    frame = pd.DataFrame({"question": [f"What is {i} + 1?" for i in range(12)], "solution": [i + 1 for i in range(12)]})
    path = tmp_path / "by_row.json"
    frame.to_json(path, orient="index")
    rows = load_all_rows(dataset(path))[0]
    assert rows["question"] == list(frame["question"]) and rows["solution"] == [str(i + 1) for i in range(12)]
