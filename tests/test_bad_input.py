"""Bad input through the real command line: one clear line naming the culprit, exit 2 (config) or 1 (anything
else), no traceback; and a failed start never blocks the corrected command."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from r1kit.cli import main
from r1kit.config.sources import ConfigError, resolve_config
from r1kit.runs import RunDir, RunDirError, leave_run_folder, open_run
from tests.conftest import REPO, r1kit_cli


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`r1kit ARGS` in this process: (exit code, stderr)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(handler)  # bound to an earlier test's captured stderr; main() adds one for this one
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_one_line(stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("r1kit:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------------------------------------ config files


def test_a_folder_or_a_binary_file_as_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, "config", "show", "--config", str(tmp_path))
    assert code == 2
    assert_one_line(err, str(tmp_path), "is a folder")

    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    code, err = cli(capsys, "config", "show", "--config", str(binary))
    assert code == 2
    assert_one_line(err, str(binary), "not a text file")


@pytest.mark.parametrize("profiles", ["profiles: {mine: [1, 2]}", "profiles: [mine]", "profiles: {mine: 3}"])
def test_profiles_of_the_wrong_shape(profiles: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(profiles + "\n")
    code, err = cli(capsys, "config", "show", "--config", str(config), "--profile", "mine")
    assert code == 2
    assert_one_line(err, str(config), "profiles")


# ------------------------------------------------------------------------------------- values that fail late


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--training.optimization.learning_rate", "inf"], "training.optimization.learning_rate"),
        (["--learning_rate", "nan"], "training.optimization.learning_rate"),
        (["--sft.optimization.learning_rate", "-inf"], "sft.optimization.learning_rate"),
        (["--rewards.accuracy.weight", "inf"], "rewards.accuracy.weight"),
        (["--grpo.temperature", "nan"], "grpo.temperature"),
    ],
)
def test_non_finite_numbers_are_refused(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, "config", "show", *args)
    assert code == 2
    assert_one_line(err, needle, "finite")


def test_overlong_against_the_completion_limit_is_checked_up_front(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--rewards.functions", "[accuracy, overlong]", "--grpo.max_completion_length", "4"]
    code, err = cli(capsys, "config", "show", *args)
    assert code == 2
    assert_one_line(err, "rewards.overlong.soft_cache (16)", "grpo.max_completion_length = 4")
    code, err = cli(capsys, "config", "show", *args, "--rewards.overlong.soft_cache", "2")
    assert code == 0, err
    # an explicit overlong.max_length is the limit that counts
    code, err = cli(capsys, "config", "show", *args, "--rewards.overlong.max_length", "8")
    assert code == 2
    assert_one_line(err, "rewards.overlong.max_length = 8")
    # RLOO and PPO build it with their own limits: it failed only as the stage started; a run that has no such
    # stage is not held to their limits
    overlong = ["--rewards.functions", "[accuracy, overlong]"]
    for command, flag in (("rloo", "--rloo.max_completion_length"), ("ppo", "--ppo.max_new_tokens")):
        code, err = cli(capsys, command, "--profile", "test", *overlong, flag, "3")  # the profile's soft_cache: 4
        assert code == 2
        assert_one_line(err, "rewards.overlong.soft_cache (4)", f"{flag[2:]} = 3")
        code, err = cli(capsys, "config", "show", *overlong, flag, "12")
        assert code == 0, err
        # and run alone, it is not held to GRPO's limit, which it does not use
        grpo_short = [*overlong, "--grpo.max_completion_length", "12"]
        with pytest.raises(ConfigError, match=r"grpo.max_completion_length = 12"):
            resolve_config(overrides=grpo_short, environ={}, command="grpo")
        assert (
            resolve_config(overrides=grpo_short, environ={}, command=command).config.rewards.overlong.soft_cache == 16
        )


def test_dynamic_sampling_with_batch_scaled_rewards_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A replacement group's advantages were scaled by its own retry batch's spread, ~100x those it joined."""
    code, err = cli(capsys, "config", "show", "--dynamic_sampling.max_retries", "2", "--grpo.scale_rewards", "batch")
    assert code == 2
    assert_one_line(err, "dynamic_sampling.max_retries with grpo.scale_rewards batch", "use scale_rewards group")


def test_dynamic_sampling_with_step_credit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Dynamic sampling replaced the groups whose outcomes all agreed before step credit saw them: the groups its
    checked steps are meant to teach from."""
    code, err = cli(capsys, "config", "show", "--dynamic_sampling.max_retries", "2", "--step_credit.weight", "1")
    assert code == 2
    assert_one_line(err, "dynamic_sampling.max_retries with step_credit.weight", "use one of the two")


def test_a_cache_path_under_a_folder_the_user_cannot_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Path.exists raised PermissionError (R1KIT_CACHE under another user's home): "unexpected error (a bug in
    r1kit or a library)". The tests run as root, whom no folder stops, so the OS's answer is played here."""
    locked = tmp_path / "someone_else"

    def exists(path: Path, **kwargs) -> bool:
        if locked in (path, *path.parents) and path != locked:
            raise PermissionError(13, "Permission denied", str(path))
        return os.path.exists(path)

    monkeypatch.setattr(Path, "exists", exists)
    code, err = cli(capsys, "config", "show", "--model.cache_dir", str(locked / "cache"))
    assert code == 2
    assert_one_line(err, "model.cache_dir", "cannot be reached (Permission denied")


def test_a_read_only_cache_built_already_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A shared cache built already that this user may only read (a team's, a container image's) refused every
    command, even one whose model is a plain folder: "cannot be created or written". It is written only where a model
    is made in it. The tests run as root, whom no folder stops, so the OS's answer is played here."""
    from r1kit.models import ModelError, builtin_model_path

    cache = tmp_path / "cache"
    built = builtin_model_path("tiny-random", cache_dir=str(cache))

    def access(path, mode: int, **kwargs) -> bool:
        inside = Path(path) == cache or cache in Path(path).parents
        return not (inside and mode & os.W_OK) and os.path.exists(path)

    monkeypatch.setattr(os, "access", access)
    code, err = cli(capsys, "config", "show", "--model.cache_dir", str(cache))
    assert code == 0, err
    assert builtin_model_path("tiny-random", cache_dir=str(cache)) == built
    with pytest.raises(ModelError, match=r"model.cache_dir: .* is not writable\), and the built-in model smollm2-135m"):
        builtin_model_path("smollm2-135m", cache_dir=str(cache))


