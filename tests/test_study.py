import json
from pathlib import Path

import nbformat
import pytest

from synkit.study import cli

from synkit.study import run as study
from synkit.study import check as study_check
from synkit.study import params as study_params
from tests.conftest import ROOT

PARAM_FILES = sorted((ROOT / "parameters").glob("*.yaml"))


def write_notebook(path: Path, params: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_every_parameter_file_passes_check(path, capsys):
    assert cli.main(["check", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_parameter_files_exist():
    names = {p.name for p in PARAM_FILES}
    assert {"smoke.yaml", "mini.yaml", "imagenet_sd15_incaptions_cfg2.yaml", "imagenet_sd15_classnames_cfg7.5.yaml"} <= names


def test_misspelled_key_names_closest(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: bad\nprompt_set: [classnames]\n")
    assert cli.main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown key 'prompt_set'" in err and "did you mean 'prompt_sets'?" in err


@pytest.mark.parametrize(
    "override, message",
    [
        ("real_size=-5", "real_size=-5 is invalid for 01_prompts: it must be at least 1"),
        ("real_size=2.5", "real_size=2.5 is invalid for 01_prompts: it must be a whole number, not float"),
        ("seed=true", "seed=True is invalid for 01_prompts: it must be a whole number, not bool"),
        ("world=fahsion", "'fahsion' is not one of fashion, imagenet, folder (did you mean 'fashion'?)"),
        ("01_prompts.prompt_sets=[classnames, clip_templates_8]", "'clip_templates_8' is not one of"),
        ("01_prompts.prompt_sets=[]", "it must be a non-empty list"),
        ("01_prompts.prompt_sets=classnames", "it must be a list, not str"),
        ("world_root=3", "world_root=3 is invalid for 01_prompts: it must be a string, not int"),
        ("01_prompts.captions_per_class=0", "captions_per_class=0 is invalid for 01_prompts: it must be at least 1"),
        ("01_promts.seed=1", "unknown notebook '01_promts'; did you mean '01_prompts'?"),
        ("01_prompts.sed=1", "unknown key 'sed' for 01_prompts; did you mean 'seed'?"),
    ],
)
def test_bad_values_are_named(override, message):
    spec = study_params.load_study(ROOT / "parameters" / "smoke.yaml", [override])
    with pytest.raises(study_params.StudyError) as err:
        study_check.check(spec, study_params.discover(), source="smoke.yaml")
    assert message in str(err.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("02_generate.embedded_config={unet_step: 10}", "embedded_config of 02_generate has unknown key 'unet_step' (fields of synkit.t2i.latent.T2IConfig); did you mean 'unet_steps'?"),
        ("03_quality.reference_config={epoch: 2}", "reference_config of 03_quality has unknown key 'epoch' (fields of synkit.classify.quality.ReferenceConfig); did you mean 'epochs'?"),
        ("04_train.train_config={stepz_max: 3}", "train_config of 04_train has unknown key 'stepz_max' (fields of synkit.classify.train.TrainConfig); did you mean 'steps_max'?"),
        ("04_train.capacity_config={model_kwarg: {}}", "capacity_config of 04_train has unknown key 'model_kwarg'"),
        ("07_clip.clip_config={batchsize: 8}", "clip_config of 07_clip has unknown key 'batchsize' (fields of synkit.clip.train.ClipConfig); did you mean 'batch_size'?"),
        ("04_train.train_config={steps_max: 0}", "train_config of 04_train is invalid: train_config steps_max=0 is invalid"),
        ("04_train.sources=[real, in_captions@2]", "source 'in_captions@2' of 04_train names no configuration 02_generate makes"),
        ("04_train.sources=[real, in_captoins@4+real:0.5]", "did you mean 'in_captions@4'?"),
        ("04_train.capacity_source=classnames@8", "source 'classnames@8' of 04_train names no configuration"),
        ("04_train.sweep_prompt_sets=[classnames, clip_templates_80]",
         "sweep_prompt_sets of 04_train names 'clip_templates_80', which 02_generate does not render (valid: classnames, in_captions)"),
    ],
)
def test_check_looks_inside_nested_configs_and_sources(override, message):
    """A typo inside a nested config or a source 02 will not make is found before anything runs."""
    spec = study_params.load_study(ROOT / "parameters" / "smoke.yaml", [override])
    with pytest.raises(study_params.StudyError) as err:
        study_check.check(spec, study_params.discover(), source="smoke.yaml")
    assert message in str(err.value) and str(err.value).count("\n") == 0


def test_check_accepts_configuration_folder_names_as_sources():
    spec = study_params.load_study(ROOT / "parameters" / "smoke.yaml", ["04_train.sources=[real, embedded-in_captions-cfg4]"])
    assert study_check.check(spec, study_params.discover())["04_train"]["sources"] == ["real", "embedded-in_captions-cfg4"]


def test_parameters_carry_types_papermill_reads():
    import papermill as pm

    for path in NOTEBOOKS:
        params = pm.inspect_notebook(str(path))
        untyped = [name for name, p in params.items() if p["inferred_type_name"] in ("None", "")]
        assert not untyped, f"{path.name}: parameters without a type annotation: {untyped}"
    assert pm.inspect_notebook(str(ROOT / "notebooks" / "04_train.ipynb"))["world_root"]["inferred_type_name"] == "Optional[str]"


def test_enter_finds_the_project_root_and_the_default_study(tmp_path, monkeypatch):
    """A notebook opened in JupyterLab (kernel in notebooks/, no parameters) works from the project
    root and shows the default study with the parameters it ran with."""
    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "parameters").mkdir()
    monkeypatch.delenv(study.ROOT_ENV, raising=False)
    monkeypatch.chdir(project / "notebooks")
    namespace = {"study": "", "outputs_dir": "outputs", "seed": 0}
    with pytest.raises(study_params.StudyError, match="no study has run under .*make study"):
        study.enter(dict(namespace), "04_train")
    recorded = {"parameters_file": "parameters/mini.yaml", "notebooks": {"04_train": {"study": "mini", "seed": 3}}}
    (project / "outputs" / "mini").mkdir(parents=True)
    (project / "outputs" / "mini" / "parameters.json").write_text(json.dumps(recorded))
    monkeypatch.chdir(project / "notebooks")
    folder = study.enter(namespace, "04_train")
    assert Path.cwd() == project.resolve() and folder == Path("outputs/mini") and folder.is_dir()
    assert namespace["study"] == "mini" and namespace["seed"] == 3
    given = {"study": "smoke", "outputs_dir": "elsewhere", "seed": 1}  # parameters given (papermill): kept as they are
    assert study.enter(given, "04_train") == Path("elsewhere/smoke") and given["seed"] == 1


def test_stored_paths_are_relative_to_the_study(tmp_path):
    from synkit.core import files

    study_dir = tmp_path / "outputs" / "mini"
    manifest = study_dir / "synthetic" / "a" / "manifest.parquet"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("x")
    kept = files.stored_path(manifest, study_dir)
    assert kept == "synthetic/a/manifest.parquet" and files.from_study(kept, study_dir) == str(study_dir / kept)
    model = tmp_path / "outputs" / "models" / "t2i" / "pipeline"
    model.mkdir(parents=True)
    assert files.stored_path(model, study_dir) == "../models/t2i/pipeline"
    assert files.from_study("stabilityai/sd-turbo", study_dir) == "stabilityai/sd-turbo"  # a hub id stays one


def test_check_returns_each_notebooks_values():
    spec = study_params.load_study(ROOT / "parameters" / "smoke.yaml", ["seed=7", "01_prompts.captions_per_class=3"])
    plan = study_check.check(spec, study_params.discover())
    assert plan["01_prompts"]["seed"] == 7 and plan["01_prompts"]["captions_per_class"] == 3
    assert plan["01_prompts"]["study"] == "smoke"
    assert "overrides" not in plan["01_prompts"]


def test_float_parameters_accept_integers():
    p = study_params.Param("guidance_scale", 2.0, rules=[">0"])
    assert p.problem(3) is None and p.problem(2.5) is None
    assert p.problem(0) == "it must be > 0"
    assert p.problem("2") == "it must be a number, not str"
    assert study_params.Param("frac", 0.5, rules=["0..1"]).problem(1.5) == "it must be between 0 and 1"
    assert study_params.Param("n", None, rules=["int"]).problem(None) is None


def test_load_study_errors(tmp_path):
    with pytest.raises(study_params.StudyError, match="does not exist"):
        study_params.load_study(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(study_params.StudyError, match="must hold a mapping"):
        study_params.load_study(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(study_params.StudyError, match="is not valid YAML"):
        study_params.load_study(tmp_path / "broken.yaml")
    with pytest.raises(study_params.StudyError, match="is not key=value"):
        study_params.parse_set(["seed"])


def test_study_name_defaults_to_file_stem(tmp_path):
    (tmp_path / "mine.yaml").write_text("seed: 1\n")
    assert study_params.load_study(tmp_path / "mine.yaml")["study"] == "mine"


def test_run_reports_failing_cell_and_keeps_failed_notebook(tmp_path, monkeypatch):
    nbs = tmp_path / "nbs"
    write_notebook(nbs / "01_ok.ipynb", 'study = "x"  # name\nn = 1  # a count [1..]', "m = n + 1")
    write_notebook(nbs / "02_fail.ipynb", 'study = "x"  # name\nn = 1  # a count [1..]', "x = n * 2", 'raise ValueError(f"boom {x}")')
    write_notebook(nbs / "03_never.ipynb", 'study = "x"  # name', "pass")
    params = tmp_path / "p.yaml"
    params.write_text(f"study: t\noutputs_dir: {tmp_path / 'out'}\nn: 4\n")
    with pytest.raises(study_params.StudyError, match="unknown key 'outputs_dir'"):
        study.run(params, notebooks_dir=nbs, progress=False)
    params.write_text("study: t\nn: 4\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(study.NotebookFailed) as err:
        study.run(params, notebooks_dir=nbs, progress=False)
    msg = str(err.value)
    assert msg.startswith("02_fail failed in cell [4] `raise ValueError(f\"boom {x}\")`: ValueError: boom 8")
    out = tmp_path / "outputs" / "t" / "notebooks"
    assert (out / "01_ok.ipynb").exists() and (out / "02_fail.failed.ipynb").exists()
    assert not (out / "02_fail.ipynb").exists() and not (out / "02_fail.running.ipynb").exists()
    assert not (out / "03_never.ipynb").exists()
    executed = nbformat.read(out / "01_ok.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) and "n = 4" in c.source for c in executed.cells)
    with pytest.raises(study_params.StudyError, match="unknown notebook '01_k'; did you mean '01_ok'"):
        study.run(params, only=["01_k"], notebooks_dir=nbs, progress=False)
    done = study.run(params, only=["01_ok"], notebooks_dir=nbs, progress=False)
    assert list(done) == ["01_ok"]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_are_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit notebooks without outputs"
    assert nb["cells"][0]["cell_type"] == "markdown" and "**Purpose.**" in "".join(nb["cells"][0]["source"])
    tagged = [i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    params = study_params.notebook_params(path)
    assert params and all(p.help for p in params.values()), "every parameter carries a comment"


def test_only_accepts_several_flags_and_lists(tmp_path, monkeypatch, capsys):
    nbs = tmp_path / "nbs"
    for stem in ("01_a", "02_b", "03_c"):
        write_notebook(nbs / f"{stem}.ipynb", 'study = "x"  # name', "pass")
    (tmp_path / "p.yaml").write_text("study: t\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "p.yaml", "--notebooks", str(nbs), "--only", "01_a", "--only", "03_c"]) == 0
    out = tmp_path / "outputs" / "t" / "notebooks"
    assert (out / "01_a.ipynb").exists() and (out / "03_c.ipynb").exists() and not (out / "02_b.ipynb").exists()
    assert cli.main(["run", "p.yaml", "--notebooks", str(nbs), "--only", "02_b,01_a"]) == 0
    assert (out / "02_b.ipynb").exists()
    assert cli.main(["run", "p.yaml", "--notebooks", str(nbs), "--only", "01_a", "--only", "04_d"]) == 2
    assert "unknown notebook '04_d'" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_says_so_and_keeps_a_clearly_named_notebook(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    nbs = tmp_path / "nbs"
    write_notebook(nbs / "01_slow.ipynb", 'study = "x"  # name', "import time\nopen('started', 'w').close()\ntime.sleep(120)")
    (tmp_path / "p.yaml").write_text("study: t\n")
    proc = subprocess.Popen([sys.executable, "-m", "synkit", "run", "p.yaml", "--notebooks", str(nbs)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    out = tmp_path / "outputs" / "t" / "notebooks"
    assert proc.returncode == 143
    assert "terminated by SIGTERM" in err and "01_slow.interrupted.ipynb" in err
    assert (out / "01_slow.interrupted.ipynb").exists() and not (out / "01_slow.running.ipynb").exists() and not (out / "01_slow.ipynb").exists()
