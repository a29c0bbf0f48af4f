"""The documentation's code runs: docs that cannot rot.

For every page of the mkdocs site (``mkdocs.yml`` nav order), the fenced blocks run in page
order, like a reader working through the page in one terminal and one Python session:

* ```` ```python ```` blocks are executed in one namespace per page (``exec``), with the working
  directory set to the page's temporary folder (or wherever a ``$ cd`` took the reader);
* ```` ```console ```` blocks: every ``$ command`` line runs through :class:`Shell` (below), and the
  lines that follow it, if any, are the output it must print (in order; ``...`` matches
  anything and numbers compare equal, see :func:`check_output`); a non-zero exit status fails
  the page;
* a fence with ``title="some/path"`` is a *file* shown to the reader: it is written to that path
  (relative to the working directory), not executed; later commands use it (``pip install -e``,
  ``python -m pytest``...). With ``<!-- docs-test: replace NAME -->`` on the line before it, the
  block holds new versions of the top-level functions ``NAME`` (comma-separated) of an existing
  Python file, and replaces just those in it (the reader is told to edit them);
* other languages (``text``, ``toml``, ``json``, ``yaml``, ...) are shown, not run. Shell snippets
  must be ``console`` blocks (``bash``/``sh``/``shell`` fences are refused), so none escapes.

A block is skipped ONLY with an HTML comment on the line right before its fence,
``<!-- docs-test: skip REASON -->``; the reason is required, and skipped blocks must stay a small
minority (:data:`MAX_SKIPPED_SHARE`). A page that contains ``<!-- docs-test: fake-hub -->`` runs
against the local Hugging Face Hub look-alike of ``tests/hubserver.py`` (127.0.0.1; nothing
reaches the network), so its ``push_to_hub`` / ``textme push`` / ``textme pull`` examples run for
real.

Environment: the root ``conftest.py`` forces ``HF_HUB_OFFLINE=1``; every page gets its own
temporary working directory, and all pages share one temporary ``TEXTME_HOME`` and ``HF_HOME``
(so the MiniLM embeddings of the reference-world captions several pages train on are computed
once: the embedding cache is what a reader's second run would use too). Environment variables,
``sys.path``, the working directory and the plugin registry are restored after each page.

Substitutions (documented here because a reader's commands are not run verbatim):

* ``pip install -e DIR`` must not modify the shared virtual environment. It becomes
  ``pip install --no-deps --no-build-isolation --no-index --target <page tmp>/site DIR`` (as
  ``tests/test_scaffold.py`` and the ``gapdemo_site`` fixture of ``tests/conftest.py`` install
  plugins), and ``DIR`` itself plus that site go first on ``PYTHONPATH`` for every later command
  and on ``sys.path`` for later Python blocks. ``DIR`` first keeps the install *editable* (edits to
  the plugin's sources are seen at once, as with ``-e``); the site supplies the
  ``textme`` entry point metadata. Any other ``pip`` command needs a skip marker.
* ``textme ARGS`` runs in this process through typer's ``CliRunner`` on the very app the console
  script runs (``textme_sdk.cli.get_app()``): a new interpreter per command would cost seconds
  each. Once a page has installed a plugin, ``textme`` runs in a subprocess
  (``python -m textme_sdk.cli``) instead, so that entry points and plugin commands are found as in
  a fresh shell. ``python``, ``torchrun`` and ``accelerate`` run with this interpreter in a
  subprocess (``python -m torch.distributed.run``, ...). ``cd DIR`` changes the working directory
  (it must stay inside the page's folder) and leading ``VAR=value`` words set environment
  variables. Any other program needs a skip marker.
* Everything runs with one torch thread (:data:`THREADS`).

Besides running the pages: the CLI reference lists exactly the commands ``textme --help`` shows
(and every option of each), every page is in the nav, the evaluation page lists every benchmark
of ``TASKS``, ``docs/figures/make_gap_figure.py`` still draws the committed figure, and
``mkdocs build --strict`` passes (skipped with the reason when mkdocs is not installed).
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

#: Languages that run; everything else is shown only.
RUN_LANGS = {"python", "console"}
#: Languages refused: shell snippets are console blocks, Python is tagged ``python``.
REFUSED_LANGS = {"bash", "sh", "shell", "zsh", "shell-session", "py", "python3", "pycon"}
#: Skipped blocks may be at most this share of the runnable ones.
MAX_SKIPPED_SHARE = 0.2
#: Seconds any one command may take.
COMMAND_TIMEOUT = 600
#: torch threads of the page (in-process and in every command). One thread: the examples are
#: small, and on a shared 2-core machine two threads per process oversubscribe the cores and
#: run several times slower (see benchmarks/README.md).
THREADS = 1

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)(?P<attrs>[^`]*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?(?![\w])")


# ----------------------------------------------------------------------------- parsing
@dataclass
class Block:
    """One fenced block of a page."""

    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    title: str | None = None
    skip: str | None = None  # the reason, when skip-marked
    replace: tuple[str, ...] = ()  # functions to replace in the titled file

    @property
    def runs(self) -> bool:
        """Whether the block is executed (python/console without a title)."""
        return self.lang in RUN_LANGS and self.title is None

    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


@dataclass
class Page:
    name: str
    blocks: list[Block]
    directives: set[str] = field(default_factory=set)


def parse_page(path: Path) -> Page:
    """The fenced blocks of a markdown page, with their skip markers and page directives."""
    name = path.relative_to(DOCS).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    directives: set[str] = set()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        d = DIRECTIVE.match(lines[i])
        if d and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
            body = d.group("body")
            if body.split()[0] == "skip":
                raise AssertionError(f"docs/{name}:{i + 1}: a skip marker must be on the line "
                                     "right before a fenced block")
            directives.add(body)
        if not m:
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and lines[i].strip().strip(fence[0]) == ""):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        if i >= len(lines):
            raise AssertionError(f"docs/{name}:{start + 1}: unclosed code fence")
        i += 1
        title = TITLE.search(m.group("attrs"))
        skip, replace = None, ()
        prev = DIRECTIVE.match(lines[start - 1]) if start else None
        if prev:
            words = prev.group("body").split(maxsplit=1)
            arg = words[1].strip() if len(words) > 1 else ""
            if words[0] == "skip":
                skip = arg
            elif words[0] == "replace" and arg and title and m.group("lang") == "python":
                replace = tuple(n.strip() for n in arg.split(","))
            else:
                raise AssertionError(f"docs/{name}:{start}: unknown docs-test directive "
                                     f"{prev.group('body')!r} before a block (skip REASON, or "
                                     "replace NAME before a titled python block)")
        blocks.append(Block(name, start + 1, m.group("lang").lower(), "\n".join(body) + "\n",
                            title.group("title") if title else None, skip, replace))
    return Page(name, blocks, directives)


def nav_pages() -> list[str]:
    """Markdown files of the mkdocs nav, in order."""
    text = MKDOCS_YML.read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1]
    nav = re.split(r"\n(?=\S)", nav, maxsplit=1)[0]  # up to the next top-level key
    return re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w/.-]+\.md)\s*$", nav, flags=re.MULTILINE)


PAGES = nav_pages()


# ----------------------------------------------------------------------------- console
def check_output(expected: list[str], actual: str, where: str) -> None:
    """Each expected line must match an actual line, in order (lines may be skipped).

    Whitespace runs compare equal, and so do numbers (``93.3`` matches ``71.2``: scores and
    timings differ between machines, the shape of the output must not); ``...`` inside a line
    matches anything; a line that is only ``...`` stands for any number of lines.
    """
    def norm(line: str) -> str:
        return " ".join(NUMBER.sub("0", line).split())

    got = [norm(line) for line in actual.splitlines() if line.strip()]
    pos = 0
    for want in (norm(w) for w in expected if w.strip()):
        if want == "...":
            continue
        pattern = "*".join(fnmatch_escape(part) for part in want.split("..."))
        while pos < len(got) and not fnmatch.fnmatchcase(got[pos], pattern):
            pos += 1
        if pos == len(got):
            raise AssertionError(f"{where}: expected output line {want!r} not found (in order) "
                                 f"in:\n{actual[-4000:]}")
        pos += 1


def fnmatch_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


class Unsupported(Exception):
    """A command the runner does not execute: the block needs a skip marker."""


class Shell:
    """The reader's terminal for one page: working directory, installed plugins, environment."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.cwd = self.root
        self.site = self.root / ".docs-test-site"
        self.paths: list[Path] = []  # editable source folders + the site, for PYTHONPATH

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "TEXTME_LOAD_PLUGINS"}
        env.update(COLUMNS="120", PIP_NO_INPUT="1", PYTHONUNBUFFERED="1",
                   OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
        inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        pp = [str(p) for p in self.paths] + inherited
        if pp:
            env["PYTHONPATH"] = os.pathsep.join(pp)
        env.update(extra)
        return env

    def resolve(self, path: str) -> Path:
        p = (self.cwd / os.path.expanduser(path)).resolve()
        if p != self.root and self.root not in p.parents:
            raise Unsupported(f"{path!r} leads outside the page's working folder")
        return p

    def run(self, command: str) -> str:
        """Run one ``$`` command line; return its output (stdout + stderr)."""
        words = shlex.split(command, comments=True)
        extra: dict[str, str] = {}
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            key, _, value = words.pop(0).partition("=")
            extra[key] = value
        if not words:
            raise Unsupported(f"no command in {command!r}")
        prog, args = words[0], words[1:]
        py = sys.executable
        if prog == "cd":
            target = self.resolve(args[0] if args else str(self.root))
            if not target.is_dir():
                raise AssertionError(f"cd: {target} is not a folder")
            self.cwd = target
            return ""
        if prog == "pip":
            return self.pip(args)
        if prog == "textme" and not self.paths:
            return self.textme_in_process(args, extra, command)
        argv = {
            "textme": [py, "-m", "textme_sdk.cli"],
            "python": [py],
            "torchrun": [py, "-m", "torch.distributed.run"],
            "accelerate": [py, "-m", "accelerate.commands.accelerate_cli"],
        }.get(prog)
        if argv is None:
            raise Unsupported(f"the docs runner does not run {prog!r}")
        res = subprocess.run(argv + args, check=False, cwd=self.cwd, env=self.env(extra),
                             capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        out = res.stdout + res.stderr
        if res.returncode != 0:
            raise AssertionError(f"`{command}` exited with {res.returncode}:\n{out[-6000:]}")
        return out

    def textme_in_process(self, args: list[str], extra: dict[str, str], command: str) -> str:
        """``textme ARGS`` through typer's CliRunner on the app the console script runs.

        Faster than a new interpreter per command (no start-up, models already imported). Once
        a page has installed a plugin, ``textme`` runs in a subprocess instead, so that entry
        points and plugin commands are discovered as in a fresh shell.
        """
        from typer.testing import CliRunner

        from textme_sdk.cli import get_app

        cwd = os.getcwd()
        os.chdir(self.cwd)
        try:
            res = CliRunner().invoke(get_app(), args, env={"COLUMNS": "120", **extra})
        finally:
            os.chdir(cwd)
        out = res.stdout + "\n" + res.stderr
        if res.exit_code != 0:
            detail = "".join(traceback.format_exception(res.exception)) if res.exception and \
                not isinstance(res.exception, SystemExit) else ""
            raise AssertionError(f"`{command}` exited with {res.exit_code}:\n{out[-6000:]}{detail}")
        return out

    def pip(self, args: list[str]) -> str:
        """``pip install -e DIR``, isolated (see the module docstring); nothing else."""
        opts = [a for a in args if a.startswith("-") and a not in ("-e", "--editable")]
        rest = [a for a in args if not a.startswith("-")]
        if args[:1] != ["install"] or not {"-e", "--editable"} & set(args) or len(rest) != 2 \
                or set(opts) - {"-q", "--quiet"}:
            raise Unsupported("only `pip install -e DIR` runs in the docs tests, not "
                              f"`pip {' '.join(args)}`")
        source = self.resolve(rest[1])
        res = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--no-index", "--upgrade", "--target", str(self.site), str(source)],
            check=False, cwd=self.cwd, env=self.env({}), capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT)
        if res.returncode != 0:
            raise AssertionError(f"pip install of {source} failed:\n{res.stdout}{res.stderr}")
        shutil.rmtree(self.site / "bin", ignore_errors=True)
        for p in (source, self.site):
            if p not in self.paths:
                self.paths.insert(0 if p == source else len(self.paths), p)
        return ""


def replace_functions(source: str, new: str, names: tuple[str, ...], where: str) -> str:
    """``source`` with its top-level functions ``names`` replaced by their versions in ``new``.

    Imports at the top of ``new`` that ``source`` lacks are added after its last top-level import.
    """
    old_tree, new_tree = ast.parse(source), ast.parse(new)
    new_lines = new.splitlines()
    defs = {n.name: n for n in new_tree.body if isinstance(n, ast.FunctionDef)}
    others = [n for n in new_tree.body if not isinstance(n, (ast.FunctionDef, ast.Import,
                                                             ast.ImportFrom))]
    if set(defs) != set(names) or others:
        raise AssertionError(f"{where}: a `replace` block must define exactly {list(names)} (and "
                             f"imports), got {sorted(defs)}")
    lines = source.splitlines()
    targets = {n.name: n for n in old_tree.body if isinstance(n, ast.FunctionDef)}
    missing = set(names) - set(targets)
    if missing:
        raise AssertionError(f"{where}: the file has no function {sorted(missing)} to replace")

    def span(node: ast.FunctionDef) -> tuple[int, int]:
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        return first - 1, node.end_lineno

    for name in sorted(names, key=lambda n: -targets[n].lineno):  # bottom-up keeps line numbers
        a, b = span(targets[name])
        c, d = span(defs[name])
        lines[a:b] = new_lines[c:d]
    have = {ast.unparse(n) for n in old_tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    imports = [ast.unparse(n) for n in new_tree.body
               if isinstance(n, (ast.Import, ast.ImportFrom)) and ast.unparse(n) not in have]
    if imports:
        last = max((n.end_lineno for n in old_tree.body
                    if isinstance(n, (ast.Import, ast.ImportFrom))), default=0)
        lines[last:last] = imports
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- one page
class PageRun:
    """Runs the blocks of one page in order, sharing a namespace and a :class:`Shell`."""

    def __init__(self, page: Page, workdir: Path):
        self.page = page
        self.shell = Shell(workdir)
        self.namespace: dict[str, object] = {"__name__": f"docs_{Path(page.name).stem}"}
        self.counts = {"python": 0, "console": 0, "file": 0, "skipped": 0}
        self.timings: list[tuple[str, float]] = []

    def sync_python_path(self) -> None:
        """Make plugins installed with ``pip install -e`` importable and registered in-process."""
        import textme_sdk

        changed = False
        for p in reversed(self.shell.paths):
            if str(p) not in sys.path:
                sys.path.insert(0, str(p))
                changed = True
        if changed:
            importlib.invalidate_caches()
            textme_sdk.reload_plugins()

    def forget_modules(self, folder: Path) -> None:
        """Drop imported modules whose source lies under ``folder`` (a file there changed)."""
        import textme_sdk

        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None)
            if f and Path(f).resolve().is_relative_to(folder):
                del sys.modules[name]
        importlib.invalidate_caches()
        textme_sdk.reload_plugins()

    def run(self) -> None:
        for block in self.page.blocks:
            if block.skip is not None:
                self.counts["skipped"] += 1
                continue
            start = time.perf_counter()
            if block.title is not None:
                self.write_file(block)
            elif block.lang == "python":
                self.run_python(block)
            elif block.lang == "console":
                self.run_console(block)
            if block.title is not None or block.runs:
                self.timings.append((block.where(), time.perf_counter() - start))

    def write_file(self, block: Block) -> None:
        path = self.shell.resolve(block.title)
        path.parent.mkdir(parents=True, exist_ok=True)
        if block.replace:
            path.write_text(replace_functions(path.read_text(encoding="utf-8"), block.code,
                                              block.replace, block.where()), encoding="utf-8")
        else:
            path.write_text(block.code, encoding="utf-8")
        self.counts["file"] += 1
        if path.suffix == ".py":
            self.forget_modules(self.shell.root)

    def run_python(self, block: Block) -> None:
        self.sync_python_path()
        os.chdir(self.shell.cwd)
        code = compile("\n" * (block.line) + block.code, str(DOCS / block.page), "exec")
        try:
            exec(code, self.namespace)  # noqa: S102 - the docs' own code
        except Exception as exc:
            raise AssertionError(f"{block.where()}: the python block failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
        self.counts["python"] += 1

    def run_console(self, block: Block) -> None:
        commands: list[tuple[str, list[str]]] = []
        lines = block.code.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                cmd = line[2:]
                while cmd.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd = cmd[:-1] + " " + lines[i].strip()
                commands.append((cmd, []))
            elif commands:
                commands[-1][1].append(line)
            elif line.strip():
                raise AssertionError(f"{block.where()}: a console block starts with a `$ ` command")
            i += 1
        if not commands:
            raise AssertionError(f"{block.where()}: a console block without a `$ ` command")
        self.sync_python_path()
        for cmd, expected in commands:
            try:
                out = self.shell.run(cmd)
            except Unsupported as exc:
                raise AssertionError(
                    f"{block.where()}: {exc}; mark the block with "
                    "`<!-- docs-test: skip REASON -->` if it cannot run here") from exc
            except AssertionError as exc:
                raise AssertionError(f"{block.where()}: {exc}") from exc
            check_output(expected, out, f"{block.where()} `{cmd}`")
        self.counts["console"] += 1


@contextlib.contextmanager
def restored_process_state(workdir: Path):
    """Put back the environment, sys.path, working directory and plugin registry, and forget
    the modules the page imported from its own folder (plugins it installed)."""
    import textme_sdk

    env, path, cwd = dict(os.environ), list(sys.path), os.getcwd()
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = path
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None)
            if f and Path(f).resolve().is_relative_to(workdir.resolve()):
                del sys.modules[name]
        importlib.invalidate_caches()
        textme_sdk.reload_plugins()


@contextlib.contextmanager
def torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def docs_homes(tmp_path_factory) -> dict[str, str]:
    """One TEXTME_HOME and HF_HOME shared by every page (see the module docstring)."""
    base = tmp_path_factory.mktemp("docs-homes")
    return {"TEXTME_HOME": str(base / "textme"), "HF_HOME": str(base / "hf")}


# ----------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("name", PAGES)
def test_page_code_runs(name, docs_homes, tmp_path, monkeypatch, request):
    page = parse_page(DOCS / name)
    work = tmp_path / "work"
    work.mkdir()
    with restored_process_state(work), torch_threads(THREADS):
        for key, value in docs_homes.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
        monkeypatch.delenv("TEXTME_LOAD_PLUGINS", raising=False)
        if "fake-hub" in page.directives:
            request.getfixturevalue("fake_hub")
        run = PageRun(page, work)
        run.run()
    print(f"docs/{name}: {run.counts}; seconds: "
          + ", ".join(f"{where.rsplit(':', 1)[1]}: {sec:.1f}" for where, sec in run.timings))


def all_blocks() -> list[Block]:
    return [b for name in PAGES for b in parse_page(DOCS / name).blocks]


def test_every_page_is_in_the_nav_and_blocks_are_well_formed():
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(PAGES) == on_disk, "every page under docs/ must be in the mkdocs nav (and back)"
    blocks = all_blocks()
    refused = [b.where() for b in blocks if b.lang in REFUSED_LANGS]
    assert not refused, f"use ```console (with `$ ` prompts) or ```python fences: {refused}"
    untagged_code = [b.where() for b in blocks if b.lang == "" and re.search(
        r"^\s*(\$ |import |from \w+ import |textme )", b.code, flags=re.MULTILINE)]
    assert not untagged_code, f"code in untagged fences would not run: {untagged_code}"


def test_skips_have_reasons_and_are_a_small_minority():
    blocks = [b for b in all_blocks() if b.runs or b.title is not None]
    skipped = [b for b in blocks if b.skip is not None]
    no_reason = [b.where() for b in skipped if len(b.skip.split()) < 3]
    assert not no_reason, f"skip markers need a reason (a few words): {no_reason}"
    assert len(blocks) >= 40, f"only {len(blocks)} runnable blocks: the docs lost their examples?"
    share = len(skipped) / len(blocks)
    assert share <= MAX_SKIPPED_SHARE, (
        f"{len(skipped)} of {len(blocks)} blocks are skipped ({share:.0%} > "
        f"{MAX_SKIPPED_SHARE:.0%}): " + "; ".join(f"{b.where()}: {b.skip}" for b in skipped))
    print(f"{len(blocks) - len(skipped)} blocks run or written, {len(skipped)} skipped:")
    for b in skipped:
        print(f"  {b.where()}: {b.skip}")


def help_commands() -> list[str]:
    """The command names `textme --help` lists (without entry-point plugins' commands)."""
    env = {**os.environ, "COLUMNS": "200", "TEXTME_LOAD_PLUGINS": ""}
    out = subprocess.run([sys.executable, "-m", "textme_sdk.cli", "--help"], capture_output=True,
                         text=True, env=env, check=True, timeout=120).stdout
    section = out.split("Commands", 1)[1]
    return re.findall(r"^[│|]\s([a-z][a-z0-9-]*)\s{2,}", section, flags=re.MULTILINE)


def test_cli_reference_lists_exactly_the_commands_and_their_options():
    import typer

    from textme_sdk.cli.app import app

    shown = help_commands()
    assert len(shown) >= 10 and len(set(shown)) == len(shown)
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `textme ([a-z0-9-]+)`\n(.*?)(?=^## |\Z)", text,
                               flags=re.MULTILINE | re.DOTALL))
    assert sorted(sections) == sorted(shown), \
        "docs/cli.md must have one `## `textme CMD`` section per command"
    group = typer.main.get_command(app)
    for name in shown:
        cmd = group.commands[name]
        for param in cmd.params:
            flags = [o for o in param.opts if o.startswith("--")]
            if param.param_type_name == "argument":
                assert param.name.upper() in sections[name], \
                    f"docs/cli.md: {name} lacks argument {param.name.upper()}"
            elif flags and "--help" not in flags:
                assert any(f"`{f}" in sections[name] for f in flags), \
                    f"docs/cli.md: `textme {name}` does not document {flags[0]}"