def test_a_cache_path_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("x")
    monkeypatch.setenv("R1KIT_CACHE", str(not_a_folder))
    code, err = cli(capsys, "run", "--profile", "test", "--out", str(tmp_path / "run"))
    assert code == 2
    assert_one_line(err, "R1KIT_CACHE", str(not_a_folder), "is a file")
    code, err = cli(capsys, "config", "show", "--model.cache_dir", str(not_a_folder / "below"))
    assert code == 2
    assert_one_line(err, "model.cache_dir", "which is a file")
    dangling = tmp_path / "on-an-unmounted-disk"  # passed as usable, then mkdir's bare FileExistsError
    dangling.symlink_to(tmp_path / "unmounted" / "cache")
    code, err = cli(capsys, "config", "show", "--model.cache_dir", str(dangling / "r1kit"))
    assert code == 2
    assert_one_line(err, "model.cache_dir", "a link to nothing")


def test_an_invalid_jinja_chat_template_in_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, "config", "show", "--model.chat_template", "{% for m in messages %}{{ m.content }")
    assert code == 2
    assert_one_line(err, "model.chat_template", "not a valid Jinja")


@pytest.mark.parametrize("flag", ["--seed", "--dataset.split.seed", "--preferences.seed"])
@pytest.mark.parametrize("seed", ["-1", "5000000000"])
def test_a_seed_out_of_numpys_range_is_a_config_error(flag: str, seed: str, capsys: pytest.CaptureFixture[str]) -> None:
    """It passed the config and crashed in set_seed as "a bug in r1kit" (exit 1), after the model had loaded."""
    code, err = cli(capsys, "config", "show", flag, seed)
    assert code == 2
    assert_one_line(err, "run.seed" if flag == "--seed" else flag.removeprefix("--"))


# ----------------------------------------------------------------------------------- values kept as written


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("prompt.system", "Think first. Format: <think> then <answer>"),
        ("prompt.system", "[draft] be brief"),
        ("prompt.system", "{braces: yes} and ${not_interpolated}"),
        ("model.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}"),
        ("monitoring.wandb.run_name", "0123"),
        ("monitoring.wandb.run_name", "true"),
        ("model.revision", "1e3"),
    ],
)
def test_text_fields_take_the_text_as_given(key: str, text: str) -> None:
    for args in (["--" + key, text], [f"--{key}={text}"]):
        config = resolve_config(overrides=args, environ={}).config.model_dump()
        section, *rest = key.split(".")
        value = config[section]
        for part in rest:
            value = value[part]
        assert value == text
    env_name = "R1KIT_" + key.replace(".", "_").upper()
    assert resolve_config(environ={env_name: text}).sources[key] == f"env:{env_name}"


def test_numbers_booleans_lists_and_null_are_read_by_field_type() -> None:
    config = resolve_config(
        overrides=[
            "--training.max_steps",
            "null",
            "--training.epochs",
            "2",
            "--grpo.num_generations",
            "08",  # a decimal 8, not octal
            "--model.lora.enabled",
            "False",
            "--rewards.functions",
            "accuracy",
            "--run.output_dir",
            "null",
        ],
        environ={},
    ).config
    assert config.training.max_steps is None and config.training.epochs == 2.0
    assert config.grpo.num_generations == 8 and config.model.lora.enabled is False
    assert config.rewards.functions == ["accuracy"] and config.run.output_dir is None
    with pytest.raises(ConfigError, match=r"training.max_steps: .*got 'many'"):
        resolve_config(overrides=["--training.max_steps", "many"], environ={})


# ------------------------------------------------------------------------------------------------ data files


def _data_file(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


BAD_DATA = {
    "empty.jsonl": ("", "the file is empty"),
    "blank.jsonl": ("\n\n  \n", "the file is empty"),
    "one_bad_line.jsonl": (
        '{"question": "1+1?", "solution": "2"}\n{"question": "2+2?", "solution": "4"}\n{"question": "3+3?",\n',
        "line 3 is not valid JSON",
    ),
    "not_objects.jsonl": ('{"question": "1+1?", "solution": "2"}\n[1, 2]\n', "line 2 must be a JSON object"),
    "sharegpt_strings.jsonl": (
        json.dumps({"conversations": ["hello", "hi"]}) + "\n",
        "line 1: field 'conversations' turn 0 must be a {from, value} object",
    ),
    "messages_strings.jsonl": (
        json.dumps({"messages": [{"role": "user", "content": "hi"}, "a reply"]}) + "\n",
        "line 1: field 'messages' turn 1 must be a {role, content} object",
    ),
    "fake.parquet": ("question,solution\n1+1,2\n", "cannot be read as parquet"),
    "binary.jsonl": (b"\x00\xff\xfe" * 50, "line 1 is not valid JSON"),
    "unknown_columns.jsonl": ('{"q": "1+1?", "a": "2"}\n', "cannot tell the dataset format"),
    "pairs.jsonl": (  # was: "cannot tell the dataset format … set dataset.format", which pairs have none of
        json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}) + "\n",
        "are preference pairs, not problems: the preference stages (reward_model, dpo) read pairs from "
        "preferences.dataset (--preferences.dataset FILE)",
    ),
    "data.txt": ("question,solution\n", "unsupported file type"),
}


