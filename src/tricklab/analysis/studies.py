"""The studies in ``tricklab/conf/experiment/`` (shipped in the package): each experiment YAML with a ``study:``
block. ``tricklab study list`` shows them; ``tricklab study <name> [overrides]`` runs one on the local launcher and
reports its Findings.

Seeds until decided: the first round trains the study's pilot seeds for every arm (fused packs of seeds); each
later round adds the seeds the next look of an undecided comparison needs, to that comparison's arms only, until
every comparison is decided or at the cap (tricklab.analysis.sequential). A study runs into
``outputs/studies/<name>/<8 hex of its overrides>/`` below the project root (tricklab.config.project_root): the
same command finds the same folder and resumes it (completed jobs are skipped). Its pilot is also a plain
multirun: ``python -m tricklab.train -m experiment=<name>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from tricklab.config import CONF_DIR, STUDY_PAGES, project_root
from tricklab.errors import ConfigError, DataError
from tricklab.results import STUDY_RUN_FILE, write_json_atomic

if TYPE_CHECKING:
    from tricklab.analysis.study import SeedPlan

EXPERIMENTS = CONF_DIR / "experiment"
SEED_KEYS = ("seed", "hydra.sweeper.params.seed")  # the plan chooses the seeds (as seed=0,1,...): refused
# the study's folder and sweeper (hparams_search chooses a sweeper too)
STUDY_OWNED = ("hydra.sweep", "hydra.sweeper", "hydra/sweeper", "hparams_search", "resume")


@dataclass(frozen=True)
class StudyFile:
    """An experiment YAML with a study block, as written (not composed)."""

    name: str
    raw: dict[str, Any]

    @property
    def block(self) -> dict[str, Any]:
        return self.raw.get("study") or {}

    @property
    def arms(self) -> dict[str, list[str]]:
        return ((self.raw.get("hydra") or {}).get("sweeper") or {}).get("arms") or {}

    @property
    def params(self) -> dict[str, str]:
        return ((self.raw.get("hydra") or {}).get("sweeper") or {}).get("params") or {}

    def plan(self, overrides: list[str] = ()) -> SeedPlan:
        """The study's seed plan, with ``study.seeds.<pilot|batch|cap>=N`` overrides applied; a ConfigError when
        it does not hold together."""
        from tricklab.analysis.study import SeedPlan

        raw = dict(self.block.get("seeds") or {})
        for override in overrides:
            key, _, value = override.lstrip("+").partition("=")
            if key.startswith("study.seeds."):
                raw[key.removeprefix("study.seeds.")] = int(value) if value.lstrip("-").isdigit() else value
        plan, problems = SeedPlan.from_config(self.name, raw)
        if problems:
            raise ConfigError("\n".join(problems))
        return plan

    def jobs(self) -> int:
        """Jobs per seed of the study: its arms (one if none) × the grid of its params but the seed."""
        grid = math.prod(len(_values(str(v))) for k, v in self.params.items() if k != "seed")
        return max(1, len(self.arms)) * grid


def _values(sweep: str) -> list[str]:
    """The values of a comma-separated sweep (``0,1,2``; ``range(3)`` counts as its length)."""
    found = re.fullmatch(r"range\((\d+)\)", sweep.strip())
    return [str(i) for i in range(int(found.group(1)))] if found else [v for v in sweep.split(",") if v.strip()]


def study_files() -> dict[str, StudyFile]:
    """Every experiment YAML that has a study block, by name."""
    found = {}
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path))
        if isinstance(raw, dict) and raw.get("study"):
            found[path.stem] = StudyFile(path.stem, raw)
    return found


def find(name: str) -> StudyFile:
    """The study ``name``; a ConfigError listing the known ones when there is none."""
    known = study_files()
    if name not in known:
        raise ConfigError(f"study {name!r} is unknown; the studies are: {', '.join(known) or 'none'} "
                          f"(tricklab study list shows them with their questions).")
    return known[name]


def folder(name: str, overrides: list[str], output_dir: Path) -> Path:
    """``<output_dir>/studies/<name>/<8 hex of the overrides>``: the same command, the same folder."""
    digest = hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:8]
    return output_dir / "studies" / name / digest


def last_wall_time(name: str) -> str:
    """The wall time the study's generated page records (docs/studies/<name>.md), or "-" before it has one."""
    page = project_root() / STUDY_PAGES / f"{name}.md"
    found = re.search(r"^- Wall time: (.+)$", page.read_text(), re.M) if page.is_file() else None
    return found.group(1) if found else "-"


