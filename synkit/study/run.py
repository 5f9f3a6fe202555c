"""A study: one YAML file of parameters, checked against the notebooks, executed by papermill.

The YAML holds shared keys at the top (each goes to every notebook that declares it) and
per-notebook overrides below, under ``overrides``:

    study: mini              # outputs go to outputs/mini/
    world: fashion
    seed: 0
    overrides:
      01_prompts:
        captions_per_class: 20

A study that needs only some notebooks lists them under ``notebooks`` (e.g. a study without CLIP).

Every key must be a parameter of a notebook it targets, read from the notebooks' cells tagged
``parameters`` by papermill's inspection. A value must have its default's type and satisfy
the rules written in brackets at the end of the parameter's comment (papermill skips lines
with a second ``=``, so rules never use one):

    real_size = 10000  # images in the real split, D_I [1..]        (at least 1; 0..1 is a range)
    guidance_scale = 2.0  # CFG scale [>0]                            (strict bounds: >0, <1)
    world = "fashion"  # [fashion|imagenet|folder]                    (choices)
    prompt_sets = ["classnames"]  # [nonempty, classnames|word2sen]   (rules apply to each item)
    world_root = None  # [str]                                        (the type a None default takes)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from synkit.core.layout import StudyFiles
from synkit.study.params import NOTEBOOKS_DIR, StudyError, discover, listed_notebooks, load_study
from synkit.study.check import check


class NotebookFailed(RuntimeError):
    """A notebook of the study raised: the message names the notebook, cell and error."""


def study_dir(study: dict) -> Path:
    return Path(study.get("outputs_dir", "outputs")) / str(study["study"])


ROOT_ENV = "SYNKIT_ROOT"  # the folder relative paths resolve against (synkit run sets it for its kernels)
DEFAULT_STUDIES = ("mini", "smoke")  # what a notebook opened without parameters shows: the first that has run


def project_root(start: str | Path | None = None) -> Path:
    """The folder relative paths (outputs_dir, world_root, ...) resolve against: ``$SYNKIT_ROOT``,
    else the nearest folder at or above ``start`` (default: the working directory) holding
    ``parameters/`` and ``notebooks/`` (a synkit project), else the working directory."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "parameters").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def default_study(outputs_dir: str | Path) -> str:
    """The study a notebook shows when opened without parameters: the first of DEFAULT_STUDIES that has run."""
    for name in DEFAULT_STUDIES:
        if StudyFiles(Path(outputs_dir) / name).parameters.is_file():
            return name
    raise StudyError(f"no study has run under {Path(outputs_dir).resolve()}: run `make study` (or `synkit run parameters/smoke.yaml`) "
                     f"first, or set study in the notebook's parameters cell.")


def enter(namespace: dict, notebook: str) -> Path:
    """The first step of every notebook: work from the project root (``project_root``), so relative
    paths mean what they mean to ``synkit run``, whichever folder the kernel started in. A notebook
    opened without parameters (JupyterLab: ``study`` left "") takes the default study and the
    parameters that study ran this notebook with (``parameters.json``), so it shows, and reuses,
    that study's results. Updates ``namespace`` (the notebook's globals); returns the study folder."""
    from synkit.analysis import charts
    from synkit.core import progress

    charts.use_offline_renderer()  # every chart a notebook shows renders with no network
    os.chdir(project_root())
    progress.watch_cells()  # under synkit run: the terminal hears about long cells without a bar too
    if not namespace.get("study"):
        outputs = Path(namespace.get("outputs_dir") or "outputs")
        name = default_study(outputs)
        recorded = json.loads(StudyFiles(outputs / name).parameters.read_text(encoding="utf-8"))
        namespace.update(recorded["notebooks"].get(notebook, {}))
        namespace["study"] = name
        print(f"study {name!r} (no parameters given): the parameters {recorded.get('parameters_file', 'its run')} gave {notebook}",
              file=sys.stderr)
    return Path(namespace.get("outputs_dir") or "outputs") / str(namespace["study"])


def _failure_message(stem: str, err, output: Path) -> str:
    source = (getattr(err, "source", "") or "").strip().splitlines()
    first = source[0] if source else ""
    cell = getattr(err, "exec_count", None) or getattr(err, "cell_index", "?")
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    return f"{stem} failed in cell [{cell}] `{first}`: {ename}: {evalue} (full traceback in {output})"


