"""Datasets in, canonical train / held-out rows out, and the row shapes each stage trains on."""

from __future__ import annotations

import codecs
import csv
import json
import logging
import random
import re
import sys
import tempfile
import warnings
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, Value, load_dataset
from datasets.table import InMemoryTable
from pandas.errors import ParserWarning

from r1kit.config.schema import DatasetConfig
from r1kit.data import synthetic
from r1kit.data.adapters import (
    ADAPTERS,
    CANONICAL_COLUMNS,
    BadRow,
    answer_text,
    detect_format,
    left_out_turns,
    text_of_parts,
    with_gold_column,
)
from r1kit.hub import offline_if_unreachable, offline_reason
from r1kit.prompts import chat_prompt, r1_completion

logger = logging.getLogger("r1kit")

_LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


class DatasetError(ValueError):
    """A dataset that cannot be used as configured; the message says which file, row and field."""


class Raw(NamedTuple):
    """Rows as read, before a format is applied: how many lines or items the reader left out (not JSON objects, a CSV
    row wider than its header), and where each row is in its file, which bad-row messages name (`unit` and its 1-based
    `places`; None where the i-th row is `unit` i)."""

    rows: Dataset
    skipped: int = 0
    unit: str = "row"
    places: Sequence[int] | None = None
    columns: Mapping[str, str] | None = None  # the renaming `renamed` applied ({file column: format column}), its key
    columns_key: str = "dataset.columns"

    def place(self, index: int) -> str:
        """Where row `index` is: "line 7" of a JSONL file with blank or bad lines before it, else its number.

        >>> Raw(Dataset.from_list([{"q": 1}] * 2), unit="line", places=[3, 7]).place(1), Raw(None).place(4)
        ('line 7', 'row 5')
        """
        return f"{self.unit} {self.places[index] if self.places is not None else index + 1}"

    def fault(self, index: int, bad: BadRow) -> str:
        """Where row `index` is and what is wrong with it, its field named as the file names it.

        >>> Raw(None, columns={"answer": "solution"}).fault(5, BadRow("solution", "is missing"))
        "row 6: field 'answer' (read as 'solution' through dataset.columns) is missing"
        """
        written = next((old for old, new in (self.columns or {}).items() if new == bad.field), None)
        if written is None:
            return f"{self.place(index)}: {bad}"
        return (
            f"{self.place(index)}: field {written!r} (read as {bad.field!r} through {self.columns_key}) {bad.problem}"
        )


@dataclass(frozen=True)
class HeldOut:
    """What other data trained on leaves out of every held-out problem, those dataset.max_test_samples leaves
    unscored too (a stage finished under one count then holds for any other): their questions, and their worked
    solutions (a built-in task's reworded twins and steps, `_without_held_out_twins`)."""

    questions: frozenset[str]
    worked: frozenset[str]

    @classmethod
    def of(cls, test: Dataset) -> HeldOut:
        return cls(frozenset(test["question"]), frozenset(worked for worked in test["reasoning"] if worked))

    def __or__(self, other: HeldOut) -> HeldOut:
        return HeldOut(self.questions | other.questions, self.worked | other.worked)


@dataclass
class Splits:
    train: Dataset
    test: Dataset  # the held-out problems scored: dataset.max_test_samples of them where set
    source: str
    held_out: HeldOut  # every held-out problem, scored or not
    skipped_rows: int = 0  # bad rows left out under dataset.on_bad_row=skip
    skipped_held_out: int = 0  # those of them in a held-out file (dataset.test_split)


def load_splits(cfg: DatasetConfig) -> Splits:
    """Canonical train and held-out rows for a built-in task, a local file or a hub dataset."""
    if cfg.name in synthetic.BUILTIN_TASKS:
        _say_unused_hub_settings(cfg)
        rows = synthetic.generate(cfg.name, cfg.synthetic.num_examples, cfg.synthetic.seed)
        raw_train, source = Raw(Dataset.from_list(rows)), f"built-in task {cfg.name}"
    else:
        raw_train, source = _load_raw(cfg), cfg.name
    raw_test = _load_held_out(cfg) if cfg.test_split else None

    train, skipped = _adapt(raw_train, cfg, source)
    skipped += raw_train.skipped
    if raw_test is None and not is_local_data(cfg.name) and cfg.name not in synthetic.BUILTIN_TASKS:
        # a hub dataset's own test split (GSM8K's, NuminaMath-TIR's) is what its users score on: said, not guessed
        # (some hub test splits have no answers)
        logger.warning(
            "%s: the held-out problems are %.0f%% of its %r split (dataset.split.test_size), not its own test split: "
            "give that with --dataset.test_split (e.g. test)",
            cfg.name,
            100 * cfg.split.test_size,
            cfg.train_split,
        )
    if raw_test is None:
        train, test = _held_out_split(train, cfg, source)
    else:
        test, skipped_test = _adapt(raw_test, cfg, held_out_source(cfg))
        skipped_test += raw_test.skipped
        skipped += skipped_test
        test = _each_problem_once(test, held_out_source(cfg))
        trained = len(train)
        train = without_held_out(train, HeldOut.of(test), cfg)  # its twins too, for a file of the task's problems
        if len(train) < trained and cfg.name not in synthetic.BUILTIN_TASKS:
            logger.warning(
                "%s: %s with a problem of the held-out file %s left out of training (scored, it would measure memory)",
                source,
                counted(trained - len(train), "training row"),
                held_out_source(cfg),
            )
        if not len(train):
            raise DatasetError(
                f"{source}: every training row asks a problem of the held-out file {held_out_source(cfg)} (the same "
                "file twice?): give problems to train on that are not held out"
            )
    # the split shuffled the rows; those of data given with a held-out file, and the file's, are in the file's order,
    # which may be sorted (by level, by source): a seeded draw, or training would see its first kind of problem alone
    in_file_order = raw_test is not None
    if cfg.max_train_samples and cfg.max_train_samples < len(train):
        train = train.select(first_or_drawn(len(train), cfg.max_train_samples, cfg.split.seed, in_file_order))
    held_out = HeldOut.of(test)
    if cfg.max_test_samples:
        test = test.select(first_or_drawn(len(test), cfg.max_test_samples, cfg.split.seed, in_file_order))
    held_out_skipped = skipped_test if raw_test is not None else 0
    return Splits(
        train=train,
        test=test,
        source=source,
        held_out=held_out,
        skipped_rows=skipped,
        skipped_held_out=held_out_skipped,
    )


