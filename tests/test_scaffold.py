"""The ``add-modality`` plugin scaffold (:mod:`textme_sdk.scaffold`), tested the way plugin
templates are tested: render into a temporary folder and check the files; then install the
rendered plugins (non-editable, into a private folder), list them with ``textme plugins``, run
their own generated tests, and train a bundle with one of them."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

import textme_sdk as tm

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from textme_sdk.errors import InvalidInputError, TextMEError
from textme_sdk.testing import check_encoder
from textme_sdk.scaffold import (
    INPUT_KINDS,
    PluginExistsError,
    create_plugin,
    plugin_spec,
    render_plugin,
    reserved_names,
)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "textme_sdk" / "templates" / "plugin"

#: One scaffold per input kind: (name, options).
KINDS = {
    "file": ("sonar-demo", {"modality": "sonar", "dim": 48, "extensions": [".snr", "PING"]}),
    "array": ("probe-demo", {"input_kind": "array", "dim": 40}),
    "text": ("seq_demo", {"input_kind": "text", "modality": "sequence", "dim": 32}),
}


def expected_files(module: str) -> set[str]:
    return {"pyproject.toml", "README.md", ".gitignore", f"textme_{module}/__init__.py",
            f"textme_{module}/encoder.py", f"tests/test_{module}.py"}


def sample_inputs(kind: str, folder: Path, n: int, suffix: str = ".snr") -> list:
    """Valid inputs for each input kind (written by the test)."""
    rng = np.random.default_rng(0)
    if kind == "file":
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            path = folder / f"s{i}{suffix}"
            path.write_bytes(rng.integers(i, 60 + 3 * i, size=200 + 37 * i, dtype=np.uint8).tobytes())
            paths.append(str(path))
        return paths
    if kind == "array":
        return [rng.normal(i, 1 + i, size=(3, 4 + i)) for i in range(n)]
    return ["ACGT" * (i + 1) + "N" * i for i in range(n)]


@contextmanager
def imported(plugin_dir: Path, package: str):
    """Import ``<package>.encoder`` from a rendered (not installed) plugin folder."""
    sys.path.insert(0, str(plugin_dir))
    try:
        yield importlib.import_module(f"{package}.encoder")
    finally:
        sys.path.remove(str(plugin_dir))
        for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[mod]


# ------------------------------------------------------------------------------ rendering
@pytest.mark.parametrize("kind", list(KINDS))
def test_renders_a_complete_plugin_that_compiles(kind, tmp_path):
    name, opts = KINDS[kind]
    spec = plugin_spec(name, **opts)
    folder = create_plugin(name, directory=tmp_path, **opts)
    assert folder == tmp_path / f"textme-{spec.name}" and folder.is_absolute()
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files == expected_files(spec.module)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left over
    for rel in files:
        text = (folder / rel).read_text()
        assert "{{" not in text and "}}" not in text, rel  # every placeholder filled
        if rel.endswith(".py"):
            compile(text, rel, "exec")

    pyproject = tomllib.loads((folder / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["name"] == f"textme-{spec.name}"
    deps = " ".join(project["dependencies"])
    assert "textme-sdk>=" in deps and "torch" in deps
    assert project["entry-points"]["textme"] == {spec.name: f"textme_{spec.module}"}
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == [f"textme_{spec.module}*"]
    assert any(m.startswith("slow:") for m in pyproject["tool"]["pytest"]["ini_options"]["markers"])

    init = (folder / f"textme_{spec.module}/__init__.py").read_text()
    assert "@hookimpl\ndef register_encoders(register)" in init
    assert f'"{spec.name}",\n        {spec.class_name},' in init and "modality=MODALITY" in init
    encoder_src = (folder / f"textme_{spec.module}/encoder.py").read_text()
    for method in ("load_model", "encode_text_batch", "preprocess", "encode_modal_batch", "config"):
        body = encoder_src.split(f"    def {method}(", 1)[1].split("\n    def ", 1)[0]
        assert "TODO(author)" in body, method  # the author knows where their encoder goes
    readme = (folder / "README.md").read_text()
    for needle in ("pip install -e .", "pytest", f"textme offsets {spec.name}",
                   f"textme train {spec.name}", "tm.train_projector", "from_pretrained",
                   "## Publish", "TODO(author)"):
        assert needle in readme, needle

    with imported(folder, f"textme_{spec.module}") as mod:
        cls = getattr(mod, spec.class_name)
        assert issubclass(cls, tm.ModalityEncoder)
        assert cls.modality == spec.modality and cls.embedding_dim == spec.dim
        assert cls.input_spec.kind == kind
        assert cls.input_spec.file_extensions == spec.extensions == mod.FILE_EXTENSIONS
        enc = cls(device="cpu")
        text = enc.encode_text(["a sonar ping near a reef", "something else entirely"])
        modal = enc.encode_modal(sample_inputs(kind, tmp_path / "in", 3))
        assert text.shape == (2, spec.dim) and modal.shape == (3, spec.dim)
        torch.testing.assert_close(modal.norm(dim=1), torch.ones(3))
        # a modality gap: a text is closer to another text than to any input
        assert float(text[0] @ text[1]) > float((text @ modal.T).max())
        with pytest.raises(InvalidInputError):
            enc.encode_modal([object()])


def test_input_kinds_change_the_input_spec_and_extensions():
    assert set(INPUT_KINDS) == {"file", "array", "text"}
    assert plugin_spec("a", extensions=["WAV", ".flac", "wav"]).extensions == (".wav", ".flac")
    assert plugin_spec("a", extensions=".wav, .nii.gz").extensions == (".wav", ".nii.gz")
    assert plugin_spec("a").extensions == ()  # file: any suffix
    assert plugin_spec("a", input_kind="array").extensions == (".npy",)
    assert plugin_spec("a", input_kind="text").extensions == ()
    spec = plugin_spec("my_sensor-x2")
    assert (spec.name, spec.module, spec.modality, spec.class_name) == (
        "my-sensor-x2", "my_sensor_x2", "my-sensor-x2", "MySensorX2Encoder")
    assert spec.distribution == "textme-my-sensor-x2" and spec.package == "textme_my_sensor_x2"
    files = render_plugin(spec)
    assert set(files) == expected_files("my_sensor_x2")
    enc_file = render_plugin(plugin_spec("a", extensions=[".wav"]))["textme_a/encoder.py"]
    enc_array = render_plugin(plugin_spec("a", input_kind="array"))["textme_a/encoder.py"]
    enc_text = render_plugin(plugin_spec("a", input_kind="text"))["textme_a/encoder.py"]
    assert 'FILE_EXTENSIONS: tuple[str, ...] = (".wav",)' in enc_file
    assert 'InputSpec("file"' in enc_file and "check_input_file" in enc_file
    assert 'InputSpec("array"' in enc_array and "allow_pickle=False" in enc_array
    assert 'InputSpec("text"' in enc_text and "FILE_EXTENSIONS: tuple[str, ...] = ()" in enc_text


def test_every_template_file_is_used():
    """A template file nobody renders is dead weight in the package data."""
    spec_files = set()
    for kind in INPUT_KINDS:
        spec_files |= {f"kinds/{kind}/{s}" for s in
                       ("imports.py.tmpl", "inputs.py.tmpl", "test_inputs.py.tmpl", "readme.md.tmpl")}
    spec_files |= {"pyproject.toml.tmpl", "README.md.tmpl", "gitignore.tmpl",
                   "package/__init__.py.tmpl", "package/encoder.py.tmpl", "tests/test_plugin.py.tmpl"}
    shipped = {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*") if p.is_file()
               and "__pycache__" not in p.parts}
    assert shipped == spec_files


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name, match", [
    ("", "non-empty"),
    (None, "non-empty"),
    ("Sonar", "use 'sonar'"),
    ("9lives", "starting with a letter"),
    ("my sensor", "such as 'my-sensor'"),
    ("a--b", "single dashes"),
    ("sonar-", "single dashes"),
    ("son@r", "letters, digits"),
    ("class", "Python keyword"),
    ("clip", "taken by textme-sdk"),
    ("clap", "taken by textme-sdk"),
    ("minilm", "taken by textme-sdk"),
    ("qwen3", "taken by textme-sdk"),
    ("ref_image", "taken by textme-sdk"),
    ("reference", "taken by textme-sdk"),  # the distribution textme-reference
    ("cxr_clip", "taken by textme-sdk"),
    ("sdk", "taken by textme-sdk"),
    ("text", "taken by textme-sdk"),  # TextME.embed(modality="text") is the anchor
    ("textme-sonar", "without the 'textme-' prefix: 'sonar'"),
    ("a" * 41, "at most 40"),
])
def test_invalid_names_raise_a_typed_error_naming_the_fix(name, match, tmp_path):
    with pytest.raises(InvalidInputError, match=match):
        create_plugin(name, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_reserved_names_cover_builtins_and_project_plugins():
    names = reserved_names()
    assert {"clip", "clap", "viclip", "uni3d", "cxr-clip", "moleculestm", "minilm", "qwen3",
            "sentence-transformers", "ref-image", "ref-audio", "reference", "sdk"} <= names


@pytest.mark.parametrize("opts, match", [
    ({"modality": "text"}, "reserved for the anchor"),
    ({"modality": "Point Cloud"}, "invalid modality"),
    ({"dim": 0}, "dim must be an integer"),
    ({"dim": 1.5}, "dim must be an integer"),
    ({"dim": True}, "dim must be an integer"),
    ({"dim": 10**6}, "dim must be an integer"),
    ({"input_kind": "image"}, "unknown input kind 'image'; choose one of: file"),
    ({"input_kind": "text", "extensions": [".txt"]}, "Drop the extensions"),
    ({"input_kind": "array", "extensions": [".csv"]}, "use input_kind='file'"),
    ({"extensions": ["*.wav"]}, "invalid file extension"),
    ({"extensions": [3]}, "must be strings"),
])
def test_invalid_options_raise_a_typed_error_naming_the_fix(opts, match, tmp_path):
    with pytest.raises(InvalidInputError, match=match):
        create_plugin("sonar", directory=tmp_path, **opts)
    assert list(tmp_path.iterdir()) == []


def test_warns_when_another_installed_plugin_has_the_name(tmp_path, caplog, monkeypatch):
    from textme_sdk import plugins

    rows = [{"plugin": "acme", "source": "acme-encoders 2.0", "encoders": ["sonar"],
             "anchors": [], "error": None}]
    monkeypatch.setattr(plugins, "plugin_status", lambda: rows)
    with caplog.at_level("WARNING", logger="textme_sdk.scaffold"):
        create_plugin("sonar", directory=tmp_path)
    assert "'acme' (acme-encoders 2.0) already registers 'sonar'" in caplog.text


def test_no_warning_when_regenerating_an_installed_scaffold(gapdemo, tmp_path, caplog):
    """textme-gapdemo registers gapdemo itself: re-creating textme-gapdemo is not a clash."""
    assert "gapdemo" in [r.name for r in tm.list_encoders()]
    with caplog.at_level("WARNING", logger="textme_sdk.scaffold"):
        create_plugin("gapdemo", directory=tmp_path)
    assert caplog.text == ""


# ------------------------------------------------------------------------------ overwriting
def test_refuses_to_overwrite_and_force_rewrites_only_template_files(tmp_path):
    folder = create_plugin("sonar", directory=tmp_path)
    pristine = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(PluginExistsError, match="force=True") as info:
        create_plugin("sonar", directory=tmp_path)
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, TextMEError)

    encoder = folder / "textme_sonar" / "encoder.py"
    encoder.write_text("# my own work\n")
    (folder / "notes.txt").write_text("keep me")
    (folder / "textme_sonar" / "weights.safetensors").write_bytes(b"\x00" * 8)
    out = create_plugin("sonar", directory=tmp_path, force=True)
    assert out == folder
    assert {p: p.read_bytes() for p in pristine} == pristine  # template files rewritten
    assert (folder / "notes.txt").read_text() == "keep me"  # nothing else touched
    assert (folder / "textme_sonar" / "weights.safetensors").read_bytes() == b"\x00" * 8
    assert not [p for p in folder.rglob(".*.tmp")]

    # a folder where a template file goes: refused before anything is written
    (folder / "README.md").write_text("edited")
    encoder.unlink()
    encoder.mkdir()
    with pytest.raises(PluginExistsError, match="textme_sonar/encoder.py is in the way"):
        create_plugin("sonar", directory=tmp_path, force=True)
    assert (folder / "README.md").read_text() == "edited"


def test_refuses_a_file_at_the_target_even_with_force(tmp_path):
    (tmp_path / "textme-sonar").write_text("not a folder")
    with pytest.raises(PluginExistsError, match="not a folder"):
        create_plugin("sonar", directory=tmp_path, force=True)
    assert (tmp_path / "textme-sonar").read_text() == "not a folder"


def test_writes_into_the_working_directory_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = create_plugin("sonar")
    assert folder == tmp_path / "textme-sonar" and folder.is_absolute()
    nested = create_plugin("sonar", directory="sub/dir")  # created on demand
    assert nested == tmp_path / "sub" / "dir" / "textme-sonar" and nested.is_dir()


# -------------------------------------------------------------- packaging and installation
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TEXTME_LOAD_PLUGINS"}
    env.update(PIP_NO_INPUT="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"), **extra)
    return env


def _pip_target(target: Path, *sources: Path | str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), *map(str, sources)],
        check=True, cwd=cwd, env=_env(),
    )


def test_templates_ship_in_a_non_editable_install(tmp_path):
    """Build textme-sdk's wheel from a copy of the sources; the templates are package data."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "textme_sdk", src / "textme_sdk",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, cwd=tmp_path, env=_env())
    wheel = next((tmp_path / "dist").glob("textme_sdk-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"textme_sdk/templates/plugin/{p.relative_to(TEMPLATES).as_posix()}"
                 for p in TEMPLATES.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert templates and templates <= names
    assert not [n for n in names if "/templates/" in n and n.endswith((".py", ".pyc"))]

    site = tmp_path / "site"
    _pip_target(site, wheel, cwd=tmp_path)
    code = ("import sys, textme_sdk; from textme_sdk.scaffold import create_plugin; "
            "print(textme_sdk.__file__); print(create_plugin('sonar', input_kind='array', "
            "directory=sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "made")], check=True,
                         capture_output=True, text=True, env=_env(PYTHONPATH=str(site)),
                         cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(site))  # the installed copy, not the source tree
    made = Path(out[1])
    assert {p.relative_to(made).as_posix() for p in made.rglob("*") if p.is_file()} == \
        expected_files("sonar")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One rendered plugin per input kind, pip-installed (non-editable) into a private folder."""
    root = tmp_path_factory.mktemp("scaffolds")
    specs = {}
    for kind, (name, opts) in KINDS.items():
        specs[kind] = plugin_spec(name, **opts)
        create_plugin(name, directory=root, **opts)
    site = root / "site"
    _pip_target(site, *(root / s.distribution for s in specs.values()), cwd=root)
    return root, site, specs


def test_installed_scaffolds_show_up_in_textme_plugins(installed):
    root, site, specs = installed
    out = subprocess.run(
        [sys.executable, "-c", "from textme_sdk.cli import main; main()", "plugins", "--json"],
        check=True, capture_output=True, text=True, cwd=root, env=_env(PYTHONPATH=str(site)),
    ).stdout
    rows = {r["plugin"]: r for r in json.loads(out)}
    for spec in specs.values():
        row = rows[spec.name]
        assert row["error"] is None and row["encoders"] == [spec.name]
        assert row["source"] == f"{spec.distribution} 0.1.0"
        assert row["encoder_info"][spec.name]["modality"] == spec.modality


def test_installed_scaffolds_pass_their_own_tests(installed):
    root, site, specs = installed
    tests = [str(root / s.distribution / "tests") for s in specs.values()]
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        check=False, capture_output=True, text=True, cwd=root, env=_env(PYTHONPATH=str(site)),
    )
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    n_tests = sum((root / s.distribution / "tests" / f"test_{s.module}.py").read_text()
                  .count("\ndef test_") for s in specs.values())
    assert n_tests >= 8 * len(specs)
    assert f"{n_tests} passed" in res.stdout, res.stdout[-2000:]


def test_an_installed_scaffold_trains_a_bundle(installed, minilm, tmp_path):
    """offsets -> train_projector -> save_pretrained -> from_pretrained -> embed
    (:func:`textme_sdk.testing.check_encoder`)."""
    _, site, specs = installed
    spec = specs["file"]
    sys.path.insert(0, str(site))
    tm.reload_plugins()
    try:
        enc = tm.get_encoder(spec.name, device="cpu")
        assert type(enc).__module__ == f"{spec.package}.encoder"
        assert enc.modality == "sonar" and enc.embedding_dim == 48
        files = sample_inputs("file", tmp_path / "in", 24)
        texts = [f"a {q} sonar return from {s}" for q in ("weak", "strong", "noisy", "clear")
                 for s in ("a whale", "a reef", "a wreck", "the seabed", "a submarine", "fish")]
        result = check_encoder(enc, texts, files, tmp_path, anchor=minilm, atol=1e-6,
                               config=tm.TrainConfig(epochs=3, batch_size=16, seed=0),
                               bad_inputs=[(str(tmp_path / "gone.snr"), tm.MissingInputFileError)])
        assert result.offsets.gap > 0.2
        stored = json.loads((result.bundle / "config.json").read_text())["modalities"]["sonar"]
        assert stored["plugin"] == spec.name and stored["encoder"] == {"seed": 0, "gap": 1.0}
    finally:
        sys.path.remove(str(site))
        packages = tuple(s.package for s in specs.values())
        for mod in [m for m in sys.modules if m.split(".")[0] in packages]:
            del sys.modules[mod]
        tm.reload_plugins()
