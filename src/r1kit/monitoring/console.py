"""The compact per-step console block: reward breakdown, generation quality, performance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _number(value: Any, fmt: str = ".3g") -> str:
    return "–" if value is None else format(value, fmt)


# of a GRPO step, as r1kit's trainer logs them; scoring: the old-policy and reference forwards, tokenising, dynamic
# sampling and step credit
TIMING_PHASES = ("generation", "reward", "scoring", "forward", "backward", "other")


def step_block(record: dict[str, Any], max_steps: int) -> str:
    """Lines for one logged step, as in the R1 tutorial's Reward Breakdown / Generation Quality / Performance block.

    >>> print(step_block({"stage": "grpo", "step": 3, "loss": 0.01, "rewards/format/mean": 1.0,
    ...                   "rewards/format/std": 0.0, "perf/step_seconds": 20.5}, 30))
    [grpo] step 3/30  loss 0.01
      reward breakdown  format 1±0
      performance       20.5 s/step
    >>> print(step_block({"stage": "dpo", "step": 2, "loss": 0.69, "rewards/accuracies": 0.75,
    ...                   "rewards/margins": 0.012}, 30))
    [dpo] step 2/30  loss 0.69  pref acc 0.75  margin 0.012
    """
    head = [f"[{record['stage']}] step {record['step']}/{max_steps}"]
    for key, label in (
        ("loss", "loss"),
        ("grad_norm", "grad"),
        ("learning_rate", "lr"),
        ("mean_token_accuracy", "token acc"),
        ("rewards/accuracies", "pref acc"),  # DPO's; the reward model's are accuracy and margin
        ("rewards/margins", "margin"),
        ("accuracy", "pref acc"),
        ("margin", "margin"),
    ):
        if key in record:
            head.append(f"{label} {_number(record[key])}")
    lines = ["  ".join(head)]

    rewards = sorted(
        key.split("/")[1]
        for key in record
        if key.startswith("rewards/") and key.endswith("/mean") and key.count("/") == 2
    )
    if rewards:
        parts = [
            f"{name} {_number(record[f'rewards/{name}/mean'])}±{_number(record.get(f'rewards/{name}/std'), '.2g')}"
            for name in rewards
            if name != "total"
        ]
        if "total" in rewards:
            parts.append(f"total {_number(record['rewards/total/mean'])}")
        lines.append("  reward breakdown  " + "  ".join(parts))

    if "quality/format_rate" in record:
        q = {key.split("/")[1]: value for key, value in record.items() if key.startswith("quality/")}
        lines.append(
            "  generation        "
            f"format {_number(q.get('format_rate'), '.0%')}  "
            f"{_number(q.get('completion_tokens'), '.0f')} tok "
            f"(think {_number(q.get('think_chars'), '.0f')} ch, answer {_number(q.get('answer_chars'), '.0f')} ch)  "
            f"truncated {_number(q.get('truncated_share'), '.0%')}  steps {_number(q.get('reasoning_steps'), '.2g')}  "
            f"zero-adv {_number(q.get('zero_advantage_share'), '.0%')}"
        )

    if "perf/step_seconds" in record:
        perf = [f"{_number(record['perf/step_seconds'])} s/step"]
        for key, template in (
            ("perf/samples_per_second", "{:.3g} samples/s"),
            ("perf/tokens_per_second", "{:.0f} tok/s"),
            ("perf/mfu", "MFU {:.1%}"),
            ("perf/rss_gb", "{:.2f} GB RSS"),
            ("perf/cpu_percent", "CPU {:.0f}%"),  # percentages already, not shares
            ("perf/ram_percent", "RAM {:.0f}%"),
        ):
            if record.get(key) is not None:
                perf.append(template.format(record[key]))
        lines.append("  performance       " + "  ".join(perf))

    phases = [(name, record.get(f"timing/{name}_seconds")) for name in TIMING_PHASES]
    if any(seconds is not None for _, seconds in phases):
        parts = [f"{name} {seconds:.2f}s" for name, seconds in phases if seconds is not None]
        gap = record.get("fast/sampling_logprob_gap")
        if gap is not None:
            parts.append(f"(sampler log-prob gap {gap:.3f})")
        lines.append("  time              " + "  ".join(parts))
    return "\n".join(lines)


def pass_k_name(k: str) -> str:
    """A pass@k row's name; pass@1 from the samples is told apart from the greedy accuracy (pass@1) row.

    >>> pass_k_name("1"), pass_k_name("4")
    ('pass@1 (sampled)', 'pass@4')
    """
    return "pass@1 (sampled)" if k == "1" else f"pass@{k}"


def consensus_row(evaluations: Sequence[dict[str, Any]]) -> tuple[str, list[float | None], bool] | None:
    """The majority-vote row: its name (cons@n for the n samples voting), each evaluation's value and whether a change
    between them means anything (a vote of 4 samples and one of 8 differ by the count alone); None when no
    evaluation sampled.

    >>> consensus_row([{"consensus": {"samples": 8, "accuracy": 0.5}}, {}])
    ('cons@8 (majority vote)', [0.5, None], True)
    >>> consensus_row([{"consensus": {"samples": 4, "accuracy": 0.5}}, {"consensus": {"samples": 8, "accuracy": 0.6}}])
    ('cons@n (majority vote)', [0.5, 0.6], False)
    """
    counts = {e["consensus"]["samples"] for e in evaluations if e.get("consensus")}
    if not counts:
        return None
    values = [(e.get("consensus") or {}).get("accuracy") for e in evaluations]
    return f"cons@{counts.pop() if len(counts) == 1 else 'n'} (majority vote)", values, len(counts) == 0


def print_eval_table(
    evaluations: dict[str, dict[str, Any]], title: str, paired: dict[str, dict[str, Any]] | None = None
) -> None:
    """Evaluations side by side (base, after each stage), with the change from the first to the last."""
    from rich.console import Console
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.table import Table

    # title, headers and caption are read as markup: a hub dataset's "openai/gsm8k [test]" lost its split, a tag
    labels = list(evaluations)
    table = Table(title=escape(title))
    table.add_column("metric")
    for label in labels:
        table.add_column(escape(label), justify="right")
    if len(labels) > 1:
        table.add_column(escape(f"change {labels[0]}→{labels[-1]}"), justify="right")

    def row(name: str, values: list[Any], percent: bool, fmt: str = ".1f", comparable: bool = True) -> None:
        cells = [_number(v, ".1%") if percent else _number(v, fmt) for v in values]
        if len(labels) > 1:
            first, last = values[0], values[-1]
            delta = None if first is None or last is None or not comparable else last - first
            cells.append("–" if delta is None else (f"{delta * 100:+.1f} pts" if percent else format(delta, "+" + fmt)))
        table.add_row(name, *cells)

    row("accuracy (pass@1)", [evaluations[label]["accuracy"] for label in labels], percent=True)
    intervals = [evaluations[label].get("accuracy_ci95") for label in labels]
    if any(intervals):
        cells = [f"{low:.1%}–{high:.1%}" if (low, high) != (None, None) else "–" for low, high in
                 [interval or (None, None) for interval in intervals]]  # fmt: skip
        table.add_row("  95% interval", *cells, *([""] if len(labels) > 1 else []))
    row("format rate", [evaluations[label]["format_rate"] for label in labels], percent=True)
    for k in sorted({k for e in evaluations.values() for k in (e.get("pass_at_k") or {})}, key=int):  # any column's
        row(pass_k_name(k), [(evaluations[label].get("pass_at_k") or {}).get(k) for label in labels], percent=True)
    consensus = consensus_row(list(evaluations.values()))
    if consensus:
        name, values, comparable = consensus
        row(name, values, percent=True, comparable=comparable)
    row("mean completion tokens", [evaluations[label]["mean_completion_tokens"] for label in labels], percent=False)
    for key, name, percent in (("perplexity", "perplexity (reference text)", False), ("rouge_l", "ROUGE-L", True),
                               ("win_rate", "win rate (reward model)", True)):  # fmt: skip
        if any(evaluations[label].get(key) is not None for label in labels):
            # two decimals: a trained model's perplexity is near 1, where one decimal hid its change
            row(name, [evaluations[label].get(key) for label in labels], percent=percent, fmt=".2f")
    row("truncated", [evaluations[label]["truncated_rate"] for label in labels], percent=True)
    last = evaluations[labels[-1]]
    held = last.get("held_out_rows", last["problems"])  # the header counts them all: say which part is scored
    scored = f"{last['problems']} of {held} held-out problems (evaluation.max_samples)"
    # the data of every column (compare's columns may have scored the same problems from two files)
    datasets = " and ".join(dict.fromkeys(str(evaluations[label]["dataset"]) for label in labels))
    caption = f"{scored if held > last['problems'] else f'{held} held-out problems'} · {datasets}"
    if last.get("excluded") and last["excluded"] >= last["problems"]:  # chat data: no gold answer to score
        caption += " · no readable gold answer: pass@1 not measured"
    elif last.get("excluded"):  # pass@1 is over the others: say so, or "–" would read as a failed evaluation
        caption += f" · {last['excluded']} left out of pass@1 (no readable gold answer)"
    table.caption = escape(caption)
    console = Console(emoji=False)  # a file's or folder's name with :x: in it is no emoji
    if not console.is_terminal:  # a file or a pipe: rich's 80 columns cut the figures ("0.0%–32…") and the labels
        needed = Measurement.get(console, console.options.update_width(1000), table).maximum
        console = Console(width=max(console.width, needed), emoji=False)
    console.print(table)
    for label in labels:  # pass@1 by group of problems (difficulty level, task), where the data has groups
        groups = evaluations[label].get("by_group") or {}
        if groups:
            shown = "  ".join(f"{group} {v['accuracy']:.0%} ({v['problems']})" for group, v in groups.items())
            kind = evaluations[label].get("group_column") or "group"  # older evaluations did not record it
            console.print(f"by {kind}, {label}: {shown}", markup=False, highlight=False)
    for pair, change in (paired or {}).items():
        if change.get("difference") is not None:
            low, high = change["ci95"]
            verdict = "above zero" if low > 0 else "below zero" if high < 0 else "includes zero: within the noise"
            console.print(
                f"paired change {pair}: {change['difference'] * 100:+.1f} pts, 95% interval "
                f"[{low * 100:+.1f}, {high * 100:+.1f}] over {change['problems']} "
                f"problem{'' if change['problems'] == 1 else 's'} ({verdict}; "
                f"{change['fixed']} fixed, {change['broken']} broken)",
                markup=False,
                highlight=False,
            )