def first_or_drawn(count: int, limit: int, seed: int, drawn: bool) -> Sequence[int]:
    """Up to `limit` of `count` rows' indices: the first ones (rows in a seeded order already), or where `drawn` (rows
    in their file's order, maybe sorted) a seeded draw kept in order (`drawn_indices`).

    >>> list(first_or_drawn(100, 3, 1, drawn=False)), first_or_drawn(100, 3, 1, drawn=True) == drawn_indices(100, 3, 1)
    ([0, 1, 2], True)
    """
    return drawn_indices(count, limit, seed) if drawn else range(min(limit, count))


def drawn_indices(count: int, limit: int, seed: int) -> list[int]:
    """Up to `limit` of `count` rows' indices, a seeded draw kept in order: a training split of data given with a
    held-out file keeps the file's order, often sorted (by level, by source), where the first N were one kind alone.

    >>> drawn_indices(5, 10, seed=0), len(set(drawn_indices(100, 10, seed=0))), drawn_indices(100, 3, 1) == sorted(drawn_indices(100, 3, 1))
    ([0, 1, 2, 3, 4], 10, True)
    """
    if limit >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), limit))


def _held_out_split(rows: Dataset, cfg: DatasetConfig, source: str) -> tuple[Dataset, Dataset]:
    """dataset.split.test_size of `rows` held out. A built-in task asks the same sum in several wordings ("What is
    3 + 17?", "Compute 3 + 17.") and a word problem with other names: training leaves out every problem whose worked
    solution (its arithmetic) is a held-out one's, so the held-out score is not one of reworded training problems.

    The split is of problems, not rows: data with several rows of a problem (k traces of each, as distillation and
    rejection-sampling files have) would hold a problem out and train on its other rows. A held-out problem is
    scored once (its first row), and each training problem keeps all its rows."""
    rows_of: dict[str, list[int]] = {}
    for index, question in enumerate(rows["question"]):
        rows_of.setdefault(question, []).append(index)
    problems = rows.select([indices[0] for indices in rows_of.values()]) if len(rows_of) < len(rows) else rows
    try:
        parts = problems.train_test_split(test_size=cfg.split.test_size, seed=cfg.split.seed)
    except ValueError as error:  # too few problems to hold some out and train on the rest
        of_problems = f" of {counted(len(rows_of), 'problem')}" if problems is not rows else ""
        raise DatasetError(
            f"{source}: {counted(len(rows), 'usable row')}{of_problems}, too few to hold out dataset.split.test_size "
            f"({cfg.split.test_size}) of them and train on the rest ({error}); add rows, or give the held-out "
            "problems as a file with dataset.test_split"
        ) from None
    train, test = parts["train"], parts["test"]
    if problems is not rows:  # each training problem with all its rows, in the split's (shuffled) order
        logger.info(
            "%s: %s of %s: held out by problem", source, counted(len(rows_of), "problem"), counted(len(rows), "row")
        )
        train = rows.select([index for question in train["question"] for index in rows_of[question]])
    return _without_held_out_twins(train, HeldOut.of(test), cfg), test


def _each_problem_once(test: Dataset, source: str) -> Dataset:
    """A held-out file's rows, each problem once (its first row): a problem written twice was scored twice."""
    first = {question: index for index, question in reversed(list(enumerate(test["question"])))}
    if len(first) == len(test):
        return test
    logger.warning(
        "%s: %s repeating an earlier problem left out: each held-out problem is scored once",
        source,
        counted(len(test) - len(first), "row"),
    )
    return test.select(sorted(first.values()))


def without_held_out(train: Dataset, held_out: HeldOut, cfg: DatasetConfig) -> Dataset:
    """`train` (of the data `cfg` names) without `held_out` problems: their questions, and for a built-in task their
    reworded twins and steps (`_without_held_out_twins`). A recipe stage's own data against the run's held-out
    problems, on which every model of the run is scored."""
    train = train.select([i for i, question in enumerate(train["question"]) if question not in held_out.questions])
    return _without_held_out_twins(train, held_out, cfg)


def _without_held_out_twins(train: Dataset, held_out: HeldOut, cfg: DatasetConfig) -> Dataset:
    """A built-in task's training rows without the reworded twins of held-out problems, the same arithmetic asked in
    other words ("Compute 3 + 17." beside a held-out "What is 3 + 17?"), nor those whose worked solution has a
    held-out one-step problem as one of its steps ("37 + 48 = 85" on the way to another answer): scored, they would
    be remembered."""
    if cfg.name not in synthetic.BUILTIN_TASKS:
        return train
    known = held_out.worked
    return train.select(
        [
            i
            for i, worked in enumerate(train["reasoning"])
            if worked not in known and not any(step.strip() in known for step in (worked or "").splitlines())
        ]
    )


def innermost_cause(error: BaseException) -> str:
    """The message of the exception at the bottom of `error`'s chain: the datasets library wraps what went wrong
    ("Failed to parse string: '1/2' as a scalar of type int64") in "An error occurred while generating the dataset"."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return " ".join(str(error).split())


def counted(count: int, noun: str) -> str:
    """A count and its noun, for a log line.

    >>> counted(1, "bad row"), counted(3, "line")
    ('1 bad row', '3 lines')
    """
    return f"{count} {noun}{'' if count == 1 else 's'}"


def read_rows(path: Path) -> Dataset:
    """Canonical rows a stage wrote (JSONL, one row per line); none with the canonical columns (a stage that kept no
    row: a dataset without columns ended the next stage in "Column 'solution' doesn't exist")."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Dataset.from_list(rows) if rows else Dataset.from_dict({c: [] for c in CANONICAL_COLUMNS})


def load_eval_rows(cfg: DatasetConfig, whole_file: bool = True) -> tuple[Dataset, int]:
    """The rows `r1kit eval` scores and the bad rows skipped under dataset.on_bad_row=skip: a local file as a whole
    where `whole_file` (the user named it to score), its test_split file, else the held-out split, as training
    carved it (a run's own data: the problems its table scored, not its training rows)."""
    if scores_whole_file(cfg, whole_file):
        rows, skipped = load_all_rows(cfg)  # a file named to score: its first rows, as the README's tables took them
        rows = _each_problem_once(rows, cfg.name)  # as a run's held-out file is read: the two pair problem by problem
        return rows.select(range(min(cfg.max_test_samples or len(rows), len(rows)))), skipped
    splits = load_splits(cfg)
    # a held-out file's own bad rows: the training file's cost none of the problems scored
    return splits.test, splits.skipped_held_out if cfg.test_split else splits.skipped_rows


def scores_whole_file(cfg: DatasetConfig, whole_file: bool) -> bool:
    """Whether `load_eval_rows` reads the local file as a whole (`whole_file`: the user named it to score)."""
    return whole_file and is_local_data(cfg.name) and not cfg.test_split