def list_studies() -> None:
    """Print every study: its question, claims with sources, job count and last wall time."""
    for study in study_files().values():
        block = study.block
        print(f"{study.name}: {block.get('question', '')}")
        plan = study.plan()
        print(f"  {study.jobs()} arms x {plan.pilot} to {plan.cap} seeds (pilot {plan.pilot}, +{plan.batch} a round "
              f"for undecided claims); wall time when its page was generated: {last_wall_time(study.name)}")
        for claim in block.get("claims") or []:
            print(f"  - {claim.get('question', '')} [{claim.get('source', '')}]")


def run_study(name: str, overrides: list[str], output_dir: Path | None = None, page: Path | None = None) -> Path:
    """Run (or resume) study ``name`` with ``overrides`` round by round on the local launcher until every
    comparison is decided or at the cap, then write its report (and its page into ``page``) and print its
    answers. One run of a study folder at a time; SIGTERM or Ctrl-C stops the round's jobs, reports what
    finished and says how to resume."""
    study = find(name)
    problems = override_problems(study, overrides)
    if problems:
        raise ConfigError("\n".join(problems))
    plan = study.plan(overrides)
    out = folder(name, overrides, (output_dir or _output_dir(overrides)).resolve())
    # This interpreter's tricklab trains the jobs (the code and configs that read the study), from the project root.
    command = [sys.executable, "-m", "tricklab.train", "-m", f"experiment={name}", "hydra/launcher=local",
               f"hydra.launcher.fuse={plan.cap}", f"hydra.sweep.dir={out}", *overrides]
    from tricklab.analysis.study_page import commit
    from tricklab.signals import exit_like_a_shell

    trained_at, rounds = commit(), _earlier_rounds(out)
    seeds, arms = plan.pilot, None
    with _only_run_of(out, name), exit_like_a_shell():
        while True:
            chosen = [f"seed={','.join(map(str, range(seeds)))}",
                      *([f"hydra.sweeper.only=[{','.join(arms)}]"] if arms else [])]
            code = _round(out, [*command, *chosen], rounds, seeds, arms, trained_at)
            if code == 2 or not out.is_dir():  # refused before anything ran: its message is printed
                raise SystemExit(code or 2)
            _record(out, name, overrides, rounds)
            if code != 0:
                break
            wanted = next_round(out)
            if not wanted or wanted == (seeds, arms):  # decided or at the cap (or no progress: never loop)
                break
            seeds, arms = wanted
        report = _report(out, page) if _finished(out) else None  # stopped before any job finished: none
    if report is not None:
        from tricklab.analysis.study_page import answers_markdown

        print(f"\nStudy {name}: {study.block.get('question', '')}")
        for line in answers_markdown(report.findings):
            print(f"  - {line.replace('**', '')}")
    if code != 0:
        print(f"tricklab: study {name} stopped with jobs not done (exit {code}); the same command resumes it: "
              f"{_shown_command(name, overrides)}", file=sys.stderr)
        raise SystemExit(code)
    return out


def override_problems(study: StudyFile, overrides: list[str]) -> list[str]:
    """Why ``tricklab study`` cannot take each of ``overrides``: options, another experiment, the seeds, the
    study's folder and sweeper, and keys its arms set themselves (the arm's value would win, silently)."""
    armed: dict[str, list[str]] = {}
    for arm, lines in study.arms.items():
        for line in lines:
            armed.setdefault(str(line).lstrip("+~").partition("=")[0], []).append(arm)
    problems = []
    for override in overrides:
        key = override.lstrip("+~").partition("=")[0]
        if override.startswith("-"):
            problems.append(f"{override} is an option, not an override: tricklab study {study.name} takes key=value "
                            f"overrides; to see a job's composed config use python train.py "
                            f"experiment={study.name} --cfg job.")
        elif key == "experiment":
            problems.append(f"{override} is not allowed: tricklab study {study.name} runs experiment={study.name}; "
                            f"run tricklab study <name> for another study (tricklab study list).")
        elif key in SEED_KEYS:
            problems.append(f"{override} is not allowed in tricklab study: a study chooses its seeds itself (its "
                            f"pilot, then more for undecided claims, up to its cap). Set study.seeds.pilot, "
                            f"study.seeds.batch or study.seeds.cap instead (e.g. study.seeds.cap=8).")
        elif key.startswith(STUDY_OWNED):
            problems.append(f"{override} is not allowed: the study chooses its folder (outputs/studies/"
                            f"{study.name}/<hash of the overrides>/, resumed by the same command), its sweeper and "
                            f"its arms; set paths.output_dir to put the folder elsewhere.")
        elif key in armed:
            problems.append(f"{override} is not allowed: the arms {', '.join(armed[key])} of study {study.name} set "
                            f"{key} themselves, so your value would be dropped for them; change the arms in "
                            f"{EXPERIMENTS / study.name}.yaml instead.")
    return problems


