"""``python -m sb3_nas.summary RUNS_DIR --out KEEP_DIR``: the four answers of the reduced experiments.

Reads the run folders of ``benchmarks/reduced_experiments.sh`` under RUNS_DIR; writes KEEP_DIR/summary.md (per
question a table and a statement computed from it) and KEEP_DIR/summary.json (the same numbers), and copies
each run's small files (config.yml, episodes.csv, steps.csv, progress.csv; the retraining's table6.md and
table6.csv) into KEEP_DIR/<run>/, skipping any over 1 MB. An absent run folder is reported as not run; one
that exists but cannot be read stops the command with a one-line error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sb3_nas.analysis.summary import (
    EARLY_EPISODES,
    EARLY_STEPS,
    build_summary,
    copy_kept_files,
    render_markdown,
    summary_json,
)
from sb3_nas.cli import ArgumentParser, add_shared, positive_int, run_command
from sb3_nas.experiment import RunFolderError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.summary", description=__doc__)
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="the folder of the exp1-*, exp2-*, exp3-* runs")
    add_shared(parser, "out", out={"required": True, "metavar": "KEEP_DIR", "help": "where the summary goes"})
    first = {
        "type": positive_int,
        "help": "means over each environment's first %(metavar)s (default %(default)s)",
    }
    parser.add_argument("--early-steps", default=EARLY_STEPS, metavar="steps", **first)
    parser.add_argument("--early-episodes", default=EARLY_EPISODES, metavar="episodes", **first)
    return parser


def execute(args: argparse.Namespace) -> int:
    runs_dir, keep_dir, early = Path(args.runs_dir), Path(args.out), (args.early_steps, args.early_episodes)
    if not runs_dir.is_dir():
        raise RunFolderError(f"runs folder {runs_dir} does not exist")
    sections = build_summary(runs_dir, *early)
    keep_dir.mkdir(parents=True, exist_ok=True)
    (keep_dir / "summary.md").write_text(render_markdown(sections, runs_dir, early), encoding="utf-8")
    data = json.dumps(summary_json(sections, early), indent=2, ensure_ascii=False, allow_nan=False)
    (keep_dir / "summary.json").write_text(data + "\n", encoding="utf-8")
    copied = copy_kept_files(runs_dir, keep_dir)
    print(f"summary: {(keep_dir / 'summary.md').resolve()} (+ {len(copied)} files kept)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