def load_all_rows(cfg: DatasetConfig, first: int | None = None) -> tuple[Dataset, int]:
    """Every canonical row of local data (the file as a whole) or of a hub dataset's training split, none held out,
    and the bad rows skipped under dataset.on_bad_row=skip: data scored whole, or trained on beside a task that has its
    own held-out problems (sft2's general data). `first`: only that many rows are made canonical (a check)."""
    if cfg.name in synthetic.BUILTIN_TASKS:
        raw = Raw(Dataset.from_list(synthetic.generate(cfg.name, cfg.synthetic.num_examples, cfg.synthetic.seed)))
    else:
        raw = _load_raw(cfg)
    if first is not None and first < len(raw.rows):
        raw = raw._replace(rows=raw.rows.select(range(first)))
    rows, skipped = _adapt(raw, cfg, cfg.name)
    return rows, skipped + raw.skipped


def held_out_source(cfg: DatasetConfig) -> str:
    """What the held-out problems are, in words: the test_split file or hub split when one is given.

    >>> from r1kit.config.schema import DatasetConfig
    >>> held_out_source(DatasetConfig(test_split="data/test.jsonl")), held_out_source(DatasetConfig(name="a/b"))
    ('data/test.jsonl', 'a/b')
    """
    if not cfg.test_split:
        return cfg.name
    return cfg.test_split if names_a_file(cfg) else f"{cfg.name} [{cfg.test_split}]"


def is_local_data(name: str) -> bool:
    """`name` is a data file or folder here (or meant as one: a data-file suffix, a path), not a hub dataset id.

    >>> is_local_data("data/train.jsonl"), is_local_data("./mine"), is_local_data("openai/gsm8k")
    (True, True, False)
    """
    if name in synthetic.BUILTIN_TASKS:  # a folder of that name here does not make it one: `./arithmetic` does
        return False
    return Path(name).suffix.lower() in _LOCAL_BUILDERS or Path(name).exists() or name.startswith((".", "/", "~"))


def split_is_file(name: str, split: str) -> bool:
    """A held-out split is a file: always with local data, and with a hub dataset when it looks like one (a hub
    dataset's other splits are names such as `test`). The one rule for problems and preference pairs alike.

    >>> split_is_file("data/train.jsonl", "test"), split_is_file("org/set", "test"), split_is_file("org/set", "t.jsonl")
    (True, False, True)
    """
    return is_local_data(name) or Path(split).suffix.lower() in _LOCAL_BUILDERS


def names_a_file(cfg: DatasetConfig) -> bool:
    """dataset.test_split is a file: always with a built-in task, otherwise as `split_is_file` says."""
    return cfg.name in synthetic.BUILTIN_TASKS or split_is_file(cfg.name, cfg.test_split or "")


def held_out_file(split: str, key: str) -> Path:
    """The held-out file that `key` (a test_split setting) names, or a DatasetError saying what is wrong with it."""
    path = Path(split).expanduser()
    if not path.exists() and not path.suffix:  # a hub-style split name (`validation`) for local data
        raise DatasetError(
            f"{key} {split!r}: for a built-in task or a local file the held-out set is a file "
            "(.jsonl/.json/.parquet/.csv); split names are for hub datasets. Leave it unset to hold out a share of "
            "the rows"
        )
    if not path.exists():
        raise DatasetError(f"{key} {split!r}: held-out file not found")
    return path


def _load_held_out(cfg: DatasetConfig) -> Raw:
    if names_a_file(cfg):
        return load_file(held_out_file(cfg.test_split, "dataset.test_split"), cfg.on_bad_row)
    return _load_raw(cfg, held_out=cfg.test_split)


def _say_unused_hub_settings(cfg: DatasetConfig) -> None:
    """dataset.subset or dataset.train_split named for a built-in task or a local file, which has neither."""
    say_unused_hub_parts(
        cfg.name,
        ("dataset.subset", cfg.subset),
        ("dataset.train_split", cfg.train_split, type(cfg).model_fields["train_split"].default),
        " (its held-out problems are a dataset.split.test_size share of it, or dataset.test_split's file)",
    )


def say_unused_hub_parts(
    name: str, subset: tuple[str, str | None], split: tuple[str, str, str], held_out: str = ""
) -> None:
    """A hub dataset's configuration or split named for `name`, a built-in task or a local file, which has neither:
    `subset` is (its key, its value), `split` (its key, its value, the key's default); `held_out` says where such
    data's held-out part comes from instead."""
    key, value = subset
    if value:  # TRL's --dataset_config all, given for data that has no configurations
        logger.warning("%s %r names a configuration of a hub dataset; %s has none, so it is not used", key, value, name)
    key, value, default = split
    if value != default:  # TRL's --dataset_train_split train_sft
        logger.warning(
            "%s %r names a split of a hub dataset; %s is read whole%s, so it is not used", key, value, name, held_out
        )


def _load_raw(cfg: DatasetConfig, held_out: str | None = None) -> Raw:
    """The training rows of local data (a file), or of a hub dataset (`held_out`: another split of it)."""
    if held_out is None and is_local_data(cfg.name):
        _say_unused_hub_settings(cfg)
    offline = "Use a built-in task (arithmetic, word_problems, mixed) or a local .jsonl/.json/.parquet/.csv file."
    return load_raw(cfg.name, cfg.subset, held_out or cfg.train_split, "dataset", offline, cfg.on_bad_row)


def load_raw(name: str, subset: str | None, split: str, what: str, instead: str, on_bad_row: str = "error") -> Raw:
    """A local file as a whole (`load_file`), or a split of a hub dataset; a hub that cannot be reached is an error
    naming `what` is loaded and what to use `instead`."""
    if is_local_data(name):
        return load_file(Path(name).expanduser(), on_bad_row)
    offline_if_unreachable()
    try:
        return Raw(short_floats_as_written(load_dataset(name, subset, split=split)))
    except Exception as error:
        if offline := offline_reason():  # the library speaks of its offline mode: say why it is on, keep its words
            raise DatasetError(
                f"cannot load {what} {name!r} (split {split!r}): {offline}, so only the local cache was searched "
                f"({' '.join(str(error).split())}) {instead}"
            ) from error
        raise DatasetError(
            f"cannot load {what} {name!r} (split {split!r}) from the Hugging Face hub: {' '.join(str(error).split())} "
            f"Offline? {instead}"
        ) from error