@pytest.mark.parametrize("name", sorted(BAD_DATA))
def test_malformed_data_files_sweep(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, needle = BAD_DATA[name]
    path = _data_file(tmp_path, name, content)
    code, err = cli(capsys, "run", "--profile", "test", "--data", str(path), "--out", str(tmp_path / "run"))
    assert code == 1
    assert_one_line(err, str(path), needle)


def test_a_line_that_is_not_json_is_skipped_under_on_bad_row_skip(tmp_path: Path, caplog) -> None:
    from r1kit.config.schema import DatasetConfig
    from r1kit.data.loading import DatasetError, load_splits

    good = "".join(json.dumps({"question": f"{i} + 1?", "solution": str(i + 1)}) + "\n" for i in range(9))
    carriage = '{"question": "9 + 1?",\r "solution": "10"}\n'  # a bare \r is JSON whitespace, not a line's end
    path = _data_file(tmp_path, "broken.jsonl", good + '{"question": "3 + 3?",\n' + "[1, 2]\n" + carriage)
    with pytest.raises(DatasetError) as raised:  # was: "(… line 2 column 1 (char 24))" of a file's line 10
        load_splits(DatasetConfig(name=str(path)))
    message = str(raised.value)
    assert "line 10 is not valid JSON (Expecting property name enclosed in double quotes at the end of the line)" in (
        message
    )
    assert "set dataset.on_bad_row=skip" in message

    # was: the same error under skip, which left out only rows that parse but lack a field
    splits = load_splits(DatasetConfig(name=str(path), on_bad_row="skip", split={"test_size": 0.3}))
    assert len(splits.train) + len(splits.test) == 10 and splits.skipped_rows == 2
    assert (
        "broken.jsonl: 2 lines that are not readable JSON objects skipped (dataset.on_bad_row skip): lines 10, 11"
        in (caplog.text)
    )
    # every row bad: the error says why, for the first few
    unusable = _data_file(tmp_path, "unusable.jsonl", json.dumps({"question": "4 + 4?", "solution": ""}) + "\n")
    with pytest.raises(DatasetError, match=r"all 1 rows are unusable as .* rows \(line 1: "):
        load_splits(DatasetConfig(name=str(unusable), on_bad_row="skip"))
    # a row without a needed field is named with its reason, not only counted
    missing = _data_file(tmp_path, "missing.jsonl", good + json.dumps({"question": "4 + 4?"}) + "\n")
    caplog.clear()
    load_splits(DatasetConfig(name=str(missing), on_bad_row="skip", split={"test_size": 0.3}))
    assert "missing.jsonl: 1 bad row skipped (dataset.on_bad_row skip): line 10: " in caplog.text


CUT_EMOJI = '{"question": "emoji cut \\ud83d here", "solution": "5"}'  # a lone surrogate escape: valid JSON
GOOD_ROWS = [{"question": f"{i} + 1?", "solution": str(i + 1)} for i in range(9)]


@pytest.mark.parametrize("on_bad_row", ["error", "skip"])
def test_files_that_crashed_the_load_are_said_or_skipped(tmp_path: Path, on_bad_row: str) -> None:
    """Each was "unexpected error (a bug in r1kit)" or the datasets library's words: a CSV from Excel's Windows export
    under skip, a lone surrogate (an emoji cut in two), an integer gold past Python's 4,300 digits, a file of no rows."""
    from r1kit.config.schema import DatasetConfig
    from r1kit.data.loading import DatasetError, load_splits

    def load(name: str, content: str | bytes):
        path = _data_file(tmp_path, name, content)
        return load_splits(DatasetConfig(name=str(path), on_bad_row=on_bad_row, split={"test_size": 0.3}))

    with pytest.raises(DatasetError, match=r"cp1252.csv: .*(not UTF-8|utf-8' codec can't decode)"):
        load("cp1252.csv", b"question,solution\nq1,1\ncaf\xe9 price?,12\n")
    lines = "".join(json.dumps(row) + "\n" for row in GOOD_ROWS)
    rows = ", ".join(json.dumps(row) for row in GOOD_ROWS)
    for name, content, unit in [
        ("cut.jsonl", CUT_EMOJI + "\n" + lines, "line"),
        ("cut.json", f"[{CUT_EMOJI}, {rows}]", "item"),
    ]:
        if on_bad_row == "error":
            with pytest.raises(DatasetError, match=rf"{name}: {unit} 1 holds an unpaired surrogate escape"):
                load(name, content)
        else:
            splits = load(name, content)
            assert splits.skipped_rows == 1 and len(splits.train) + len(splits.test) == 9
    huge = "9" * 5000  # an integer gold written out: json.loads raised ValueError past 4,300 digits
    splits = load("huge.jsonl", f'{{"question": "10^5000 - 1?", "solution": {huge}}}\n' + lines)
    assert huge in [*splits.train["solution"], *splits.test["solution"]]
    splits = load("huge.json", f'[{{"question": "10^5000 - 1?", "solution": {huge}}}, {rows}]')
    assert huge in [*splits.train["solution"], *splits.test["solution"]]
    for name, content in [("header.csv", "question,solution\n"), ("objects.jsonl", "{}\n{}\n")]:
        with pytest.raises(DatasetError, match=f"{name}: holds no rows"):
            load(name, content)


def test_a_grouping_column_the_data_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(json.dumps({"question": f"{i}+1?", "solution": str(i + 1), "task": "add"}) + "\n" for i in range(8))
    path = _data_file(tmp_path, "grouped.jsonl", rows)
    args = ["run", "--profile", "test", "--data", str(path), "--out", str(tmp_path / "run")]
    code, err = cli(capsys, *args, "--dataset.group_column", "tsak")  # a misspelt name: no breakdown, said once
    assert code == 1
    assert_one_line(err, str(path), "dataset.group_column 'tsak' is not a column (question, solution, task)")


def test_data_a_stage_cannot_use_is_refused_before_the_base_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers_only = "".join(json.dumps({"question": f"{i}+1?", "solution": str(i + 1)}) + "\n" for i in range(8))
    path = _data_file(tmp_path, "answers.jsonl", answers_only)
    code, err = cli(capsys, "run", "--profile", "test", "--data", str(path), "--out", str(tmp_path / "a"))
    assert code == 1  # was: the base evaluation first, then a bare "no row has a worked solution" at the SFT stage
    assert_one_line(err, f"{path}: stages: sft (sft): no row has a worked solution", "--recipe r1_zero")
    assert not (tmp_path / "a").exists()  # nor a run folder: was an empty one, or a stage's with config.yaml alone
    code, err = cli(capsys, "sft", "--profile", "test", "--data", str(path), "--out", str(tmp_path / "s"))
    assert code == 1 and not (tmp_path / "s").exists()
    assert_one_line(err, f"{path}: sft: no row has a worked solution")

    chat = [
        {"messages": [{"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": "Hi."}]}
        for i in range(8)
    ]
    path = _data_file(tmp_path, "chat.jsonl", "".join(json.dumps(row) + "\n" for row in chat))
    code, err = cli(capsys, "run", "--profile", "test", "--data", str(path), "--out", str(tmp_path / "c"))
    assert code == 1  # was: GRPO trained with its accuracy reward None on every step, and no word of it
    assert_one_line(err, f"{path}: stages: grpo (grpo): no row has a gold answer, and its rewards accuracy")
    assert not (tmp_path / "c").exists()


def _golds_file(tmp_path: Path, name: str, readable: int) -> Path:
    """16 problems; the first `readable` golds are numbers, the rest text the verifier cannot read (a wrong column)."""
    rows = [
        {"question": f"What is {i} + 3?", "solution": str(i + 3) if i < readable else "see the worked solution"}
        for i in range(16)
    ]
    return _data_file(tmp_path, name, "".join(json.dumps(row) + "\n" for row in rows))


def test_gold_answers_the_verifier_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = _golds_file(tmp_path, "unreadable.jsonl", readable=0)
    for args, stage in ((["grpo"], "grpo"), (["run", "--recipe", "r1_zero"], "stages: grpo (grpo)")):
        code, err = cli(capsys, *args, "--profile", "test", "--data", str(path), "--out", str(tmp_path / "none"))
        assert code == 1  # was: exit 0, GRPO trained with its accuracy reward None on every step, and no word of it
        assert_one_line(
            err,
            f"{path}: {stage}: none of the first 14 gold answers holds an answer the verifier can read",
            "'see the worked solution'",
        )

    path = _golds_file(tmp_path, "half.jsonl", readable=8)  # some unreadable: said, counted, and training goes on
    code, err = cli(capsys, "grpo", "--profile", "test", "--data", str(path), "--out", str(tmp_path / "half"))
    assert code == 0, err
    assert "grpo: 7 of the first 14 gold answers hold no answer the verifier can read" in caplog.text
    counted = [
        r["rewards/accuracy/unreadable_gold"]
        for r in RunDir(tmp_path / "half").read("metrics.jsonl")
        if r["kind"] == "step"
    ]
    assert len(counted) == 3 and sum(counted) > 0


def test_word_golds_are_read_and_a_column_of_words_alone_is_asked_about(tmp_path: Path, caplog) -> None:
    """A yes/no data set's golds were unreadable ("none of the first N gold answers holds an answer the verifier can
    read"): words are read now. A column of words alone may be labels (MATH's `type`: Algebra, Geometry), so it is
    refused unless dataset.word_answers says they are the answers; a column of option letters is multiple choice."""
    from r1kit.data.loading import DatasetError, load_splits
    from r1kit.stages.common import check_data

    for golds, words_set, refused in (
        (["Yes", "No"], False, True),
        (["Yes", "No"], True, False),
        (["Yes", "12"], False, False),
        (["A", "C"], False, False),
    ):
        path = tmp_path / f"{golds[0]}{golds[1]}.jsonl"
        rows = [{"question": f"Is {i} even?", "solution": golds[i % 2]} for i in range(16)]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        settings = ["--data", str(path), *(["--dataset.word_answers", "true"] if words_set else [])]
        config = resolve_config(profile="test", overrides=settings, environ={}).config
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="r1kit"):
            if refused:
                with pytest.raises(
                    DatasetError, match=re.escape("the first 14 gold answers are all words ('No', 'Yes')")
                ):
                    check_data(config, "grpo", load_splits(config.dataset).train, "data: grpo")
            else:
                check_data(config, "grpo", load_splits(config.dataset).train, "data: grpo")
        assert "hold no answer the verifier can read" not in caplog.text


