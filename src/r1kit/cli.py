"""The `r1kit` command line.

Every command takes `--config FILE`, `--recipe NAME`, `--profile NAME` and any config key as `--section.key value`
(see `r1kit <command> --help`). Every expected failure is one line on stderr: a config error exits with code 2 and
names the key (a config with several problems for this machine gets a line for each), any other (a file, folder,
data row, model) exits with 1 and names the culprit. An unexpected error (a bug) is one line too; `--debug` or
R1KIT_DEBUG=1 shows its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from r1kit import distributed
from r1kit.config.aliases import FLAG_ALIASES, HARMLESS, PATH_ALIASES, REFUSED, STRATEGY_FLAGS, FlagAlias, bare_names
from r1kit.config.sources import (
    ConfigError,
    ResolvedConfig,
    builtin_config,
    builtin_profiles,
    field_help,
    flatten,
    greedy_despite_temperature,
    list_recipes,
    not_read_by,
    overridden_by_stages,
    resolve_config,
    to_yaml,
    tutorial_flag_lands,
    unused_curriculum_settings,
    unused_reward_settings,
    without_flags_for,
)
from r1kit.runs import RunDir, leave_run_folder, stop_training_log, training_log_run
from r1kit.stages.registry import ABOUT, READS, ROLLOUT_KINDS, STAGE_KINDS, TOOL_READS, reads, sections_read

_ABOUT = {
    "run": "the main job: a recipe's stages in order (default: cold-start SFT, then GRPO), each stage's model "
    "evaluated on the same held-out problems, a per-stage table; the same command again skips finished stages and "
    "resumes an interrupted one",
    **ABOUT,
    "eval": "evaluate a model (alias, folder, hub id or run folder): pass@1, format rate, pass@k",
    "chat": "chat with a model; its thinking and answer shown apart",
    "config show": "print the fully resolved config (--explain: where each value came from)",
    "report": "write RUN_DIR/report.html: plots, evaluations, alerts and examples of a run",
    # no percent sign: argparse formats each command's help with %
    "compare": "evaluations of different runs side by side, each against the first with its paired change and its "
    "interval",
}


# The commands that read only run folders: no config, no model, no processes to launch.
_READ_ONLY = ("report", "compare")


def _keys_help(command: str) -> str:
    """The config keys `r1kit COMMAND` reads (a stage run alone: its own sections and the common ones), the aliases,
    the refused settings, profiles and recipes."""
    some = command in READS or command in TOOL_READS  # run and config show read every section
    rows = [
        f"  --{path} (default: {json.dumps(default)})\n      {text}"
        for path, default, text in field_help()
        if not some or reads(command, path)
    ]
    read = f"`r1kit {command}` reads the sections {', '.join(sections_read(command))}; " if some else ""
    # a stage lists the trainer flags it does not read too (a TRL user tries them on it); eval and chat train nothing
    shown = {
        flag: alias for flag, alias in FLAG_ALIASES.items() if command not in TOOL_READS or reads(command, alias.path)
    }
    aliases = "\n".join(f"  {flag} → {_alias_target(flag, alias, command)}" for flag, alias in shown.items())
    if (bare := bare_names(command)) is not None:
        aliases = f"{bare}\n{aliases}"
    paths = "\n".join(f"  {alias} → {path}" for alias, path in PATH_ALIASES.items())
    # a refused flag whose value can ask for what r1kit does anyway is accepted with that value (--push_to_hub false)
    refused = "\n".join(
        f"  {name}: "
        + (f"{' / '.join(HARMLESS[name])} accepted (r1kit's way already); else " if name in HARMLESS else "")
        + why
        for name, why in REFUSED.items()
    )
    strategies = "\n".join(
        f"  {flag}: steps (r1kit's way: {strategy.every} sets how often, {strategy.unset})"
        + (
            f"; no turns it off ({strategy.off[0]} {strategy.off[1]})"
            if strategy.off
            else f"; no refused ({strategy.always})"
        )
        + "; epoch refused (counts are in optimizer steps)"
        for flag, strategy in STRATEGY_FLAGS.items()
    )
    return (
        f"config keys ({read}--section.key value, --section.key=value, lists as [a, b]; "
        "env: R1KIT_SECTION_KEY or GRPO_SECTION_KEY):\n"
        + "\n".join(rows)
        + f"\n\nflag aliases:\n{aliases}\n{strategies}\n\npath aliases:\n{paths}\n\nnot r1kit settings:\n{refused}\n\n"
        + f"profiles: {', '.join(builtin_profiles())} (+ your own under `profiles:` in --config)\n"
        + f"recipes: {', '.join(list_recipes())}"
    )


def _alias_target(flag: str, alias: FlagAlias, command: str) -> str:
    """Where a flag alias lands for `r1kit COMMAND` (a trainer flag lands in a stage's own section when it runs alone),
    with the schema key a tutorial path stands for."""
    path = tutorial_flag_lands(flag, alias.path, command) if alias.tutorial else alias.path
    if path is None:
        return f"{alias.path} (not read by `r1kit {command}`: refused)"
    path = PATH_ALIASES.get(path, path)
    unread = command in READS and not reads(command, path)
    return (
        path
        + (f"={alias.value}" if alias.value is not None else "")
        + (" (not read by this command)" if unread else "")
    )


class _GivenOnce(argparse.Action):
    """--config, --recipe, --profile: refused a second time (the last one replaced the others without a word; files
    are not layered: one --config, over a recipe, under a profile)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)}, {values}); give it once")
        setattr(namespace, self.dest, values)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--config", action=_GivenOnce, help="YAML file with config values (and optional `profiles:`)")
    common.add_argument(
        "--recipe", action=_GivenOnce, help="a shipped recipe name or a recipe YAML path (applied before --config)"
    )
    common.add_argument("--profile", action=_GivenOnce, help="profile applied over the files (default: default)")
    common.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    common.add_argument(
        "--launch",
        metavar="NAME",
        help=f"run under `accelerate launch` with a shipped config ({', '.join(accelerate_configs())}) or an accelerate "
        "config file; --num_processes N sets the process count",
    )
    common.add_argument("--num_processes", type=int, help="processes (devices) for --launch")

    parser = argparse.ArgumentParser(
        prog="r1kit",
        description="Train small language models to reason the way DeepSeek-R1 was trained.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, parent: argparse._SubParsersAction = commands, key: str | None = None
    ) -> argparse.ArgumentParser:
        key = key or name
        return parent.add_parser(
            name,
            parents=[common],
            allow_abbrev=False,
            help=_ABOUT[key],
            description=_ABOUT[key],
            epilog=_keys_help(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = command("run")
    run.add_argument("--from", dest="from_stage", metavar="STAGE", help="redo this stage and every one after it")
    run.add_argument("--only", metavar="STAGE", help="run only this stage (the stages before it must be complete)")
    for name in (*STAGE_KINDS, "eval"):
        command(name)
    command("chat").add_argument("--prompt", help="ask one question and exit (default: interactive)")
    show = command(
        "show",
        commands.add_parser("config", help="inspect the configuration").add_subparsers(dest="action", required=True),
        "config show",
    )
    show.add_argument("--format", choices=("yaml", "json"), default="yaml")
    show.add_argument("--explain", action="store_true", help="show where each value came from")
    report = commands.add_parser("report", help=_ABOUT["report"], description=_ABOUT["report"], allow_abbrev=False)
    report.add_argument("run_dir", type=Path)
    report.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    compared = commands.add_parser("compare", help=_ABOUT["compare"], description=_ABOUT["compare"], allow_abbrev=False)
    compared.add_argument(
        "evaluations",
        nargs="+",
        metavar="EVAL",
        help="a run folder (its final model's evaluation), an eval JSON file, or RUN:LABEL (base, sft, eval_2, …)",
    )
    compared.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    return parser


def load_config(args: argparse.Namespace, overrides: list[str]) -> ResolvedConfig:
    """Resolve and check the config (before any model is loaded). With --resume, the run's saved config is the base."""
    from r1kit.config.checks import check_machine

    command = args.command
    resolved = resolve_config(
        recipe=args.recipe,
        config_file=args.config,
        profile=args.profile or "default",
        overrides=overrides,
        command=command,
    )
    if resolved.config.run.resume and not args.config:
        saved = _resumable_run(resolved.config.run.output_dir, command) / "config.yaml"
        # The saved config already holds the run's profile and recipe; laid over it again they would replace the
        # values that were set above them (a --sft.max_steps on the first command line), so only env and CLI apply.
        chosen = (("profile", args.profile), ("recipe", args.recipe))
        given = [f"--{flag} {value}" for flag, value in chosen if value is not None]
        if given and not _said_by_another_process():
            print(f"r1kit: note: --resume continues {saved} as saved; {', '.join(given)} is in it", file=sys.stderr)
        started = RunDir(saved.parent).started_in()
        if started is not None and started.is_dir() and started.resolve() != Path.cwd().resolve():
            # its relative paths (model, data, held-out file, …) are from the folder it started in: work from there
            saved = saved.resolve()
            os.chdir(started)
            if not _said_by_another_process():
                print(
                    f"r1kit: note: --resume works in {started}, where the run started (relative paths in its config, and "
                    "in this command's options, are read from there)",
                    file=sys.stderr,
                )
        resolved = resolve_config(
            config_file=str(saved),
            # the folder found above, however the command spelt it (`runs/a/`, `./runs/a`, a path from elsewhere)
            overrides=[*without_flags_for(overrides, "run.output_dir"), "--run.output_dir", str(saved.parent)],
            command=command,
        )
    check_machine(resolved.config, resolved.sources, command)
    for spec in resolved.config.stages:  # a recipe stage's own values: checked before any stage runs, not at its turn
        if spec.config:  # the others are the run's values, checked above
            own = {key: f"stages: {spec.name}'s config" for key in flatten(spec.config)}
            check_machine(resolved.config.for_stage(spec), own, command)
    return resolved


def _resumable_run(output_dir: str | None, command: str) -> Path:
    """The run to resume: --out, or the newest run under runs/ that holds `command`'s work (a recipe's stages for
    `run`, the stage's folder for a stage alone): the newest of any command was taken (a finished `r1kit sft`'s for
    `r1kit grpo --resume`, which trained GRPO from scratch there and left the interrupted one as it was)."""
    if output_dir:
        if not (Path(output_dir) / "config.yaml").exists():
            raise ConfigError(f"--resume: no run to resume in {output_dir} (it has no config.yaml)")
        return Path(output_dir)

    def holds_its_work(run: Path) -> bool:
        if command == "run":  # a recipe's stage folders, RUN/NN_<stage>
            return any(run.glob("[0-9][0-9]_*/manifest.json"))
        return (run / command / "manifest.json").exists()

    runs = sorted(
        (saved.parent for saved in Path("runs").glob("*/config.yaml") if holds_its_work(saved.parent)),
        key=lambda run: (run / "config.yaml").stat().st_mtime,
    )
    if not runs:
        raise ConfigError(f"--resume: no run of r1kit {command} found under runs/; name one with --out RUN_DIR")
    if not _said_by_another_process():
        print(f"r1kit: note: --resume continues {runs[-1]}, the newest run of r1kit {command}", file=sys.stderr)
    return runs[-1]


def _show(resolved: ResolvedConfig, fmt: str, explain: bool) -> None:
    if explain and fmt == "json":  # each key's value and where it came from, for a program to read
        explained = {
            path: {"value": value, "source": resolved.sources.get(path, "default")}
            for path, value in flatten(resolved.config.model_dump()).items()
        }
        print(json.dumps(explained, indent=2))
    elif explain:
        for path, value in flatten(resolved.config.model_dump()).items():
            print(f"{path} = {json.dumps(value)}    # {resolved.sources.get(path, 'default')}")
    elif fmt == "json":
        print(json.dumps(resolved.config.model_dump(), indent=2))
    else:
        print(to_yaml(resolved.config), end="")


_ACCELERATE_CONFIGS = builtin_config("accelerate")  # the shipped accelerate configs


def accelerate_configs() -> list[str]:
    return sorted(p.stem for p in _ACCELERATE_CONFIGS.glob("*.yaml"))


def _launch(args: argparse.Namespace, argv: list[str], overrides: list[str]) -> int:
    """The same command again under `accelerate launch` with the named config: scaling out is accelerate's job."""
    shipped = _ACCELERATE_CONFIGS / f"{args.launch}.yaml"
    config = shipped if shipped.exists() else Path(args.launch)
    if not config.is_file():
        raise ConfigError(
            f"--launch {args.launch}: neither a shipped config ({', '.join(accelerate_configs())}) nor a file"
        )
    if args.num_processes is not None and args.num_processes < 1:  # accelerate: a traceback (0 took the config's)
        raise ConfigError(f"--num_processes {args.num_processes}: give a count of 1 or more")
    settings = _accelerate_settings(config)
    kind = str(settings.get("distributed_type", "")).upper()
    deepspeed = settings.get("deepspeed_config") if isinstance(settings.get("deepspeed_config"), dict) else {}
    # accelerate's launcher would fail with a traceback: said in one line, before it starts
    if kind == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            f"--launch {args.launch}: a DeepSpeed config, and DeepSpeed is not installed: pip install deepspeed"
        )
    if kind == "FSDP" or str(deepspeed.get("zero_stage")) == "3":
        raise ConfigError(f"--launch {args.launch}: {distributed.SHARDED_WEIGHTS}")
    if args.command == "chat":  # N copies would each answer (and read the same keyboard)
        raise ConfigError("chat runs in one process: leave out --launch")
    # the device check reads the launched processes' CPU setting
    on_cpus = {"ACCELERATE_USE_CPU": "true"} if str(settings.get("use_cpu", "")).lower() in ("true", "1", "yes") else {}
    given = settings.get("num_processes")
    processes = args.num_processes or (given if isinstance(given, int) and given > 0 else None)
    if not processes and on_cpus:
        raise ConfigError(f"--launch {args.launch}: a CPU config without a process count; give --num_processes N")
    if not processes:  # the shipped GPU configs: every GPU of this machine, one process each
        import torch

        processes = torch.cuda.device_count()
        if not processes:
            raise ConfigError(
                f"--launch {args.launch}: this machine has no GPU for it; --launch cpu runs CPU processes (or give "
                "--num_processes N)"
            )
    # the config's errors (the batch rules for N processes among them) once, here, rather than once a process; and
    # the data's, the model's (a file that is not there, a hub id offline) and the run folder's (another config's
    # finished work): each process said it, or waited for the main one that did, then accelerate's traceback
    folder = Path.cwd()  # a --resume moves to the folder its run started in
    try:
        with distributed.planned(processes), _environment(**on_cpus):
            with contextlib.redirect_stderr(io.StringIO()):
                resolved = load_config(args, overrides)
            if args.command != "config":  # `config show` reads no data and loads no model
                _check_inputs_once(resolved, args)
    finally:
        os.chdir(folder)
    rest, skip = [], False
    for arg in argv:  # the command without --launch / --num_processes (accelerate takes the process count)
        if skip:
            skip = False
        elif arg in ("--launch", "--num_processes"):
            skip = True
        elif not arg.startswith(("--launch=", "--num_processes=")):
            rest.append(arg)
    command = [sys.executable, "-m", "r1kit.launcher", "--config_file", str(config)]  # accelerate's, quieter
    command += ["--num_processes", str(processes), "-m", "r1kit.cli", *rest]
    print(f"r1kit: {' '.join(command)}", file=sys.stderr)
    return subprocess.run(command, check=False).returncode


def _check_inputs_once(resolved: ResolvedConfig, args: argparse.Namespace) -> None:
    """What the launched processes would check before any weight loads: that the data of a stage or a run reads (a
    hub data set is then in the cache for them) and, for a stage, suits it; that `model.name` loads (a built-in model
    is built here, once: they find it in the cache); that the run folder takes the command (a recipe run's plan too),
    with the config the processes open it with (a trained model's own prompt, chat data's plain one). Warnings are left
    to the processes, which say them again."""
    from r1kit import pipeline
    from r1kit.models import check_model
    from r1kit.runs import check_run_folder
    from r1kit.stages.common import (
        model_reference_of,
        quiet_libraries,
        read_data,
        stage_data_check,
        with_trained_prompt,
    )

    command = args.command
    quiet_libraries(resolved.config.monitoring.progress)
    said = logging.getLogger("r1kit")
    level = said.level
    said.setLevel(logging.ERROR)
    try:
        config = with_trained_prompt(resolved, command) if command in STAGE_KINDS else resolved.config
        if command == "run":
            config = pipeline.check_inputs(config, args.from_stage, args.only)
        elif command != "eval":  # eval reads its data its own way (a file whole, a run's own data)
            config = read_data(config, command, stage_data_check(command))[0]
        check_model(config.model, model_reference_of(config.model.name, config), training=command != "eval")
        if command != "eval":  # eval writes into a run folder without refusals of its own
            check_run_folder(config, command)
    finally:
        said.setLevel(level)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """The environment variables `values` set for as long as the block runs, then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def _accelerate_settings(config: Path) -> dict:
    """An accelerate config file's settings; a ConfigError where it is no YAML mapping (accelerate's launcher said so
    in a 60-line traceback)."""
    import yaml

    try:
        values = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"--launch {config}: not a readable accelerate config{line}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--launch {config}: an accelerate config is a YAML mapping of its settings")
    from accelerate.utils import DistributedType, SageMakerDistributedType

    kinds = [kind.value for kind in (*DistributedType, *SageMakerDistributedType)]
    given = "NO" if values.get("distributed_type") is False else values.get("distributed_type")  # YAML 1.1's NO
    if given not in kinds:  # accelerate: a 23- or 33-line traceback (its values are case-sensitive)
        said = "no distributed_type" if given is None else f"distributed_type {given!r}, none of accelerate's"
        raise ConfigError(f"--launch {config}: {said} ({', '.join(kinds)})")
    return values


def _processes_accelerate_left_out() -> int | None:
    """N when `accelerate launch --cpu --num_processes N` (N > 1) started this single process.

    Without mpirun, accelerate's multi-CPU mode runs the script once: one process, with MASTER_ADDR set (it does that
    for N > 1) but no rank or world size. N is only on the launcher's own command line (or in its --config_file).
    r1kit then relaunches the command as N CPU processes with its `cpu` config (torchrun over gloo), as the user asked.
    """
    env = os.environ
    ranked = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
    if not distributed.cpu_launch() or "MASTER_ADDR" not in env or any(k in env for k in ranked):
        return None
    import psutil

    launcher = psutil.Process(os.getppid()).cmdline()
    values = {}
    for index, arg in enumerate(launcher):
        for flag in ("--num_processes", "--config_file"):
            if arg == flag and index + 1 < len(launcher):
                values[flag] = launcher[index + 1]
            elif arg.startswith(flag + "="):
                values[flag] = arg.split("=", 1)[1]
    processes = None
    if "--num_processes" in values:
        processes = int(values["--num_processes"])
    elif "--config_file" in values:
        from accelerate.commands.config.config_args import load_config_from_file

        processes = load_config_from_file(values["--config_file"]).num_processes
    return processes if processes and processes > 1 else None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from the tokenizer's thread pool
    # TRL's trainers ping the hub with usage telemetry on start: r1kit sends nothing anywhere unasked. Set before
    # huggingface_hub is imported (it reads the variable once); HF_HUB_DISABLE_TELEMETRY=0 turns it back on.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    argv = sys.argv[1:] if argv is None else argv
    stop_training_log()  # an earlier command's in this process: Ctrl-C's hint names this command's run only
    if argv[:1] == ["trpo"]:  # the RLHF notebook's fourth method: argparse would only say "invalid choice"
        print(
            "r1kit: config error: TRPO is PPO's other policy update: r1kit ppo --ppo.policy_update trpo (its settings "
            "are ppo.trpo_*)",
            file=sys.stderr,
        )
        return 2
    args, overrides = _parser().parse_known_args(_questions_kept(argv))
    try:
        if args.command not in _READ_ONLY and not args.launch and (processes := _processes_accelerate_left_out()):
            print(
                f"r1kit: accelerate launch --cpu started 1 of {processes} processes (its multi-CPU mode needs "
                f"mpirun); relaunching as {processes} CPU processes with --launch cpu",
                file=sys.stderr,
            )
            args.launch, args.num_processes = "cpu", processes
        if args.command not in _READ_ONLY and args.num_processes is not None and not args.launch:  # alone: ignored
            raise ConfigError(
                f"--num_processes {args.num_processes} sets the process count of --launch: add --launch cpu (CPU "
                "processes), ddp or another accelerate config"
            )
        if args.command not in _READ_ONLY and args.launch:
            return _launch(args, argv, overrides)
        code = _command(args, overrides)
        distributed.finish()
        return code
    except ConfigError as error:
        for problem in str(error).splitlines():  # one line each (the machine checks report all problems at once)
            print(f"r1kit: config error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        trains = args.command == "run" or args.command in STAGE_KINDS  # eval and chat keep nothing to go on from
        named = any(arg.split("=")[0] in ("--out", "--run.output_dir") for arg in argv)
        again = ""
        redo = args.command == "run" and (args.from_stage or args.only)  # they start their stage over every time
        if trains and named and redo:
            again = (
                "; to continue from the last checkpoint, run it again without --from/--only (with them the stage starts "
                "over; without --only, the stages after it that read it run too)"
            )
        elif trains and named:
            again = "; run the same command again to continue from the last checkpoint"
        elif trains and (run := training_log_run()) is not None:  # in a new runs/<time>: the same command starts anew
            # --resume needs the config a run saves once it trains: interrupted before (in the base evaluation), the
            # folder is taken up again by the same command with --out
            if (run / "config.yaml").exists():
                again = f"; continue from the last checkpoint with the same command and --out {run} --resume"
            else:
                again = f"; continue with the same command and --out {run}"
        print(f"r1kit: interrupted{again}", file=sys.stderr)
        return 130
    except Exception as error:
        if _said_by_another_process() and (_expected(error) or _peer_gone(error)):
            return 1  # the main process meets the same input and says it (a launch printed each error twice), or
            # it is the one that failed and said why: this process only lost its peer
        if _expected(error):
            print(f"r1kit: error: {error}", file=sys.stderr)
            return 1
        if (full := _disk_full(error)) is not None:  # a checkpoint or model write, however deep in a library
            print(
                f"r1kit: error: the disk is full ({full}); free space, or choose another folder with --out: the same "
                "command again goes on from the last complete checkpoint",
                file=sys.stderr,
            )
            return 1
        if args.debug or os.environ.get("R1KIT_DEBUG", "") not in ("", "0"):
            raise
        reason = " ".join(str(error).split())[:500]
        print(
            f"r1kit: unexpected error (a bug in r1kit or a library): {type(error).__name__}: {reason}; "
            "rerun with --debug for the traceback",
            file=sys.stderr,
        )
        return 1
    finally:
        leave_run_folder()  # for the next command, in this process (a notebook) or another


def _questions_kept(argv: list[str]) -> list[str]:
    """`--prompt -5+3` as `--prompt=-5+3`: argparse reads a word that starts with one dash as an option (and said
    "expected one argument").

    >>> _questions_kept(["chat", "--prompt", "-5+3", "--model", "m"]), _questions_kept(["chat", "--prompt", "--model"])
    (['chat', '--prompt=-5+3', '--model', 'm'], ['chat', '--prompt', '--model'])
    """
    kept = list(argv)
    for index, word in enumerate(argv[:-1]):
        question = argv[index + 1]
        if word == "--prompt" and question.startswith("-") and not question.startswith("--"):
            kept[index : index + 2] = [f"--prompt={question}", None]
    return [word for word in kept if word is not None]


def _expected(error: Exception) -> bool:
    """Failures of the user's input or machine, each with its own one-line message."""
    from r1kit.data.loading import DatasetError
    from r1kit.models import ModelError
    from r1kit.runs import RunDirError

    return isinstance(error, (ModelError, DatasetError, RunDirError))