def load_file(path: Path, on_bad_row: str = "error") -> Raw:
    """A local .jsonl/.json/.parquet/.csv file's rows (a missing or unreadable file: DatasetError), how many of its
    lines or items were left out as not JSON objects or as CSV rows wider than the header (`on_bad_row` skip; under
    `error` the first one stops the load), and where each row is in the file."""
    if not path.exists():
        raise DatasetError(f"dataset file not found: {path}")
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not a data file (.jsonl/.json/.parquet/.csv)")
    builder = _LOCAL_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DatasetError(f"{path}: unsupported file type; use one of {', '.join(_LOCAL_BUILDERS)}")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: the file is empty")
    with path.open("rb") as file:
        start = file.read(64)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 or UTF-32 (PowerShell's default): no reader here reads it
        raise DatasetError(f"{path}: UTF-16 or UTF-32 text (it starts with that byte-order mark); save it as UTF-8")
    if builder == "csv":
        return _load_csv(path, on_bad_row)
    if builder != "json":
        return Raw(_load_with_builder(path, builder, path))
    whole = _whole_json(path) if path.suffix.lower() == ".json" else None
    if path.suffix.lower() == ".jsonl" and _opens_array(start):
        try:  # a JSON array saved as .jsonl (json.dump of a list of rows): read as the datasets library reads it
            whole = _whole_json(path)
        except DatasetError:  # no array: lines, each judged as a line
            whole = None
    if whole is None:  # JSON lines (a .json file may hold them too)
        return _load_json_lines(partial(_file_lines, path), path, on_bad_row, "line")
    rows = _rows_of(whole)
    if rows == []:
        raise DatasetError(f"{path}: holds no rows (an empty array)")
    if rows is None:  # another object: one row, as the datasets library reads it
        return Raw(_load_with_builder(path, builder, path))

    def items() -> Iterator[bytes]:  # an array's rows as JSON lines: one reading for both
        # escaped as ASCII: a lone surrogate (an emoji cut in two) has no UTF-8, and the scan names its item
        return ((json.dumps(record) + "\n").encode() for record in rows)

    # columns (not an array) are read as rows only from the rewritten copy
    array = isinstance(whole, list)
    # an integer too long to read is written out as text in the copy: the library fails on the file itself
    long_digits = any(isinstance(value, _Digits) for row in rows if isinstance(row, dict) for value in row.values())
    return _load_json_lines(items, path, on_bad_row, "item" if array else "row", as_written=array and not long_digits)


class _CsvRecord(NamedTuple):
    """One row of a CSV file as `_load_csv` judges it."""

    line: int  # the file's line it starts on
    fields: int
    index: int  # among pandas' rows (blank lines counted, a quoted cell's lines one row)
    comma_end: bool  # its line ends in a comma: a blank cell no quotes hold
    first: str  # its first cell


def _load_csv(path: Path, on_bad_row: str) -> Raw:
    """A CSV file's rows and the line each starts on (a quoted cell may span lines; blank lines hold no row, as
    pandas reads them). Under `on_bad_row` skip its rows with more fields than its header (an unquoted comma in a
    question) are left out, counted and named, as a JSONL file's bad lines are (pandas stopped the load at the
    first)."""
    records: list[_CsvRecord] = []
    end, last = 0, [""]  # the last line the reader took: a row's own last line when it yields the row

    def lines(file) -> Iterator[str]:
        for line in file:
            last[0] = line
            yield line

    limit = csv.field_size_limit(2**31 - 1)  # its default, 131,072 characters, refused a long worked solution
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            rows = csv.reader(lines(file))
            for index, row in enumerate(rows):  # line_num: the file's line the row ends on, quotes spanned
                if _holds_cells(row):
                    comma_end = last[0].rstrip(" \t\r\n").endswith(",")
                    records.append(_CsvRecord(end + 1, len(row), index, comma_end, row[0].strip()))
                end = rows.line_num
    except UnicodeDecodeError as error:  # Excel's Windows export (cp1252): not a bad row, a file to convert
        raise DatasetError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from error
    except csv.Error as error:
        raise DatasetError(f"{path}: cannot be read as csv: {error} (line {end + 1})") from error
    finally:
        csv.field_size_limit(limit)
    width, records = (records[0].fields, records[1:]) if records else (0, [])
    # Where the first row is one field wider than the header, pandas reads the file's first column as its index.
    # That is right only where every row is wider, as R's write.table writes its row names: a wider first row among
    # rows of the header's width shifted every row by a field. Where every row is wider, a comma ending each
    # one-wider row (`q,4,`) makes a blank cell more, dropped (pandas does, told the file has no index); where none
    # does, the first field is the row names; a mix is R's row names with blank cells unquoted where the first cells
    # number the rows (1, 2, …) or fewer than half end in a comma. Any other file could be read either way, one of
    # them shifted: it is refused.
    wider = bool(records) and all(r.fields > width for r in records)
    comma_ends = [r.comma_end for r in records if r.fields == width + 1]
    numbered = len({r.first for r in records}) == len(records) and all(r.first.isdigit() for r in records)
    mixed = any(comma_ends) and not all(comma_ends)
    few = 2 * sum(comma_ends) < len(comma_ends)
    trailing_commas = wider and bool(comma_ends) and all(comma_ends) and not numbered
    row_names = wider and (not any(comma_ends) or (mixed and (numbered or few)))
    if wider and not (row_names or trailing_commas):
        raise DatasetError(
            f"{path}: every row has more fields than the header, and {sum(comma_ends)} of the {len(comma_ends)} with "
            "one more end in a comma: stray commas at the rows' ends (remove them from every row), or row names in "
            "a first column the header does not name (name it in the header; a comma ending a row is then its "
            "blank last cell)?"
        )
    bad = [r for r in records if r.fields > width + wider]
    if bad and on_bad_row == "error":  # pandas' own error counts records, not the file's lines
        cause = "a comma at its end?" if bad[0].comma_end else "an unquoted comma?"
        raise DatasetError(
            f"{path}: line {bad[0].line} has {bad[0].fields} fields, the header {width} ({cause}); quote that cell or "
            "set dataset.on_bad_row=skip"
        )
    skipped = {r.index for r in bad}
    places = array("q", (r.line for r in records if r.index not in skipped))
    if bad:
        logger.warning(
            "%s: %s with more fields than the header skipped (dataset.on_bad_row skip): line%s %s%s",
            path,
            counted(len(bad), "row"),
            "" if len(bad) == 1 else "s",
            ", ".join(str(r.line) for r in bad[:5]),
            ", …" if len(bad) > 5 else "",
        )
    # pandas is told which rows to leave out (its own skipping kept a wider first row as the index of every row)
    loaded = _load_with_builder(path, "csv", path, csv_rows_left_out=sorted(skipped), no_index=trailing_commas)
    return Raw(loaded, len(bad), "line", places)


def _holds_cells(row: list[str]) -> bool:
    """Whether a CSV line is a row to pandas: not an empty line, nor one of spaces alone.

    >>> _holds_cells([]), _holds_cells([" \t"]), _holds_cells(["", ""]), _holds_cells(["q"])
    (False, False, True, True)
    """
    return len(row) > 1 or bool(row and row[0].strip())


def _file_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as lines:  # a binary file's lines end at b"\n" only, not at a bare b"\r"
        yield from lines


def _opens_array(data: bytes) -> bool:
    """Whether a file's bytes open a JSON array (after a byte-order mark and blanks)."""
    return data.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"[")


