"""The ``synkit`` command: ``synkit run PARAMS.yaml`` and ``synkit check PARAMS.yaml``."""

from __future__ import annotations

import argparse
import signal
import sys

from synkit.study import run as study
from synkit.study import check as study_check
from synkit.study import params as study_params


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train-t2i"]:  # the embedded text-to-image model has its own options
        from synkit.t2i.families import main_train

        return main_train(argv[1:])
    parser = argparse.ArgumentParser(prog="synkit", description="Run a synthetic-image scaling study from one parameter file.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train-t2i", help="train (or reuse) an embedded text-to-image model (--family: embedded, embedded-pixel, embedded-tokens)", add_help=False)
    for name, text in (("run", "check, then execute the study's notebooks in order"), ("check", "validate a parameter file without running")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("params", help="the study's YAML parameter file, e.g. parameters/mini.yaml")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key (01_prompts.key=value for one notebook)")
        p.add_argument("--notebooks", default=str(study_params.NOTEBOOKS_DIR), help="folder of the study notebooks (default: %(default)s)")
        if name == "run":
            p.add_argument("--only", action="append", help="notebooks to run, comma-separated or repeated, e.g. 01_prompts,02_generate")
            p.add_argument("--force", action="store_true", help="run every notebook even if it finished before with the same parameters and code")
    args = parser.parse_args(argv)

    try:
        if args.command == "check":
            spec = study_params.load_study(args.params, args.set)
            plan = study_check.check(spec, study_params.listed_notebooks(spec, study_params.discover(args.notebooks), args.params), source=args.params)
            keys = sum(len(v) for v in plan.values())
            print(f"{args.params}: OK ({len(plan)} notebooks, {keys} parameter values, outputs in {study.study_dir(spec)})")
            return 0
        only = [s.strip() for item in args.only for s in item.split(",") if s.strip()] if args.only else None
        signal.signal(signal.SIGTERM, _terminated)  # a SIGTERM ends the run like Ctrl-C: the running notebook is kept, named as such
        done = study.run(args.params, only=only, sets=args.set, notebooks_dir=args.notebooks, force=args.force)
        print(f"study finished: {len(done)} notebooks done (run or reused) in {next(iter(done.values())).parent}" if done else "nothing to run")
        return 0
    except study_params.StudyError as err:
        print(f"synkit {args.command}: {err}", file=sys.stderr)
        return 2
    except study.NotebookFailed as err:
        print(f"synkit run: {err}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"synkit run: terminated by SIGTERM; {study.interrupted_note()}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"synkit run: interrupted; {study.interrupted_note()}", file=sys.stderr)
        return 130


class Terminated(BaseException):
    """SIGTERM, raised where the run is (as KeyboardInterrupt is for Ctrl-C)."""


def _terminated(signum, frame):
    raise Terminated()


if __name__ == "__main__":
    raise SystemExit(main())