_FULL_BELOW = 64 * 2**20  # bytes free on the run folder's disk under which a failed write is the disk's
_NO_SPACE = re.compile(r"No space left on device(?: \(os error 28\))?|Disk quota exceeded(?: \(os error 122\))?")


def _disk_full(error: BaseException) -> str | None:
    """What says the disk is full where `error` came of it, else None: the "no space left" (or quota) error in its
    chain, or, for a write that says no errno (torch.save: "unexpected pos …"), the run folder's disk all but full. A
    full disk is the machine's state, not a bug in r1kit (the disk check before training is an estimate)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{error.strerror}: {error.filename or 'a write'}"
        # safetensors' own error (a SafetensorError, no OSError) gives the system's words and number alone
        if said := _NO_SPACE.search(str(error)):
            return said.group(0)
        error = error.__cause__ or error.__context__
    run = training_log_run()
    if run is not None and run.exists() and (free := shutil.disk_usage(run).free) < _FULL_BELOW:
        return f"{free / 2**20:.0f} MB left where {run} is"
    return None


def _peer_gone(error: BaseException) -> bool:
    """Whether `error` is a launched process losing another (gloo's "Connection closed by peer", a reset): what the
    other processes meet when one fails.

    >>> _peer_gone(RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.1]:29500"))
    True
    """
    said = str(error)
    return any(words in said for words in ("Connection closed by peer", "Connection reset by peer", "Broken pipe"))


def _said_by_another_process() -> bool:
    """Whether this is a launched process other than the main one: the config and its notes are said once, not N
    times (a RANK without a world size above 1, a shell inside another job, is no launch)."""
    return distributed.launched() and distributed.launched_index() != 0


def _say_notes(resolved: ResolvedConfig, command: str) -> None:
    """What the config's sources did that the user may not expect, a line each."""
    if resolved.notes:  # deprecated, not refused: one line with the names to use from now on
        print(
            f"r1kit: note: TRL's and the R1 tutorial's names were read as r1kit's: {', '.join(resolved.notes)}",
            file=sys.stderr,
        )
    if command in ("run", "config"):  # the commands that read the recipe's stages
        for line in overridden_by_stages(resolved):
            print(f"r1kit: note: {line}", file=sys.stderr)
    noted = "run" if command == "config" else command  # `config` shows what `run` would read
    if noted in ("run", *ROLLOUT_KINDS):  # the commands that score with rewards
        for line in unused_reward_settings(resolved, noted):
            print(f"r1kit: note: {line}", file=sys.stderr)
    if noted in ("run", "grpo"):  # the commands that may run GRPO's curriculum
        for line in unused_curriculum_settings(resolved, noted):
            print(f"r1kit: note: {line}", file=sys.stderr)
    unread = [*not_read_by(resolved, noted), *greedy_despite_temperature(resolved)]
    for line in [*resolved.overridden, *resolved.ignored, *unread]:
        print(f"r1kit: note: {line}", file=sys.stderr)


def _command(args: argparse.Namespace, overrides: list[str]) -> int:
    if args.command == "report":
        from r1kit.monitoring.report import write_report

        if overrides:
            raise ConfigError(f"report takes only RUN_DIR (got {' '.join(overrides)})")
        print(write_report(args.run_dir))
        return 0
    if args.command == "compare":
        from r1kit.monitoring.compare import compare

        if overrides:
            raise ConfigError(f"compare takes only evaluations (got {' '.join(overrides)})")
        compare(args.evaluations)
        return 0

    resolved = load_config(args, overrides)  # validated by every process: the launched batch rules included
    if _said_by_another_process():
        if args.command == "config":
            return 0
    else:
        _say_notes(resolved, args.command)
    logging.getLogger().setLevel(resolved.config.monitoring.log_level)
    if args.command == "config":
        _show(resolved, args.format, args.explain)
        return 0

    import importlib

    from r1kit import chat, pipeline
    from r1kit.stages import evaluate
    from r1kit.stages.common import as_trained, data_named, with_trained_prompt
    from r1kit.stages.registry import STAGES

    if args.command in STAGES:
        importlib.import_module(STAGES[args.command]).main(with_trained_prompt(resolved, args.command))
        return 0
    commands = {
        "run": lambda: pipeline.run(resolved.config, from_stage=args.from_stage, only=args.only),
        # a run's own data file (no --data) is scored on its held-out split, as the run's table was
        "eval": lambda: evaluate.main(as_trained(resolved), data_named=data_named(resolved)),
        "chat": lambda: chat.main(as_trained(resolved), args.prompt),
    }
    commands[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