def _whole_json(path: Path) -> object | None:
    """A .json file's one JSON value (an array of rows, an object), or None where it holds JSON lines. A file that
    opens an array and is not valid JSON (a trailing comma, a byte that is not UTF-8) is a DatasetError naming where:
    read as JSON lines, its first line was said to be no JSON, and `skip` then found no row in any line."""
    data = path.read_bytes()
    try:
        return json.loads(data.decode("utf-8-sig"), parse_int=_int_or_digits)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        if not _opens_array(data):
            return None  # JSON lines, read line by line
        if isinstance(error, UnicodeDecodeError):
            where = f"not UTF-8 text (byte {error.start + 1} is not UTF-8); save it as UTF-8"
        else:
            where = (
                f"not valid JSON at line {error.lineno}, column {error.colno} ({error.msg}); a .json file holds one "
                "array of rows (or JSON lines)"
            )
        raise DatasetError(f"{path}: {where}") from None


def _nested_rows(value: object) -> bool:
    """Whether `value` is a list of rows (objects) rather than one row's chat turns (objects with a role).

    >>> _nested_rows([{"question": "q", "solution": "1"}]), _nested_rows([{"role": "user", "content": "hi"}])
    (True, False)
    """
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) for item in value)
        and not any(item.keys() & {"role", "from"} for item in value)
    )


def _rows_of(whole: object) -> list | None:
    """The rows of a .json file's value: an array of them, its rows by number (pandas' `orient="index"`), or its
    columns (pandas' `to_json(orient="columns")` or a dict of equal-length lists, which the datasets library read as
    one row of lists); None for another object (one row: a single chat `{"messages": [...]}`).

    >>> _rows_of({"q": ["a", "b"], "s": ["1", "2"]}), _rows_of({"q": {"0": "a", "1": "b"}, "s": {"0": "1", "1": "2"}})
    ([{'q': 'a', 's': '1'}, {'q': 'b', 's': '2'}], [{'q': 'a', 's': '1'}, {'q': 'b', 's': '2'}])
    >>> _rows_of({"messages": [{"role": "user", "content": "hi"}]}), _rows_of({"q": "a", "s": "1"})
    (None, None)
    >>> turns = {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "a"}]}
    >>> _rows_of(turns) is None  # one conversational row, as TRL writes them
    True
    >>> _rows_of({"text": {"0": "a", "1": "b"}}), _rows_of({"messages": [{"role": "user", "content": "hi"}]})
    ([{'text': 'a'}, {'text': 'b'}], None)
    >>> _rows_of({"text": ["a", "b"]}), _rows_of({"0": {"q": "a", "s": "1"}, "1": {"q": "b", "s": "2"}})
    ([{'text': 'a'}, {'text': 'b'}], [{'q': 'a', 's': '1'}, {'q': 'b', 's': '2'}])
    """
    if isinstance(whole, list):
        return whole
    if isinstance(whole, dict) and len(whole) == 1:  # one column as pandas writes it: {"messages": {"0": …, "1": …}}
        [(name, column)] = whole.items()
        if _nested_rows(column):  # {"data": [rows]}, the datasets library's `field="data"`
            return column
        indexed = isinstance(column, dict) and column and all(key.isdigit() for key in column)
        if indexed:
            return [{name: cell} for cell in column.values()]
        # a list of texts or numbers: one column (to_dict("list") of a frame of one), as two such lists are read
        cells = isinstance(column, list) and column and not any(isinstance(cell, dict | list) for cell in column)
        return [{name: cell} for cell in column] if cells else None
    if not isinstance(whole, dict):
        return None
    columns = list(whole.values())
    lists = all(isinstance(column, list) for column in columns)
    if lists and any(isinstance(cell, dict) for column in columns for cell in column):
        return None  # chat turns: one conversation ({"prompt": [turns], "completion": [turns]})
    if lists and len({len(column) for column in columns}) == 1:
        return [dict(zip(whole, cells, strict=True)) for cells in zip(*columns, strict=True)]
    if all(isinstance(column, dict) for column in columns) and len({tuple(column) for column in columns}) == 1:
        if all(key.isdigit() for key in whole) and not all(key.isdigit() for key in columns[0]):
            return columns  # pandas' orient="index": {row number: row}, read transposed as columns
        return [{name: whole[name][index] for name in whole} for index in columns[0]]
    return None


class _Digits(str):
    """An integer too long for Python's int() (over sys.get_int_max_str_digits(), 4,300 digits), kept as its
    digits: json.loads raised ValueError on it (a gold like 2**16000 written out)."""


def _int_or_digits(digits: str) -> int | str:
    """
    >>> _int_or_digits("-12"), type(_int_or_digits("9" * 5000)).__name__
    (-12, '_Digits')
    """
    limit = sys.get_int_max_str_digits()
    return _Digits(digits) if limit and len(digits.lstrip("-")) > limit else int(digits)


def _load_json_lines(
    lines: Callable[[], Iterable[bytes]], shown: Path, on_bad_row: str, unit: str, as_written: bool = True
) -> Raw:
    """JSON lines (`lines()` reads them anew each time) as rows, and how many were left out: those that are not JSON
    objects (under `on_bad_row` error the first stops the load), and the values the datasets library would misread
    written as text first (`_scan_json_lines`). `shown`: the user's file, whose `unit` (a line, an array's item)
    messages name; read as it is where nothing needs rewriting and the library reads its rows as `lines()`
    (`as_written`; the datasets library caches a file by its path: not a temporary copy's)."""
    bad, fields, kept = _scan_json_lines(lines(), shown, on_bad_row, unit)
    places = None if kept[-1] == len(kept) else kept  # a blank or bad line came before a row
    # the library re-reads a file of uneven columns line by line, and a blank line then failed the load ("Expected
    # object or value"): such a file is read from a copy without them
    if as_written and not bad and not fields.rewritten and not (fields.uneven and fields.blank_lines):
        return Raw(_load_with_builder(shown, "json", shown, fields.uneven), unit=unit, places=places)
    if bad:
        what = "is not a readable JSON object" if len(bad) == 1 else "are not readable JSON objects"
        numbers = ", ".join(str(number) for number in sorted(bad)[:5]) + (", …" if len(bad) > 5 else "")
        logger.warning(
            "%s: %s that %s skipped (dataset.on_bad_row skip): %s %s",
            shown,
            counted(len(bad), unit),
            what,
            unit if len(bad) == 1 else f"{unit}s",
            numbers,
        )
    with tempfile.TemporaryDirectory() as scratch:  # the datasets library reads a file or nothing: the good lines
        kept = Path(scratch) / f"{shown.stem}.jsonl"
        with kept.open("wb") as out:
            for number, line in enumerate(lines(), start=1):
                if number not in bad and line.strip():
                    out.write(_as_read(line, fields) if fields.rewritten else line)
        # its Arrow copy in the scratch folder too, and the rows in memory: cached under the copy's new path each
        # time, every command added a copy of the whole file to the library's cache, never reused nor removed
        loaded = _load_with_builder(kept, "json", shown, fields.uneven, scratch=Path(scratch) / "cache")
        return Raw(loaded, len(bad), unit, places)