@pytest.mark.parametrize(
    ("recipe", "setting", "message"),
    [
        ("r1", "--sft2.general_dataset", "stages: sft2: sft2.general_dataset"),
        ("r1", "--distill.student", "stages: distill: distill.student"),
        ("rlhf", "--preferences.dataset", "stages: reward_model: preferences.dataset"),
    ],
)
def test_a_later_stages_missing_file_is_refused_before_any_work(
    recipe: str, setting: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    args = ["run", "--profile", "test", "--recipe", recipe, setting, str(missing), "--out", str(tmp_path / "run")]
    code, err = cli(capsys, *args)
    assert code == 2  # was: "dataset file not found" once the stages before it had trained (13+ minutes on SmolLM2)
    assert f"r1kit: config error: {message} '{missing}': no such file or folder" in err
    assert not (tmp_path / "run").exists()


def test_the_model_cold_start_refines_is_checked_before_any_work_and_read_by_its_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cold_start.refine_from was in no list of what the stage reads: a typo was found only when the stage ran, and
    a refine model retrained in place left the stage "complete, skipped" on its old outputs."""
    from r1kit.stages.common import files_read

    missing = tmp_path / "r1_zero_run"
    flags = ["--cold_start.methods", "[convert, refine]", "--cold_start.refine_from", str(missing)]
    code, err = cli(capsys, "run", "--profile", "test", "--recipe", "r1", *flags, "--out", str(tmp_path / "run"))
    assert code == 2
    assert f"stages: cold_start: cold_start.refine_from '{missing}': no such file or folder" in err
    assert not (tmp_path / "run").exists()
    config = resolve_config(overrides=flags, environ={}).config
    assert files_read(config, "cold_start") == {"refine_model": str(missing)}
    # a run's stage named as `RUN:STAGE` (as model.name takes it) is no missing file
    from r1kit.pipeline import _check_stage_files

    zero = tmp_path / "zero"
    (zero / "02_grpo" / "model").mkdir(parents=True)
    (zero / "config.yaml").write_text("{}\n")
    (zero / "02_grpo" / "manifest.json").write_text('{"kind": "grpo", "status": "complete"}')
    named = ["--cold_start.methods", "[refine]", "--cold_start.refine_from", f"{zero}:grpo"]
    _check_stage_files(resolve_config(recipe="r1", overrides=named, environ={}).config)
    with pytest.raises(ConfigError, match=f"'{zero}:grpoo': no stage 'grpoo' with a model in {zero}"):
        _check_stage_files(resolve_config(recipe="r1", overrides=[*named[:-1], f"{zero}:grpoo"], environ={}).config)
    assert (
        files_read(
            config.model_copy(update={"cold_start": config.cold_start.model_copy(update={"methods": ["convert"]})}),
            "cold_start",
        )
        == {}
    )


def test_a_bad_preference_pair_is_found_before_any_stage_trains(tmp_path: Path, capsys) -> None:
    """In the rlhf recipe a pair with an empty reply stopped DPO after SFT had trained; skipping it then took a
    dataset.on_bad_row that redid SFT."""
    pairs = [{"prompt": f"Name a colour ({i}).", "chosen": "Blue.", "rejected": "Dog."} for i in range(6)]
    pairs[3]["chosen"] = " "
    path = _data_file(tmp_path, "pairs.jsonl", "".join(json.dumps(pair) + "\n" for pair in pairs))
    run = tmp_path / "run"
    code, err = cli(capsys, "run", "--profile", "test", "--recipe", "rlhf", "--preferences.dataset", str(path),
                    "--out", str(run))  # fmt: skip
    assert code == 1 and not run.exists()
    assert_one_line(err, f"{path}: line 4: field 'chosen'")


@pytest.mark.parametrize("stage", ["rejection_sampling", "distill", "cold_start"])
def test_trace_sampling_on_data_without_gold_answers_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stage: str
) -> None:
    """Chat data: every trace was sampled (the teacher's whole run, for distill), then judged unverifiable, and the
    closing advice was to sample more (cold start wrote no row and ended with exit code 0)."""
    chat = "".join(json.dumps({"instruction": f"Say hi {i}.", "response": "Hi."}) + "\n" for i in range(12))
    path = _data_file(tmp_path, "chat.jsonl", chat)
    args = [stage, "--profile", "test", "--data", str(path), "--out", str(tmp_path / "run")]
    code, err = cli(capsys, *(args + (["--distill.student", "tiny-random"] if stage == "distill" else [])))
    assert code == 1
    assert_one_line(err, f"no row has a gold answer, and {stage} keeps only the traces whose answer verifies")


def test_general_chat_data_without_replies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    math = "".join(
        json.dumps({"question": f"{i}+1?", "answer": f"{i}+1={i + 1}\n#### {i + 1}"}) + "\n" for i in range(4)
    )
    path = _data_file(tmp_path, "gsm.jsonl", math)
    args = ["sft2", "--profile", "test", "--sft2.general_dataset", str(path), "--out", str(tmp_path / "run")]
    code, err = cli(capsys, *args)  # was: exit 0, "0 general rows", SFT 2 without its general data
    assert code == 1
    assert_one_line(err, f"sft2.general_dataset {path}: none of its 4 rows has a reply")  # all read: none held out


def test_sft2_says_why_the_base_models_general_answers_were_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code, _ = cli(capsys, "sft2", "--profile", "test", "--out", str(tmp_path / "run"))
    assert code == 0
    # the tiny random model answers the shipped general prompts with blanks; was: "0 general rows", no reason
    assert "sft2: 18 of the base model's 18 general answers dropped (18 empty)" in caplog.text
    assert "72 reasoning rows + 0 general rows" in caplog.text


# ----------------------------------------------------------------------------------------- malformed configs

BAD_CONFIGS = {
    "not a mapping": ("- a\n- b\n", "must hold a mapping"),
    "broken yaml": ("training: {max_steps: 3\n", "not valid YAML"),
    # the first line of PyYAML's message alone: "while scanning for the next token", no cause, no line
    "tab indented": ("training:\n\tmax_steps: 3\n", "that cannot start any token (line 2, column 1)"),
    # the last of two values won without a word
    "key written twice": ("training: {max_steps: 3, max_steps: 4}\n", "'max_steps' is written twice"),
    # a key without its colon makes the section a text: was "Input should be a valid dictionary", no value or file
    "key without a colon": ("training:\n  max_steps 5\n", "training: is a section and takes its keys"),
    "stage name": ("stages:\n  - name: RL\n", "(got 'RL', from file:"),
    "dotted and nested": ("training.max_steps: 3\ntraining: {max_steps: 4}\n", "training.max_steps set twice"),
    # in a recipe stage's own config too (the later one won there without a word)
    "dotted and nested in a stage": (
        "stages:\n  - name: grpo\n    config: {training.max_steps: 3, training: {max_steps: 40}}\n",
        "stage grpo's config: training.max_steps set twice",
    ),
    "unknown key": ("trainig: {max_steps: 3}\n", "did you mean 'training.max_steps'"),
    "section as scalar": ("training: 5\n", "training"),
    "wrong type": ("training: {max_steps: lots}\n", "training.max_steps"),
    "bad literal": ("grpo: {loss_type: ppo}\n", "grpo.loss_type"),
    "leaf as mapping": ("grpo: {temperature: {value: 1}}\n", "grpo.temperature"),
    "infinite weight": ("rewards: {format: {weight: .inf}}\n", "rewards.format.weight"),
    "unknown reward": ("rewards: {functions: [accuracy, speling]}\n", "unknown reward 'speling'"),
    "empty rewards": ("rewards: {functions: []}\n", "at least one reward"),
    "bad template": ("model: {chat_template: '{{ unclosed'}\n", "model.chat_template"),
    "batch rule": ("training: {batch_size: {per_device_train: 6}}\n", "divisible by grpo.num_generations"),
    "cosine order": ("rewards: {cosine: {min_value_wrong: 1, max_value_wrong: 0}}\n", "min_value_wrong"),
    "adaptive kl from 0": ("ppo: {adaptive_kl: true, kl_coef: 0}\n", "kl_coef 0 with adaptive_kl true"),
    "profiles list": ("profiles: {x: [1]}\n", "profiles.x"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_malformed_configs_sweep(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, needle = BAD_CONFIGS[case]
    config = _data_file(tmp_path, "config.yaml", content)
    code, err = cli(capsys, "run", "--config", str(config), "--out", str(tmp_path / "run"))
    assert code == 2
    assert_one_line(err, needle)
    assert not (tmp_path / "run").exists()  # refused before anything was created


def test_an_empty_run_folder_is_not_read_as_unset(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, "run", "--profile", "test", "--out", "")  # `--out "$RUN"` with RUN unset
    assert code == 2  # was: a run in runs/<timestamp>, without a word
    assert_one_line(err, "run.output_dir: is empty")


# ------------------------------------------------------------------------------------------ models and runs


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_weights_file(damage: str, tiny_model: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"not safetensors at all " * 40 if damage == "garbage" else data[: len(data) // 2])
    code, err = cli(capsys, "eval", "--model", str(folder), "--profile", "test", "--out", str(tmp_path / "e"))
    assert code == 1
    assert_one_line(err, str(weights), "is damaged")


def test_a_tokenizer_with_an_invalid_jinja_template(tiny_model: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    (folder / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }")
    code, err = cli(capsys, "eval", "--model", str(folder), "--profile", "test", "--out", str(tmp_path / "e"))
    assert code == 1
    assert_one_line(err, str(folder), "not a valid Jinja", "model.chat_template=chatml")


def test_eval_refuses_a_win_rate_model_that_is_not_a_folder(tiny_model: Path, tmp_path: Path, capsys) -> None:
    args = ["eval", "--model", str(tiny_model), "--profile", "test", "--out", str(tmp_path / "e")]
    code, err = cli(capsys, *args, "--evaluation.win_rate_against", str(tiny_model), "--evaluation.reward_model", "rm")
    assert code == 1  # was: exit 0 with win_rate None, no word of why
    assert_one_line(err, "evaluation.reward_model rm: no such model folder")


def test_eval_counts_the_bad_rows_it_skipped(tiny_model: Path, tmp_path: Path, capsys, caplog) -> None:
    data = tmp_path / "gsm.jsonl"
    good = [{"question": f"What is 2 + {i}?", "answer": f"2 + {i} = {2 + i}\n#### {2 + i}"} for i in (3, 4)]
    data.write_text(
        "\n".join(json.dumps(row) for row in [good[0], {"question": "q", "answer": "no final line"}, good[1]])
    )
    args = ["eval", "--model", str(tiny_model), "--profile", "test", "--data", str(data), "--out", str(tmp_path / "e")]
    code, err = cli(capsys, *args, "--dataset.on_bad_row", "skip")
    assert code == 0, err
    assert "gsm.jsonl: 1 bad row skipped" in caplog.text
    result = json.loads((tmp_path / "e" / "eval" / "eval.json").read_text())
    assert result["skipped_rows"] == 1 and result["problems"] == 2


def test_eval_draws_its_problems_from_a_file_sorted_by_level(tiny_model: Path, tmp_path: Path, capsys) -> None:
    """evaluation.max_samples scored a held-out file's first rows: of a file sorted by level, level 1 alone. A file
    named to score (`--data`) and the same file as a held-out file (`--dataset.test_split`) are drawn alike, so their
    evaluations pair problem by problem (`r1kit compare`)."""
    rows = [{"question": f"L{level} q{i}: {i} + 1?", "solution": str(i + 1), "level": level} for level in (1, 2, 3)
            for i in range(10)]  # fmt: skip
    data = tmp_path / "sorted.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row | {"question": f"T {row['question']}"}) + "\n" for row in rows))
    args = ["eval", "--model", str(tiny_model), "--profile", "test", "--evaluation.max_samples", "6"]
    scored = []
    for name, data_args in (
        ("whole", ["--data", str(data)]),
        ("held", ["--data", str(train), "--dataset.test_split", str(data)]),
    ):
        code, err = cli(capsys, *args, *data_args, "--out", str(tmp_path / name))
        assert code == 0, err
        result = json.loads((tmp_path / name / "eval" / "eval.json").read_text())
        assert result["problems"] + result["excluded"] == 6 and len(result["by_group"]) > 1, result["by_group"]
        lines = (tmp_path / name / "eval" / "eval.problems.jsonl").read_text().splitlines()
        scored.append([json.loads(line)["question"] for line in lines])
    assert scored[0] == scored[1] and scored[0] == sorted(
        scored[0], key=lambda q: (q[:2], int(q.split("q")[1].split(":")[0]))
    )


def test_report_on_a_missing_folder_a_file_and_a_non_run(tmp_path: Path, capsys) -> None:
    code, err = cli(capsys, "report", str(tmp_path / "nothing"))
    assert code == 1
    assert_one_line(err, "no run folder at")
    a_file = _data_file(tmp_path, "notes.txt", "x")
    code, err = cli(capsys, "report", str(a_file))
    assert code == 1
    assert_one_line(err, "is a file")
    code, err = cli(capsys, "report", str(tmp_path))
    assert code == 1
    assert_one_line(err, "holds no r1kit run")
    evaluated = tmp_path / "evaluated"  # `r1kit eval --out evaluated`: was "holds no r1kit run", nothing more
    (evaluated / "eval").mkdir(parents=True)
    (evaluated / "eval" / "eval.json").write_text("{}")
    code, err = cli(capsys, "report", str(evaluated))
    assert code == 1
    assert_one_line(err, f"holds `r1kit eval` results, no r1kit run: `r1kit compare {evaluated} OTHER`")
    (tmp_path / "config.yaml").write_text("{}\n")  # tmp_path is now a run, and a folder in it one of its stages
    (tmp_path / "02_sft").mkdir()
    code, err = cli(capsys, "report", str(tmp_path / "02_sft"))
    assert code == 1
    assert_one_line(err, "02_sft is a stage folder of a run: r1kit report ")  # was: "holds no r1kit run"


def test_ctrl_c_speaks_of_checkpoints_only_where_there_are_some(monkeypatch, capsys, tmp_path: Path) -> None:
    """An interrupted eval said to run it again "to continue from the last checkpoint"; eval keeps none. A stage
    interrupted before its run folder was opened has none either; in a named folder the same command goes on."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("r1kit.stages.evaluate.main", interrupted)
    monkeypatch.setattr("r1kit.stages.sft.main", interrupted)
    assert cli(capsys, "eval", "--profile", "test") == (130, "r1kit: interrupted\n")
    assert cli(capsys, "sft", "--profile", "test") == (130, "r1kit: interrupted\n")
    code, err = cli(capsys, "sft", "--profile", "test", "--out", str(tmp_path / "run"))
    assert code == 130 and "run the same command again to continue from the last checkpoint" in err
    # --from and --only start their stage over each time: the same command again lost the checkpoints
    monkeypatch.setattr("r1kit.pipeline.run", interrupted)
    code, err = cli(capsys, "run", "--profile", "test", "--out", str(tmp_path / "run"), "--from", "grpo")
    assert code == 130 and "run it again without --from/--only" in err and "the same command" not in err


def test_a_full_disk_is_one_line_that_says_so(monkeypatch, capsys) -> None:
    """A checkpoint or model write that filled the disk (the check before training is an estimate, 50 MB for a hub
    model) was "unexpected error (a bug in r1kit or a library): OSError: [Errno 28]"."""
    from r1kit.monitoring import report

    def full(run_dir: Path) -> Path:
        try:
            raise OSError(28, "No space left on device", "/runs/x/02_grpo/model/model.safetensors")
        except OSError as error:  # as a library wraps it
            raise RuntimeError("failed to save the model") from error

    monkeypatch.setattr(report, "write_report", full)
    code, err = cli(capsys, "report", "anywhere")
    assert code == 1
    assert_one_line(err, "the disk is full (No space left on device: /runs/x/02_grpo/model/model.safetensors)")
    assert "goes on from the last complete checkpoint" in err and "unexpected error" not in err

    # torch.save says no errno ("unexpected pos …"): the run folder's disk, all but full, says it
    import shutil

    from r1kit import cli as cli_module

    def torch_save(run_dir: Path) -> Path:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(report, "write_report", torch_save)
    monkeypatch.setattr(cli_module, "training_log_run", lambda: Path("/"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100 * 2**30, 100 * 2**30, 2**20))
    code, err = cli(capsys, "report", "anywhere")
    assert code == 1
    assert_one_line(err, "the disk is full (1 MB left where / is)")
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100 * 2**30, 50 * 2**30, 50 * 2**30)
    )
    code, err = cli(capsys, "report", "anywhere")
    assert code == 1 and "unexpected error" in err  # room left: not the disk's

    # safetensors' SafetensorError (no OSError) over a full cache's disk, with room left where the run is
    from safetensors import SafetensorError

    def safetensors_save(run_dir: Path) -> Path:
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(report, "write_report", safetensors_save)
    code, err = cli(capsys, "report", "anywhere")
    assert code == 1
    assert_one_line(err, "the disk is full (No space left on device (os error 28))")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    from r1kit.monitoring import report

    def broken(run_dir: Path) -> Path:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(report, "write_report", broken)
    code, err = cli(capsys, "report", "anywhere")
    assert code == 1
    assert_one_line(err, "unexpected error", "ZeroDivisionError: a bug", "--debug")
    with pytest.raises(ZeroDivisionError):
        main(["report", "anywhere", "--debug"])