def _code_digest() -> str:
    """A digest of synkit's own source: a code change means results may change."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


_LAST_INTERRUPTED: list[Path] = []


def interrupted_note() -> str:
    """Where the notebook that was running when the run stopped was kept (for the command's message)."""
    if not _LAST_INTERRUPTED:
        return "no notebook was running"
    return f"the notebook that was running is kept as {_LAST_INTERRUPTED[0]}; rerun the study to resume (finished work is reused)"


def run(
    params_file: str | Path,
    only: list[str] | None = None,
    sets: list[str] | None = None,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Path]:
    """Check the study, then execute its notebooks in order into ``outputs/<study>/notebooks/``.

    A notebook runs into ``NN_name.running.ipynb`` and becomes ``NN_name.ipynb`` when it
    finishes (``NN_name.failed.ipynb`` when it raises, ``NN_name.interrupted.ipynb`` when the run is
    stopped by Ctrl-C or SIGTERM), so a complete-looking executed notebook
    is always a complete one. A notebook that finished before with the same parameters, notebook
    and synkit code is reused (``force`` runs every one); once one runs, all later ones run.
    Returns the executed notebooks by stem.
    """
    study = load_study(params_file, sets)
    notebooks = listed_notebooks(study, discover(notebooks_dir), str(params_file))
    plan = check(study, notebooks, source=str(params_file))
    if only:
        unknown = [s for s in only if s not in notebooks]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(notebooks), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(notebooks)}."
            raise StudyError(f"--only names unknown notebook {unknown[0]!r}{hint}")
        notebooks = {s: p for s, p in notebooks.items() if s in only}
    at = StudyFiles(study_dir(study))
    for folder in (Path(study.get("outputs_dir", "outputs")), at.root, at.executed_notebooks):
        if folder.exists() and not folder.is_dir():
            raise StudyError(f"output folder {str(folder)!r} is a file; outputs_dir must name a folder (or one that does not exist yet).")
    at.executed_notebooks.mkdir(parents=True, exist_ok=True)
    from synkit.core.files import write_json

    write_json({"parameters_file": str(params_file), "sets": sets or [], "notebooks": plan}, at.parameters)
    done: dict[str, Path] = {}
    t_study = time.perf_counter()
    code = _code_digest()
    from synkit.core import progress as progress_lines

    saved_env = {k: os.environ.get(k) for k in (ROOT_ENV, progress_lines.ENV)}
    os.environ[ROOT_ENV] = str(Path.cwd().resolve())  # the kernels resolve relative paths from here, as this process does
    try:
        _run_notebooks(notebooks, plan, at, code, force, progress, done, t_study)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return done


def _kernel_manager():
    """A python3 kernel on IPC sockets in a private temporary folder (no TCP ports, no
    unencrypted-transport warning on every notebook)."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    folder = tempfile.mkdtemp(prefix="synkit-kernel-")
    return AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(folder, "kernel"))


def _run_notebooks(notebooks, plan, at, code, rerun, progress, done, t_study) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from synkit.core import progress as progress_lines
    from synkit.core.files import rename, write_json

    for i, (stem, path) in enumerate(notebooks.items(), 1):
        params = plan[stem]
        final, running, failed, stopped = (at.executed(stem, state) for state in ("", "running", "failed", "interrupted"))
        for stale in (running, failed, stopped):
            stale.unlink(missing_ok=True)
        stamp_path = at.executed(stem, "done")
        stamp = {"parameters": params, "notebook": hashlib.sha256(path.read_bytes()).hexdigest(), "code": code}
        if not rerun and final.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == json.loads(json.dumps(stamp, default=str)):
            print(f"[{i}/{len(notebooks)}] {stem}: reused (finished before with the same parameters and code)", file=sys.stderr, flush=True)
            done[stem] = final
            continue
        rerun = True  # everything after a notebook that runs again runs again: it may read what this one rewrites
        stamp_path.unlink(missing_ok=True)
        print(f"[{i}/{len(notebooks)}] {stem} -> {final}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        if progress:  # the kernel's bars report to this terminal
            os.environ[progress_lines.ENV] = f"{i}/{len(notebooks)} {stem}"
        km = _kernel_manager()
        try:
            # papermill's cell bar stays off: the kernel's own lines say more (synkit.core.progress)
            pm.execute_notebook(str(path), str(running), parameters=params, progress_bar=False, kernel_name="python3", km=km)
        except PapermillExecutionError as err:
            rename(running, failed)
            raise NotebookFailed(_failure_message(stem, err, failed)) from None
        except BaseException:  # Ctrl-C, SIGTERM (synkit run), a dead kernel: keep what ran, under a name that says so
            if running.exists():
                rename(running, stopped)
                _LAST_INTERRUPTED[:] = [stopped]
            raise
        finally:
            if km.has_kernel:  # papermill leaves a kernel it was handed running: stop it (and free its memory) now
                from jupyter_core.utils import run_sync

                run_sync(km.shutdown_kernel)(now=True)
            shutil.rmtree(Path(km.ip).parent, ignore_errors=True)
        rename(running, final)
        write_json(stamp, stamp_path)
        done[stem] = final
        print(
            f"[{i}/{len(notebooks)}] {stem} done in {time.perf_counter() - t0:.1f} s "
            f"(study: {time.perf_counter() - t_study:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