def _load_with_builder(
    path: Path,
    builder: str,
    shown: Path,
    uneven: bool = False,
    csv_rows_left_out: Sequence[int] = (),
    no_index: bool = False,
    scratch: Path | None = None,
) -> Dataset:
    """`path` read by a datasets builder; an error names `shown`, the user's file. `uneven`: a JSON file whose
    columns change type (or appear) from row to row (`_Rewrites.uneven`); `csv_rows_left_out`: the rows of a CSV
    file (pandas' count: the header 0, blank lines counted) left out as wider than the header (by `_load_csv`);
    `no_index`: a CSV file's rows end in one blank cell more than its header has, dropped; `scratch`: a temporary
    copy's own cache folder, removed with it (the rows are then read into memory)."""
    library_logger = logging.getLogger("datasets")
    level = library_logger.level
    library_logger.setLevel(logging.CRITICAL)  # it logs its own error before raising; ours below says it once
    try:
        options: dict[str, Any] = {}
        if builder == "csv":
            # pandas reads "None", "NA", "null", "N/A" and "nan" in a CSV as missing: answers, in a math or chat
            # file; and it guesses each column's type, 10,000 rows at a time: a gold "007" was 7, 2**53 + 1 lost its
            # last digit, and a "1/2" after 10,000 whole numbers failed the load. Every cell is read as its text.
            options = {"keep_default_na": False, "na_values": [""], **_text_columns(path)}
            if csv_rows_left_out:
                options["skiprows"] = list(csv_rows_left_out)
            if no_index:
                options["index_col"] = False
        elif builder == "json" and uneven:
            # read in one piece (more memory: only where needed): the library infers each column's type from its first
            # 10 MB, so a 2.5 after them in a column of integers, a text after nulls, or a key first met there failed
            options = {"chunksize": max(10 << 20, path.stat().st_size + 1)}
        if scratch is not None:
            options |= {"cache_dir": str(scratch), "keep_in_memory": True}
        with warnings.catch_warnings():  # pandas on the blank cells no_index drops: "a loss of data", of none
            warnings.filterwarnings("ignore", "Length of header or names does not match", category=ParserWarning)
            loaded = load_dataset(builder, data_files=str(path), split="train", **options)
        return _whole_numbers_unfloated(loaded) if builder == "csv" else short_floats_as_written(loaded)
    except Exception as error:
        said, cause = " ".join(str(error).split()), innermost_cause(error)
        # the library's words for a file without rows (a Parquet table of none: its reader's batch size of 0)
        if "corresponds to no data" in said or "BatchSize must be greater than 0" in cause:
            raise DatasetError(f"{shown}: holds no rows (a header alone, empty objects, an empty table)") from error
        because = f" ({cause})" if cause not in said else ""
        raise DatasetError(f"{shown}: cannot be read as {builder}: {said}{because}") from error
    finally:
        library_logger.setLevel(level)


_FLOATED_WHOLE = re.compile(r"-?\d+\.0")


def _whole_numbers_unfloated(rows: Dataset) -> Dataset:
    """A CSV's cells that are a whole number as pandas writes a float column's (`10.0`: a column with one blank cell
    or one 2.5) as the number (`10`), so an SFT target is `<answer>10</answer>`; other text as written (`2.50`)."""

    for column in rows.column_names:
        cells = rows[column]
        if any(isinstance(cell, str) and _FLOATED_WHOLE.fullmatch(cell) for cell in cells):
            whole = [cell[:-2] if isinstance(cell, str) and _FLOATED_WHOLE.fullmatch(cell) else cell for cell in cells]
            rows = rows.remove_columns(column).add_column(column, whole)
    return rows


def short_floats_as_written(rows: Dataset) -> Dataset:
    """A column of float32 or float16 numbers (Parquet's, a hub dataset's) as the numbers written there: read as
    float64, 99.99 was 99.98999786376953, a gold that a right answer of 99.99 never matched.

    >>> rows = Dataset.from_dict({"solution": [99.99, 2.5, None]}, features=Features({"solution": Value("float32")}))
    >>> list(short_floats_as_written(rows)["solution"])
    [99.99, 2.5, None]
    """
    short = {"float32": np.float32, "float16": np.float16}
    narrow = {
        column: short[feature.dtype]
        for column, feature in rows.features.items()
        if isinstance(feature, Value) and feature.dtype in short
    }
    if not narrow:
        return rows

    rows = rows.flatten_indices() if rows._indices is not None else rows  # a selection's rows, not its table's
    table = rows.data.table  # the other columns stay as they are (memory-mapped): only the narrow ones are read
    for column, kind in narrow.items():  # a float's shortest text at its own width, read back as a float64
        values = [None if value is None else float(str(kind(value))) for value in table.column(column).to_pylist()]
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, pa.float64()))
    features = Features({**rows.features, **dict.fromkeys(narrow, Value("float64"))})
    # a fingerprint of its own from the loaded one's: hashing the whole table for one would read it all
    fingerprint = f"{rows._fingerprint}-short-floats"
    return Dataset(
        InMemoryTable(table.replace_schema_metadata(None)), info=DatasetInfo(features=features), fingerprint=fingerprint
    )


def _text_columns(path: Path) -> dict[str, Any]:
    """`features` reading every column of a CSV file as text, from its header (none where the header repeats a
    name: pandas renames the second, and the library then reads it as it would)."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        header = next((row for row in csv.reader(file) if _holds_cells(row)), [])  # pandas' header: blank lines skipped
    # an empty name (pandas' index column, a trailing comma) is pandas' "Unnamed: N"
    header = [name or f"Unnamed: {index}" for index, name in enumerate(header)]
    if not header or len(set(header)) < len(header):
        return {}
    return {"features": Features({name: Value("string") for name in header})}


# Integers past this lose digits as float64, the type the datasets library gives a column with any integer past int64
_EXACT_IN_A_FLOAT = 2**53
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_TURN_WORDS = ("content", "value")  # a chat turn's words: messages' content, ShareGPT's value


@dataclass
class _Rewrites:
    """What a JSONL file's lines need before the datasets library reads them (`_scan_json_lines`)."""

    numbers: set[str]  # top-level fields whose numbers become their text
    turns: set[str]  # chat fields whose turns' words become text (text parts joined, numbers as their text)
    # top-level fields that mix text with true/false, lists or objects: the library reads such a column as JSON and
    # decodes its texts ("007" read as 7, "true" as True), so each text is written as its own JSON ("\"007\"")
    encoded_texts: frozenset[str] = frozenset()
    uneven: bool = False  # a field of several kinds (whole and decimal numbers, null and a value) or not in every row
    blank_lines: bool = False  # the library re-reads an uneven file line by line, and a blank one failed it

    @property
    def rewritten(self) -> bool:
        return bool(self.numbers or self.turns or self.encoded_texts)