#: Commands that the repository's plugins add to ``textme`` and the page that documents each.
PLUGIN_COMMAND_PAGES = {"demo": "demo.md"}


def test_plugin_commands_are_documented_with_their_options():
    """docs/cli.md covers the core; a command a plugin adds has a section on its own page."""
    import typer

    from textme_sdk.cli import get_app

    group = typer.main.get_command(get_app())
    added = sorted(set(group.commands) - set(help_commands()))
    assert added == sorted(PLUGIN_COMMAND_PAGES), "document each plugin command on a page"
    for name, page in PLUGIN_COMMAND_PAGES.items():
        text = (DOCS / page).read_text(encoding="utf-8")
        section = re.search(rf"^## The `textme {name}` command\n(.*?)(?=^## |\Z)", text,
                            flags=re.MULTILINE | re.DOTALL)
        assert section, f"docs/{page} lacks a '## The `textme {name}` command' section"
        for param in group.commands[name].params:
            flags = [o for o in param.opts if o.startswith("--")]
            if flags and "--help" not in flags:
                assert any(f"`{f}" in section.group(1) for f in flags), \
                    f"docs/{page}: `textme {name}` does not document {flags[0]}"


def test_mkdocs_build_strict(tmp_path):
    if any(importlib.util.find_spec(m) is None for m in ("mkdocs", "mkdocstrings", "material")):
        if os.environ.get("CI"):  # make setup installs the docs extra: CI must build the site
            pytest.fail("mkdocs / mkdocstrings are not installed in CI; `make setup` installs .[docs]")
        pytest.skip("mkdocs / mkdocstrings not installed: `pip install -e .[docs]` (make docs)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                          "-f", str(MKDOCS_YML), "-d", str(tmp_path / "site")], check=False,
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-8000:]
    assert (tmp_path / "site" / "index.html").exists()
    for name in PAGES:
        stem = name[:-3]
        html = tmp_path / "site" / (stem[:-5] + "index.html" if stem.endswith("index")
                                    else stem + "/index.html")
        assert html.exists(), f"{name} was not rendered ({html})"


def test_gap_figure_script_draws_the_committed_figure(tmp_path):
    """docs/figures/make_gap_figure.py runs offline and the committed PNG stays small."""
    pytest.importorskip("matplotlib", reason="the figure script needs matplotlib ([dev] extra)")
    committed = DOCS / "figures" / "modality-gap.png"
    assert committed.exists() and committed.stat().st_size < 200_000
    spec = importlib.util.spec_from_file_location("make_gap_figure",
                                                  DOCS / "figures" / "make_gap_figure.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with torch_threads(THREADS):
        gaps = script.draw(tmp_path / "gap.png")
    assert (tmp_path / "gap.png").stat().st_size < 200_000
    before, after = gaps.values()
    assert before > 0.3 and after < 1e-5  # the gap the figure shows, and none after centring
    assert f"{before:.2f}" in (DOCS / "concepts.md").read_text(encoding="utf-8")


def test_evaluation_page_lists_every_benchmark():
    from textme_sdk.evaluation.datasets import TASKS

    text = (DOCS / "evaluation.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| (retrieval|classification) \| (\S+) \|", text,
                      flags=re.MULTILINE)
    assert {name: (kind, modality) for name, kind, modality in rows} == \
        {name: (t.kind, t.modality) for name, t in TASKS.items()}
