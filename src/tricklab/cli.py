"""The ``tricklab`` command: ``tricklab train [overrides...]``, ``tricklab report <run or sweep dir> [--wandb]
[--page DIR]``, ``tricklab study list``, ``tricklab study <name> [overrides...]``.

``tricklab train`` is Hydra's own command line, as ``python train.py`` in a checkout and ``python -m
tricklab.train``: everything after ``train`` goes to Hydra. The other subcommands are the tools around it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tricklab.errors import USER_ERROR_EXIT, TricklabError, print_user_error


def parser() -> argparse.ArgumentParser:
    """The ``tricklab`` command line: subcommands ``train`` (listed here, run by ``main`` before parsing),
    ``report`` and ``study``."""
    top = argparse.ArgumentParser(prog="tricklab", description="Train tricklab runs; tools around runs and sweeps.")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("train", add_help=False,
                        help="one run, or a sweep with -m: Hydra's command line (tricklab train --help)")
    report = commands.add_parser(
        "report", help="table, factor effects, ensembles and plots of a run or sweep folder; trials of a search",
        description="Write report.md and PNG plots into DIR (a run folder or a sweep folder holding run folders, "
                    "found recursively by their metrics.json) and print the table of configs. For a search folder "
                    "(hparams_search=optuna): its trials, the best config as a command line and Optuna's figures.",
    )
    report.add_argument("dir", type=Path, help="a run folder or a sweep folder")
    report.add_argument("--wandb", action="store_true", help="also log the table and plots to W&B")
    report.add_argument("--project", default="tricklab", help="W&B project (default: tricklab)")
    report.add_argument("--group", default=None, help="W&B group (default: the group of the folder's runs)")
    report.add_argument("--page", type=Path, default=None, metavar="DIR",
                        help="also write the study's page and its plots to DIR (docs/studies) and update its index")
    study = commands.add_parser(
        "study", help="list the studies, or run one (in parallel, resumable) and report its Findings",
        description="tricklab study list: every study with its question and claims. tricklab study NAME "
                    "[OVERRIDES...]: run the study's jobs on the local launcher into "
                    "outputs/studies/NAME/<hash of the overrides>/ (the same command resumes), then report.",
    )
    study.add_argument("--page", type=Path, default=None, metavar="DIR",
                       help="also write the study's page and its plots to DIR (docs/studies) and update its index")
    study.add_argument("name", help="a study (src/tricklab/conf/experiment/NAME.yaml with a study block), or list")
    study.add_argument("overrides", nargs=argparse.REMAINDER, help="Hydra overrides for every job of the study")
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tricklab`` script; user errors give one paragraph and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return _train(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "study":  # --page after the name lands among the overrides (argparse's REMAINDER)
        args.page, args.overrides = _page_option(args.page, args.overrides)
    try:
        if args.command == "report":
            from tricklab.report import make_report
            from tricklab.search.report import is_search, make_search_report

            if is_search(args.dir):  # hparams_search=optuna: trials, not configs over seeds
                make_search_report(args.dir, to_wandb=args.wandb, project=args.project, group=args.group)
            else:
                make_report(args.dir, to_wandb=args.wandb, project=args.project, group=args.group, page=args.page)
        elif args.command == "study" and args.name == "list":
            from tricklab.studies import list_studies

            list_studies()
        elif args.command == "study":
            from tricklab.studies import run_study

            run_study(args.name, args.overrides, page=args.page)
    except TricklabError as err:
        print_user_error(err)
        return USER_ERROR_EXIT
    return 0


def _train(overrides: list[str]) -> int:
    """``tricklab train OVERRIDES``: ``python -m tricklab.train OVERRIDES`` (Hydra reads them from sys.argv)."""
    from tricklab.invocation import set_entry
    from tricklab.train import cli

    set_entry(["tricklab", "train"])
    sys.argv = [sys.argv[0], *overrides]
    cli()
    return 0


def _page_option(page: Path | None, overrides: list[str]) -> tuple[Path | None, list[str]]:
    """``--page DIR`` / ``--page=DIR`` taken out of ``overrides``, where it lands when it follows the name."""
    rest, found = [], page
    items = iter(overrides)
    for item in items:
        if item == "--page":
            found = Path(next(items, ""))
        elif item.startswith("--page="):
            found = Path(item.partition("=")[2])
        else:
            rest.append(item)
    return found, rest


if __name__ == "__main__":
    sys.exit(main())