def _scan_json_lines(
    lines: Iterable[bytes], shown: Path, on_bad_row: str, unit: str
) -> tuple[set[int], _Rewrites, Sequence[int]]:
    """The numbers of a JSONL file's lines (split at newlines only, as datasets' json reader splits them) that are
    not one JSON object each (under `on_bad_row` error the first one is a DatasetError naming it: the datasets
    library names none), what must be read as text, and the numbers of the lines that are its rows (the others but
    blank ones). What must be read as text: the datasets library's column types change it otherwise. A column with
    an integer past int64 becomes float64 (2**53 + 1 read as 2**53, 25! off in its last digits); one
    that mixes strings with anything but null decodes its strings as JSON ("007" read as 7; a one-item list gold
    beside text golds), and so does a chat column whose turns mix plain text with OpenAI-style text parts (a reply
    "5" read as the number 5)."""
    bad, seen, kept = set(), 0, array("q")
    numbers, texts, big, structured = set(), set(), set(), set()
    kinds: dict[str, set[str]] = {}  # field → the JSON kinds of its values (int and float apart)
    present: Counter[str] = Counter()
    turn_text, turn_other = set(), set()
    number = 0
    for number, raw in enumerate(lines, start=1):  # its last number counts the lines
        text = raw.strip()
        if not text:
            continue
        seen += 1
        try:
            record = json.loads(text, parse_int=_int_or_digits)
            problem = None if isinstance(record, dict) else f"must be a JSON object, not {type(record).__name__}"
            if problem is None and _ESCAPED_SURROGATE.search(text):
                try:  # a lone one (an emoji cut in two) is valid JSON that no UTF-8 file, nor Arrow, can hold
                    json.dumps(record, ensure_ascii=False).encode()
                except UnicodeEncodeError:
                    problem = "holds an unpaired surrogate escape (\\ud83d…: an emoji cut in two)"
            for field, value in record.items() if problem is None else ():
                kinds.setdefault(field, set()).add(type(value).__name__)
                present[field] += 1
                if isinstance(value, _Digits):  # written as text, whatever the other rows hold
                    texts.add(field)
                    big.add(field)
                elif isinstance(value, str):
                    texts.add(field)
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    numbers.add(field)
                    if isinstance(value, int) and abs(value) > _EXACT_IN_A_FLOAT:
                        big.add(field)
                elif isinstance(value, bool | dict):
                    structured.add(field)
                elif isinstance(value, list):  # chat turns: is each one's words text?
                    structured.add(field)
                    said = [turn.get(key) for turn in value if isinstance(turn, dict) for key in _TURN_WORDS]
                    if any(isinstance(words, str) for words in said):
                        turn_text.add(field)
                    if any(words is not None and not isinstance(words, str) for words in said):
                        turn_other.add(field)
        except json.JSONDecodeError as error:  # its own "line 1 column 7" counts in the line, not in the file
            where = "at the end of the line" if error.pos >= len(error.doc) else f"at column {error.colno}"
            problem = f"is not valid JSON ({error.msg} {where})"
        except UnicodeDecodeError as error:
            problem = f"is not valid JSON ({error.reason})"
        if problem is None:
            kept.append(number)
            continue
        if on_bad_row == "error":
            raise DatasetError(f"{shown}: {unit} {number} {problem}; fix it or set dataset.on_bad_row=skip")
        bad.add(number)
    if not seen:
        raise DatasetError(f"{shown}: the file is empty (only blank lines)")
    if len(bad) == seen:
        raise DatasetError(f"{shown}: none of its {seen} {unit}s is a JSON object")
    good = seen - len(bad)
    uneven = any(len(kinds[field]) > 1 or present[field] < good for field in kinds)
    encoded = frozenset(texts & structured)
    rewrites = _Rewrites(big | (numbers & texts), turn_text & turn_other, encoded, uneven, blank_lines=number > seen)
    return bad, rewrites, kept