def _output_dir(overrides: list[str]) -> Path:
    """``paths.output_dir`` when an override sets it, else <project root>/outputs."""
    given = [o.partition("=")[2] for o in overrides if o.lstrip("+").startswith("paths.output_dir=")]
    return Path(given[-1]) if given else project_root() / "outputs"


@contextlib.contextmanager
def _only_run_of(out: Path, name: str) -> Iterator[None]:
    """An exclusive lock on the study folder (held in the temp dir: nothing is created beside it before the
    sweep checks its jobs); a second run of the same folder is refused at once."""
    lock = Path(tempfile.gettempdir()) / f"tricklab-study-{hashlib.sha1(str(out).encode()).hexdigest()[:16]}.lock"
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"study {name} is already running in {out} (another tricklab study holds it); "
                              f"wait for it to finish, then run the same command again to add to it.") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _round(out: Path, command: list[str], rounds: list[dict[str, Any]], seeds: int, arms: list[str] | None,
           trained_at: str) -> int:
    """Run one round's sweep and append it to ``rounds`` (jobs it finished, wall time); on SIGTERM or Ctrl-C,
    stop the sweep (its launcher stops its workers and marks their jobs interrupted) and return 130/143."""
    before, started = _finished(out), time.perf_counter()
    child = subprocess.Popen(command, cwd=project_root())
    try:
        code = child.wait()
    except KeyboardInterrupt:
        from tricklab.signals import stopped_by

        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        code = 128 + (stopped_by() or signal.SIGINT)
    rounds.append({"seeds": seeds, "arms": arms or "all", "commit": trained_at, "exit_code": code,
                   "finished_jobs": _finished(out) - before, "wall_time_s": round(time.perf_counter() - started, 1)})
    return code


def _finished(out: Path) -> int:
    return sum(1 for path in out.glob("*/metrics.json")) if out.is_dir() else 0


def _report(out: Path, page: Path | None) -> Any:
    from tricklab.analysis.report import make_report

    try:
        return make_report(out, page=page)
    except OSError as err:
        raise DataError(f"the report of {out} could not be written ({err.strerror}: {err.filename}); the runs are "
                        f"kept: make the folder writable and run tricklab report {out}.") from None


def next_round(out: Path) -> tuple[int, list[str]] | None:
    """(seeds, arms) the next round trains: the most seeds any undecided comparison's next look needs, for the
    arms of every comparison that needs more (a group's members all); None when none does."""
    from tricklab.analysis.study import assess, split_arm
    from tricklab.analysis.study_page import study_of
    from tricklab.sweep import load_sweep

    sweep = load_sweep(out)
    study = study_of(sweep)
    if study is None:
        return None
    needs, arms = 0, set()
    for finding in assess(study, sweep):
        for entry, decision in zip(finding.claim.arms, finding.decisions, strict=True):
            if decision.needs:
                needs = max(needs, decision.needs)
                for side in (split_arm(entry, "")[0], finding.claim.baseline.partition(":")[0]):
                    arms.update(study.groups.get(side, (side,)))
    return (needs, sorted(arms, key=list(study.arms).index)) if needs else None


def _earlier_rounds(out: Path) -> list[dict[str, Any]]:
    path = out / STUDY_RUN_FILE
    try:
        return list(json.loads(path.read_text()).get("rounds", [])) if path.is_file() else []
    except (OSError, ValueError, AttributeError):
        return []


def _record(out: Path, name: str, overrides: list[str], rounds: list[dict[str, Any]]) -> None:
    """study.json: the command, every round run in this folder (seeds, arms, commit, jobs finished, wall time);
    the commits and the total wall time of the rounds that trained (a rerun that finds everything done adds a
    round of 0 jobs and changes neither)."""
    trained = [r for r in rounds if r.get("finished_jobs", 1)]
    commits = list(dict.fromkeys(r["commit"] for r in trained)) or [rounds[-1]["commit"]]
    try:
        write_json_atomic(out / STUDY_RUN_FILE, {"study": name, "overrides": overrides,
                                                 "command": _shown_command(name, overrides),
                                                 "commit": ", ".join(commits), "rounds": rounds,
                                                 "wall_time_s": round(sum(r["wall_time_s"] for r in trained), 1)})
    except OSError as err:
        raise DataError(f"{out / STUDY_RUN_FILE} could not be written ({err.strerror}); the runs are kept: make "
                        f"the folder writable and run the same command again.") from None


def _shown_command(name: str, overrides: list[str]) -> str:
    return " ".join(["tricklab", "study", name, *overrides])