# ------------------------------------------------------------------------------------------- run-folder rule


def _config(out: Path, *args: str):
    return resolve_config(profile="test", overrides=["--out", str(out), *args], environ={}).config


def test_a_model_folder_written_another_way_is_the_same_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`r1kit grpo --model s1` finished, then `--model $PWD/s1` (or from another folder, `--model ../work/s1`) was
    "another config": refused, and the --resume the message advised cleared the finished stage and trained it
    again."""
    from r1kit.stages.common import config_changes, stage_values

    work = tmp_path / "work"
    (work / "s1").mkdir(parents=True)
    monkeypatch.chdir(work)
    out = work / "g1"
    first = _config(out, "--model", "s1")
    open_run(first, "grpo").save_config(first)
    (out / "grpo" / "model").mkdir(parents=True)
    (out / "grpo" / "model" / "r1kit_complete.json").write_text("{}")  # finished work
    saved = json.loads(json.dumps(stage_values(first, "grpo")))
    leave_run_folder()
    for cwd, name in ((work, str(work / "s1")), (tmp_path, "work/s1")):
        monkeypatch.chdir(cwd)
        again = _config(out, "--model", name)
        assert open_run(again, "grpo").continued  # not refused
        leave_run_folder()
        assert config_changes(saved, again, "grpo", started_in=work) == []
    assert config_changes(saved, _config(out, "--model", "tiny-random"), "grpo", started_in=work)  # another model


def test_a_failed_start_is_taken_over_but_finished_work_is_protected(tmp_path: Path, caplog) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(_config(out, "--data", "missing.jsonl").model_dump()))
    (out / "metrics.jsonl").write_text('{"stage": "sft", "step": 1}\n')
    (out / "eval").mkdir()
    (out / "eval" / "base.json").write_text("{}")  # evaluated with the old data: stale now
    (out / "eval" / "base.problems.jsonl").write_text('{"question": "old"}\n')

    open_run(_config(out))  # the corrected command
    assert "failed start that finished no stage (dataset.name: 'missing.jsonl' there" in caplog.text
    assert not (out / "metrics.jsonl").exists() and not (out / "eval" / "base.json").exists()
    assert not (out / "eval" / "base.problems.jsonl").exists()

    (out / "config.yaml").write_text(yaml.safe_dump(_config(out).model_dump()))
    (out / "sft" / "model").mkdir(parents=True)
    (out / "sft" / "model" / "r1kit_complete.json").write_text("{}")
    with pytest.raises(RunDirError) as refused:
        open_run(_config(out, "--learning_rate", "0.5"))
    message = str(refused.value)
    assert "finished work (sft/model)" in message and "--resume" in message and "--out" in message
    assert (out / "sft" / "model" / "r1kit_complete.json").exists()

    shutil.rmtree(out / "sft")
    (out / "grpo" / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (out / "grpo" / "checkpoints" / "checkpoint-2" / "r1kit_complete.json").write_text("{}")
    (out / "grpo" / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (out / "grpo" / "checkpoints" / "checkpoint-10" / "r1kit_complete.json").write_text("{}")
    with pytest.raises(RunDirError, match="grpo/checkpoints/checkpoint-10"):  # the newest named
        open_run(_config(out, "--learning_rate", "0.5"))

    # a complete data stage leaves no model: its manifest says it finished (before: "a failed start", data lost)
    shutil.rmtree(out / "grpo")
    (out / "cold_start").mkdir()
    (out / "cold_start" / "manifest.json").write_text('{"status": "complete"}')
    with pytest.raises(RunDirError, match=r"finished work \(cold_start\)"):
        open_run(_config(out, "--learning_rate", "0.5"))
    with pytest.raises(RunDirError) as refused:  # every changed setting named (the first one alone hid the others)
        open_run(_config(out, "--learning_rate", "0.5", "--training.max_steps", "7"))
    assert "learning_rate: " in str(refused.value) and "training.max_steps: " in str(refused.value)
    # a config an earlier r1kit saved lacks the settings added since: at their defaults, they are no change (the
    # folder was refused for "sft2.general_split: None there, 'train' now")
    older = _config(out).model_dump()
    del older["sft2"]["general_split"], older["evaluation"]["temperature"]
    (out / "config.yaml").write_text(yaml.safe_dump(older))
    open_run(_config(out))
    (out / "config.yaml").write_text(yaml.safe_dump(_config(out).model_dump()))
    (out / "cold_start" / "manifest.json").write_text('{"status": "running"}')  # an interrupted one: no finished work
    open_run(_config(out, "--learning_rate", "0.5"))
    assert "failed start that finished no stage (training.optimization.learning_rate" in caplog.text


def test_the_corrected_command_runs_after_a_failed_start(tmp_path: Path) -> None:
    out = tmp_path / "run"
    no_data = r1kit_cli(
        "sft", "--profile", "test", "--data", str(tmp_path / "missing.jsonl"), "--out", str(out), cwd=REPO
    )
    assert no_data.returncode == 1
    assert_one_line(no_data.stderr, "dataset file not found")
    assert not out.exists()  # the data is read before the run folder is made
    answers_only = tmp_path / "answers.jsonl"  # nothing for SFT to imitate: refused before the folder is made too
    answers_only.write_text(
        "".join(json.dumps({"question": f"{i} + 1?", "solution": str(i + 1)}) + "\n" for i in range(9))
    )
    failed = r1kit_cli("sft", "--profile", "test", "--data", str(answers_only), "--out", str(out), cwd=REPO)
    assert failed.returncode == 1
    assert_one_line(failed.stderr, "no row has a worked solution")
    assert not out.exists()  # was: a folder holding config.yaml alone

    # a start that failed once the folder was made (its config saved): the corrected command takes it over
    RunDir(out).create()
    RunDir(out).save_config(_config(out, "--data", str(answers_only)))
    fixed = r1kit_cli("sft", "--profile", "test", "--out", str(out), cwd=REPO)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "failed start that finished no stage" in fixed.stderr
    assert (out / "sft" / "model" / "r1kit_complete.json").exists()


def test_lora_targets_the_model_lacks_are_refused_before_any_weight_loads(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, err = cli(capsys, "run", "--profile", "test", "--model.lora.target_modules", "[qkv_proj]", "--out", str(out))
    assert code == 1
    assert_one_line(err, "model.lora.target_modules ['qkv_proj']", "q_proj")
    assert not (out / "eval").exists()  # stopped before the base evaluation
    # one misspelt name among real ones: PEFT would leave that layer without adapters, silently
    code, err = cli(
        capsys, "sft", "--profile", "test", "--model.lora.target_modules", "[q_proj, v_prj]", "--out", str(out)
    )
    assert code == 1
    assert_one_line(err, "model.lora.target_modules ['q_proj', 'v_prj']: v_prj is not a linear layer", "v_proj")


def test_chat_replies_trained_behind_the_reasoning_prompt_get_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Dolly replies were trained behind "Think step by step inside <think> </think> tags…" without a word."""
    from r1kit.data.loading import load_splits
    from r1kit.prompts import GENERAL_SYSTEM_PROMPT
    from r1kit.stages.common import check_data

    chat = tmp_path / "dolly.jsonl"
    chat.write_text("".join(json.dumps({"instruction": f"Colour {i}?", "response": "Blue."}) + "\n" for i in range(8)))
    for data, system, warned in (
        (str(chat), None, True),
        (str(chat), GENERAL_SYSTEM_PROMPT, False),  # the plain prompt the warning names
        ("arithmetic", None, False),  # worked solutions, written as <think>/<answer>
    ):
        config = resolve_config(
            profile="test", overrides=["--data", data, *(["--prompt.system", system] if system else [])], environ={}
        ).config
        for kind in ("sft", "dpo"):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="r1kit"):
                check_data(config, kind, load_splits(config.dataset).train, f"data: {kind}")
            assert ("the rows are chat replies" in caplog.text) is warned, (data, system, kind)
            if warned:
                assert f"set --prompt.system '{GENERAL_SYSTEM_PROMPT}'" in caplog.text