def _as_read(line: bytes, fields: _Rewrites) -> bytes:
    """A JSONL line with the numbers of `fields.numbers` written as their text (`answer_text`: exact for any integer,
    0.00001 without an exponent), the words of the turns in `fields.turns` as text, and the texts of
    `fields.encoded_texts` as their JSON.

    >>> _as_read(b'{"q": "x", "a": 9007199254740993, "n": 2}\\n', _Rewrites({"a"}, set()))
    b'{"q": "x", "a": "9007199254740993", "n": 2}\\n'
    >>> _as_read(b'{"m": [{"content": [{"type": "text", "text": "2 + 3?"}]}, {"content": 5}]}', _Rewrites(set(), {"m"}))
    b'{"m": [{"content": "2 + 3?"}, {"content": "5"}]}\\n'
    >>> texts = _Rewrites({"s"}, set(), frozenset("s"))
    >>> _as_read(b'{"s": "007", "n": 5}', texts), _as_read(b'{"s": 5}', texts)
    (b'{"s": "\\\\"007\\\\"", "n": 5}\\n', b'{"s": "\\\\"5\\\\""}\\n')
    """
    record = json.loads(line, parse_int=_int_or_digits)
    for field in fields.numbers & record.keys():
        value = record[field]
        if isinstance(value, int | float) and not isinstance(value, bool):
            record[field] = answer_text(value)
    for field in fields.turns & record.keys():
        for turn in record[field] if isinstance(record[field], list) else ():
            for key in _TURN_WORDS if isinstance(turn, dict) else ():
                words = turn.get(key)
                if isinstance(words, list):
                    turn[key] = text_of_parts(words)  # '' for an image alone: the adapter's bad row says so
                elif isinstance(words, bool):
                    turn[key] = json.dumps(words)
                elif isinstance(words, int | float):
                    turn[key] = answer_text(words)
    for field in fields.encoded_texts & record.keys():  # after the numbers: a number there is text by now
        if isinstance(record[field], str):
            record[field] = json.dumps(record[field], ensure_ascii=False)
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def _adapt(read: Raw, cfg: DatasetConfig, source: str) -> tuple[Dataset, int]:
    if len(read.rows) == 0:
        raise DatasetError(f"{source}: the dataset is empty")
    read = renamed(read, cfg.columns, source)
    raw = read.rows
    fmt = cfg.format if cfg.format != "auto" else _detect(raw, source)
    adapter = ADAPTERS[fmt]
    # data without the default grouping column is simply not grouped; a column the user names must be there
    if cfg.group_column not in raw.column_names and cfg.group_column != type(cfg).model_fields["group_column"].default:
        raise DatasetError(
            f"{source}: dataset.group_column {cfg.group_column!r} is not a column ({', '.join(raw.column_names)})"
        )
    rows, skipped, cut, unboxed = [], [], 0, 0
    # a `text` column beside another (a notebook's text + target_text): the text is a question, the other its answer
    others = [column for column in raw.column_names if column not in ("text", cfg.group_column)]
    named = (
        f'; if {others[0]!r} holds the answer, name the columns: --dataset.columns "{{text: question, {others[0]}: '
        'solution}"'
        if fmt == "text" and others
        else ""
    )
    for index, row in enumerate(raw):
        try:
            # the grouping column (the built-in tasks' `level`, MATH's `level`, a `task`) breaks accuracy and
            # acceptance rates down in evaluations and reports
            group = row.get(cfg.group_column)
            # as a number's text: a level column with one blank cell is float, and "1.0" split level 1 in two
            rows.append(with_gold_column(adapter(row), row) | {"group": None if group is None else answer_text(group)})
            cut += left_out_turns(row, fmt)
            # no answer column and no \boxed{}: the gold is the whole solution
            unboxed += fmt == "numina" and rows[-1]["solution"] == str(row.get("solution")).strip()
        except BadRow as bad:
            if cfg.on_bad_row == "error":
                # the columns named only where no row read yet: one bad row among good ones is that row's fault
                advice = (not rows and named) or "; fix the row or set dataset.on_bad_row=skip"
                raise DatasetError(f"{source}: {read.fault(index, bad)} ({fmt} format){advice}") from None
            skipped.append(read.fault(index, bad))
    if not rows:
        raise DatasetError(
            f"{source}: all {len(raw)} rows are unusable as {fmt} rows ({'; '.join(skipped[:3])}){named}"
        )
    if skipped:  # which and why, or the count alone leaves the user to find them
        logger.warning(
            "%s: %s skipped (dataset.on_bad_row skip): %s%s",
            source,
            counted(len(skipped), "bad row"),
            "; ".join(skipped[:3]),
            "; …" if len(skipped) > 3 else "",
        )
    if unboxed:  # its gold is then the whole solution, whose last number the verifier reads
        logger.warning(
            "%s: %d of %d NuminaMath rows have no \\boxed{} answer: their gold answer is the last number of the whole "
            "solution, which may not be the answer (and they are no worked solutions for SFT)",
            source,
            unboxed,
            len(raw),
        )
    if cut:
        logger.warning(
            "%s: %d of %d rows hold their own system message or more than one exchange; r1kit keeps one user message "
            "of each row and the reply to it, asked with prompt.system (the other turns and the rows' system "
            "messages are left out)",
            source,
            cut,
            len(raw),
        )
    return Dataset.from_list(rows), len(skipped)


def renamed(read: Raw, columns: dict[str, str], source: str, key: str = "dataset.columns") -> Raw:
    """`read` with the config's `key` renaming applied ({file column: format column}), which its bad rows' messages
    undo."""
    raw = read.rows
    missing = [column for column in columns if column not in raw.column_names]
    if missing:
        raise DatasetError(
            f"{source}: {key} renames {', '.join(missing)}, which the data does not have "
            f"(its columns: {', '.join(raw.column_names)})"
        )
    taken = [new for old, new in columns.items() if new in raw.column_names and new not in columns]
    if taken:
        raise DatasetError(f"{source}: {key} renames a column to {', '.join(taken)}, which the data has")
    return read._replace(rows=raw.rename_columns(columns) if columns else raw, columns=columns, columns_key=key)


DETECTED_FROM = 20  # the first rows whose contents tell a format where its columns cannot (GSM8K's ####)


def _detect(raw: Dataset, source: str) -> str:
    try:
        return detect_format(raw.column_names, raw.select(range(min(len(raw), DETECTED_FROM))).to_list())
    except ValueError as error:
        raise DatasetError(f"{source}: {error}") from None


# ------------------------------------------------------------------------------------ rows each stage trains on


def grpo_rows(rows: Dataset, system_prompt: str) -> Dataset:
    """TRL GRPO rows: a conversational `prompt`, and `solution`, which reaches the rewards as a kwarg."""
    return Dataset.from_dict(
        {
            "prompt": [chat_prompt(q, system_prompt) for q in rows["question"]],
            "solution": list(rows["solution"]),
        }
    )


NO_SFT_ROWS = (
    "no row has a worked solution (r1kit's `reasoning` column, GSM8K's steps) or a reference reply (chat formats) to "
    "fine-tune on: add worked solutions, or train on final answers with `r1kit grpo` or `r1kit run --recipe r1_zero`"
)


def r1_target(row: dict) -> str | None:
    """A row's worked solution and gold answer in R1 format (<think>reasoning</think><answer>gold</answer>), or
    None (a chat row, or a problem without a worked solution)."""
    return r1_completion(row["reasoning"], row["solution"]) if row["reasoning"] and row["solution"] else None


def sft_target(row: dict) -> str | None:
    """A row's SFT completion: its `r1_target`, else its reference reply (chat rows), else None (nothing to
    fine-tune on)."""
    return r1_target(row) or row["response"] or None


def has_sft_rows(rows: Dataset) -> bool:
    """Whether `sft_rows` finds something to train on; stops at the first row that has it."""
    return any(sft_target(row) for row in rows)


def sft_rows(rows: Dataset, system_prompt: str) -> Dataset:
    """TRL prompt-completion rows for cold-start SFT: each row with an `sft_target`; rows without one are left out."""
    prompts, completions = [], []
    for row in rows:
        target = sft_target(row)
        if target is None:
            continue
        prompts.append(chat_prompt(row["question"], system_prompt))
        completions.append([{"role": "assistant", "content": target}])
    if not prompts:
        raise DatasetError(NO_SFT_ROWS)
    if len(prompts) < len(rows):  # the final count alone did not say why most of the data was not trained on
        logger.warning(
            "%d of %d training rows have no worked solution or reference reply (final answers only): left out of SFT",
            len(rows) - len(prompts),
            len(rows),
        )
    return Dataset.from_dict({"prompt": prompts, "completion": completions})
