"""``python -m sb3_nas.report``: one self-contained HTML file with the paper's figures for one run or several.

Best reward, accumulated reward and episode length per episode (Fig. 9, 12, 14), the policy entropy, the
proportion of each action, multi-branch counts, the Wilcoxon test between environments (§7), the best networks
as diagrams and Table 6 when sb3_nas.retrain has written it. Runs on the same environments share each plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sb3_nas.analysis import load_runs
from sb3_nas.analysis.report import build_report, export_png, render_html
from sb3_nas.analysis.retraining import RETRAIN_TOP
from sb3_nas.cli import ArgumentParser, add_shared, positive_int, run_command

REPORT_FILE = "report.html"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.report", description=__doc__)
    parser.add_argument(
        "runs", nargs="+", metavar="DIR", help="run folders of sb3_nas.train / sb3_nas.evaluate"
    )
    add_shared(
        parser,
        "out",
        out={
            "metavar": "FILE",
            "help": f"the HTML file (default DIR/{REPORT_FILE} for one run, {REPORT_FILE} for several)",
        },
    )
    parser.add_argument(
        "--block", type=positive_int, default=None, help="episodes per block (default: about ten blocks)"
    )
    parser.add_argument(
        "--top", type=positive_int, default=RETRAIN_TOP, help="networks drawn per environment"
    )
    return parser


def execute(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs)
    default = runs[0].path / REPORT_FILE if len(runs) == 1 else Path(REPORT_FILE)
    out = Path(args.out) if args.out else default
    report = build_report(runs, args.block, args.top)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    pngs = export_png(report, out)
    print(f"report: {out.resolve()}" + (f" (+ {len(pngs)} PNG)" if pngs else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