@pytest.mark.parametrize("command", ["sft", "dpo", "reward_model"])
def test_a_stage_alone_on_chat_data_asks_with_the_plain_prompt(tmp_path: Path, command: str, caplog) -> None:
    """`r1kit dpo --data chat.jsonl` built its pairs of the rows' plain replies behind the reasoning prompt (its
    general pairs behind the plain one), where `r1kit sft` on the same data switched to the plain prompt."""
    from r1kit.prompts import GENERAL_SYSTEM_PROMPT
    from r1kit.stages.common import read_data

    chat = tmp_path / "dolly.jsonl"
    chat.write_text("".join(json.dumps({"instruction": f"Colour {i}?", "response": "Blue."}) + "\n" for i in range(8)))
    config = resolve_config(profile="test", overrides=["--data", str(chat)], environ={}).config
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        assert read_data(config, command)[0].prompt.system == GENERAL_SYSTEM_PROMPT
    assert f"{command}: the rows are chat replies without worked solutions" in caplog.text
    assert read_data(config, "ppo")[0].prompt.system == config.prompt.system  # its rewards may ask for the format
    # scored by no reward that reads the format or a gold (a reward model trained behind the plain prompt), PPO and
    # RLOO sampled behind the reasoning one
    judged = resolve_config(
        profile="test",
        overrides=["--data", str(chat), "--rewards.functions", "[repetition_penalty, overlong]"],
        environ={},
    ).config
    for rollouts in ("ppo", "rloo"):
        assert read_data(judged, rollouts)[0].prompt.system == GENERAL_SYSTEM_PROMPT


@pytest.mark.parametrize("recipe", ["r1", "default"])
def test_a_recipe_that_asks_for_the_r1_form_keeps_the_reasoning_prompt_on_chat_data(
    tmp_path: Path, recipe: str
) -> None:
    """`r1kit run --recipe r1` on chat rows with gold answers asked every stage with the plain prompt (its rejection
    sampling judged, its SFT 2 and distillation trained, R1 traces behind it), where `r1kit grpo` alone kept the
    reasoning one; a recipe whose stages only train on replies or score them by a reward model still switches."""
    from r1kit.prompts import GENERAL_SYSTEM_PROMPT
    from r1kit.stages.common import read_data

    chat = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} + 2?"}, {"role": "assistant", "content": "It is."}],
             "answer": str(i + 2)} for i in range(12)]  # fmt: skip
    chat.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = resolve_config(recipe=recipe, profile="test", overrides=["--data", str(chat)], environ={}).config
    assert read_data(config, "run")[0].prompt.system == config.prompt.system != GENERAL_SYSTEM_PROMPT
    assert read_data(config, "sft")[0].prompt.system == GENERAL_SYSTEM_PROMPT  # a stage alone on replies: plain
    rlhf = resolve_config(recipe="rlhf_chat", profile="test", overrides=["--data", str(chat)], environ={}).config
    assert read_data(rlhf, "run")[0].prompt.system == GENERAL_SYSTEM_PROMPT


def test_a_stage_that_makes_data_is_named_so_when_asked_for_as_a_model(tmp_path: Path, capsys) -> None:
    """`eval --model RUN:rejection_sampling` said "no stage 'rejection_sampling' with a finished model"."""
    run = tmp_path / "run"
    (run / "04_rejection_sampling").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    output = {"model": None, "dataset": "04_rejection_sampling/data"}
    manifest = {"kind": "rejection_sampling", "status": "complete", "output": output}
    (run / "04_rejection_sampling" / "manifest.json").write_text(json.dumps(manifest))
    code, err = cli(capsys, "eval", "--model", f"{run}:rejection_sampling", "--profile", "test")
    assert code == 1
    assert_one_line(err, "stage rejection_sampling (rejection_sampling) makes data, not a model")


def test_resume_without_out_takes_the_newest_run_of_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`r1kit grpo --resume` took the newest run of any command (a finished `r1kit sft`'s), trained GRPO from scratch
    there and left the interrupted GRPO run as it was."""
    import os

    from r1kit.cli import _resumable_run
    from r1kit.config.sources import ConfigError

    monkeypatch.chdir(tmp_path)
    for run, stage, when in (("grpo_run", "grpo", 1_000), ("sft_run", "sft", 2_000), ("recipe", "01_sft", 500)):
        (tmp_path / "runs" / run / stage).mkdir(parents=True)
        (tmp_path / "runs" / run / stage / "manifest.json").write_text("{}")
        (tmp_path / "runs" / run / "config.yaml").write_text("{}\n")
        os.utime(tmp_path / "runs" / run / "config.yaml", (when, when))
    assert _resumable_run(None, "grpo") == Path("runs/grpo_run")
    assert "--resume continues runs/grpo_run, the newest run of r1kit grpo" in capsys.readouterr().err
    assert _resumable_run(None, "run") == Path("runs/recipe")
    with pytest.raises(ConfigError, match="no run of r1kit dpo found under runs/"):
        _resumable_run(None, "dpo")


def test_problems_a_model_trained_on_are_said_when_scored_as_held_out(tmp_path: Path, capsys, caplog) -> None:
    """`r1kit eval` of a run's model with the run's data split otherwise, or on another built-in task (half of
    `mixed` is arithmetic), and a stage alone from it on data split otherwise, scored training problems as
    held-out ones without a word."""
    run = tmp_path / "run"
    code, err = cli(capsys, "sft", "--profile", "test", "--sft.max_steps", "1", "--out", str(run))
    assert code == 0, err
    said = "training problems of"
    code, err = cli(capsys, "eval", "--model", str(run), "--profile", "test", "--out", str(tmp_path / "e1"))
    assert code == 0 and said not in caplog.text, err  # its own held-out problems
    resplit = ("--dataset.split.seed", "7")
    code, err = cli(capsys, "eval", "--model", str(run), "--profile", "test", *resplit, "--out", str(tmp_path / "e2"))
    assert code == 0, err
    assert "eval: " in caplog.text and f"held-out problems scored are {said} {run}" in caplog.text
    caplog.clear()
    code, err = cli(capsys, "eval", "--model", str(run), "--profile", "test", "--data", "arithmetic",
                    "--out", str(tmp_path / "e3"))  # fmt: skip
    assert code == 0 and said in caplog.text, err
    caplog.clear()
    code, err = cli(capsys, "sft", "--model", str(run), "--profile", "test", *resplit, "--sft.max_steps", "1",
                    "--out", str(tmp_path / "s2"))  # fmt: skip
    assert code == 0 and "sft: " in caplog.text and said in caplog.text, err
