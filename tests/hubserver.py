"""A tiny Hugging Face Hub look-alike HTTP server, so the real ``huggingface_hub`` client runs
end to end in tests. No ``huggingface_hub`` function is patched: the client speaks HTTP to
``FakeHub.url`` (127.0.0.1, random port). Endpoints served, as huggingface_hub 2.4.0 calls them:

* ``POST /api/repos/create``: create_repo (409 + ``url`` if it exists, so ``exist_ok=True`` works)
* ``GET /api/{models,datasets}/{repo}[/revision/{rev}]``: repo_info, model_info, repo_exists
* ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]``: list_repo_files/list_repo_tree, snapshot_download
* ``POST /api/{type}s/{repo}/preupload/{rev}``: always ``uploadMode: "regular"`` plus the ``oid`` of
  the current remote blob (unchanged files are skipped, as on the Hub). So no LFS/Xet upload ever
  happens: contents arrive base64-inlined in the commit NDJSON.
* ``POST /api/{type}s/{repo}/commit/{rev}``: one new commit (40-hex id) per request, linear history
* ``HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}``: file_exists, hf_hub_download, headers
  ``X-Repo-Commit``, ``ETag`` (quoted git blob sha1), ``Content-Length``
* ``POST /api/validate-yaml`` (sent when a commit has a README.md), ``GET /api/whoami-v2``,
  ``GET /api/agent-harnesses`` (user-agent detection, see below)

``rev`` is ``main`` or a full commit sha. Errors are 404s carrying ``X-Error-Code``
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) which ``hf_raise_for_status`` maps to
``RepositoryNotFoundError``, ``RevisionNotFoundError`` and ``RemoteEntryNotFoundError`` (subclass
of both ``HfHubHTTPError`` and ``huggingface_hub.errors.EntryNotFoundError``). Each request is
logged in ``FakeHub.requests`` as ``(method, path)``, query string stripped; ``FakeHub.calls``
filters it.

How the client reaches the server (findings for huggingface_hub 2.4.0, which uses httpx2):

* ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read ONCE, at import, into
  ``huggingface_hub.constants.ENDPOINT`` (and ``HUGGINGFACE_CO_URL_TEMPLATE``) and
  ``constants.HF_HUB_OFFLINE``; changing the env vars later has no effect in-process. The offline
  check itself runs per request: the shared httpx2 session's request hook calls
  ``constants.is_offline_mode()`` (= ``constants.HF_HUB_OFFLINE``) and raises
  ``OfflineModeIsEnabled``. HfApi methods let that error out; hf_hub_download and snapshot_download
  catch it and raise ``LocalEntryNotFoundError`` (cache miss). So the constant must be False, even
  with ``endpoint=`` passed explicitly.
* Module-level helpers (``huggingface_hub.file_exists`` ...) are bound methods of
  ``huggingface_hub.hf_api.api = HfApi()``, built at import with its ``.endpoint`` frozen.
* ``build_hf_headers`` -> ``detect_agent()`` GETs ``{constants.ENDPOINT}/api/agent-harnesses``
  once per process when not offline (3 s timeout) and caches it at
  ``constants.AGENT_HARNESSES_PATH``.

The ``fake_hub`` fixture therefore sets, via ``monkeypatch`` (undone after the test):
``constants.HF_HUB_OFFLINE = False``; ``constants.ENDPOINT = url``;
``constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"``;
``hf_api.api.endpoint = url``; ``constants.HF_HUB_CACHE = tmp_path/"hf_cache"``;
``constants.AGENT_HARNESSES_PATH = tmp_path/"agent_harnesses.json"``; env vars
``HF_HUB_OFFLINE=0``, ``TRANSFORMERS_OFFLINE=0``, ``HF_ENDPOINT=url`` (these only matter for
subprocesses or libraries imported later). With it, both ``endpoint=fake_hub.url`` and the
default endpoint work. Libraries with their own offline flags (transformers, sentence-transformers)
are not touched.

Usage: ``from hubserver import fake_hub`` in a test module (tests/ has no ``__init__.py``, so
pytest's default "prepend" import mode puts tests/ on ``sys.path``), then
``def test_x(fake_hub): HfApi(endpoint=fake_hub.url, token="x").create_repo("me/repo")``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

_SHA = re.compile(r"^[0-9a-f]{40}$")
_DATE = "2024-01-01T00:00:00.000Z"
Response = tuple[int, dict[str, str], bytes]


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: what the Hub reports as ``oid``/``ETag`` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    """One commit: its id, message and a full snapshot of the repo's files."""

    oid: str
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    """A repo with a linear history; ``commits[-1]`` is the head of ``main``."""

    repo_id: str
    repo_type: str = "model"
    private: bool = False
    commits: list[Commit] = field(default_factory=list)

    def resolve(self, rev: str) -> Commit | None:
        """The commit for ``main`` or a full commit sha, else None."""
        if rev == "main":
            return self.commits[-1]
        return next((c for c in self.commits if _SHA.match(rev) and c.oid == rev), None)


class HubError(Exception):
    """Answered as ``status`` + ``X-Error-Code``/``X-Error-Message`` headers + JSON body."""

    def __init__(
        self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


class FakeHub:
    """An in-memory Hub served by a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def calls(self, method: str, pattern: str) -> list[str]:
        """Logged paths of ``method`` requests matching regex ``pattern`` (``re.search``)."""
        return [p for m, p in self.requests if m == method and re.search(pattern, p)]

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        """The stored repo (KeyError if unknown)."""
        return self.repos[(repo_type, repo_id)]

    # -- request handling (called from handler threads, serialized by the lock) -----------------
    def handle(self, method: str, path: str, body: bytes) -> Response:
        """Log and route one request."""
        with self._lock:
            self.requests.append((method, path))
            try:
                return self._route(method, path, body)
            except HubError as e:
                headers = {"X-Error-Message": e.message, **e.headers}
                if e.code:
                    headers["X-Error-Code"] = e.code
                return _json(e.status, {"error": e.message}, headers)

    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return repo

    def _get_commit(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return commit

    def _route(self, method: str, path: str, body: bytes) -> Response:
        if path == "/api/agent-harnesses":
            return _json(200, {"standardEnvVars": [], "harnesses": {}})
        if path == "/api/validate-yaml" and method == "POST":
            return _json(200, {"errors": [], "warnings": []})
        if path == "/api/whoami-v2":
            return _json(200, {"type": "user", "name": "tester", "fullname": "T", "orgs": []})
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if m := re.match(r"^/api/(models|datasets)/(.+)$", path):
            return self._api(method, m.group(1)[:-1], m.group(2).split("/"), body)
        m = re.match(r"^/(?:(datasets)/)?(.+?)/resolve/([^/]+)/(.+)$", path)
        if m and method in ("GET", "HEAD"):
            repo = self._get_repo("dataset" if m.group(1) else "model", m.group(2))
            return self._resolve(repo, unquote(m.group(3)), unquote(m.group(4)))
        raise HubError(404, None, f"Not found: {method} {path}")

    def _create_repo(self, payload: dict[str, Any]) -> Response:
        # like the Hub, a repo created without namespace lands in the caller's ("tester") namespace
        repo_id = f"{payload.get('organization') or 'tester'}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        url = f"{self.url}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return _json(409, {"error": "You already created this repo", "url": url})
        initial = Commit(_commit_id(repo_id, "", "initial commit", {}), "initial commit", {})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.repos[(repo_type, repo_id)] = Repo(repo_id, repo_type, private, [initial])
        return _json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _api(self, method: str, repo_type: str, parts: list[str], body: bytes) -> Response:
        # repo id is "ns/name", or a canonical single-segment "name"
        ops = {"revision", "tree", "preupload", "commit"}
        n = 2 if len(parts) >= 2 and parts[1] not in ops else 1
        repo = self._get_repo(repo_type, "/".join(parts[:n]))
        op, rev = (parts[n], unquote(parts[n + 1])) if len(parts) > n + 1 else (None, "main")
        if op in (None, "revision") and method == "GET":
            return _json(200, self._info(repo, self._get_commit(repo, rev)))
        if op == "tree" and method == "GET":
            under = unquote("/".join(parts[n + 2 :]))
            return _json(200, _tree(self._get_commit(repo, rev).files, under))
        if op == "preupload" and method == "POST":
            remote = self._get_commit(repo, rev).files
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(remote[f["path"]]) if f["path"] in remote else None,
                }
                for f in json.loads(body)["files"]
            ]
            return _json(200, {"files": modes})
        if op == "commit" and method == "POST":
            return self._commit(repo, rev, body)
        raise HubError(404, None, f"Unsupported: {method} {'/'.join(parts)}")

    def _info(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        siblings = [
            {"rfilename": p, "size": len(d), "blobId": git_blob_sha1(d)}
            for p, d in sorted(commit.files.items())
        ]
        author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        return {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": author,
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "lastModified": _DATE,
            "createdAt": _DATE,
            "tags": [],
            "siblings": siblings,
        }

    def _commit(self, repo: Repo, rev: str, body: bytes) -> Response:
        if rev != "main":
            raise HubError(400, None, "The fake hub only commits to 'main'")
        head = repo.commits[-1]
        files, message = dict(head.files), "commit"
        for line in filter(None, (raw.strip() for raw in body.splitlines())):
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary") or message
                parent = value.get("parentCommit")
                if parent and not head.oid.startswith(parent):
                    raise HubError(412, None, "parentCommit is not the head of main")
            elif key == "file":
                raw = value["content"]
                b64 = value.get("encoding") == "base64"
                files[value["path"]] = base64.b64decode(raw) if b64 else raw.encode()
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "EntryNotFound", "A file with this name doesn't exist")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: d for p, d in files.items() if not p.startswith(prefix)}
            else:  # lfsFile / copies: never needed, since preupload always answers "regular"
                raise HubError(400, None, f"Unsupported commit operation: {key}")
        commit = Commit(_commit_id(repo.repo_id, head.oid, message, files), message, files)
        repo.commits.append(commit)
        prefix = "datasets/" if repo.repo_type == "dataset" else ""
        url = f"{self.url}/{prefix}{repo.repo_id}/commit/{commit.oid}"
        payload = {"success": True, "commitOid": commit.oid, "commitUrl": url}
        return _json(200, {**payload, "pullRequestUrl": None})

    def _resolve(self, repo: Repo, rev: str, path: str) -> Response:
        commit = self._get_commit(repo, rev)
        if path not in commit.files:
            extra = {"X-Repo-Commit": commit.oid}  # lets the client cache the non-existence
            raise HubError(404, "EntryNotFound", f"{path} does not exist at {rev}", extra)
        data = commit.files[path]
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_sha1(data)}"',
            "Content-Type": "application/octet-stream",
        }
        return 200, headers, data


def _commit_id(repo_id: str, parent: str, message: str, files: dict[str, bytes]) -> str:
    h = hashlib.sha1(f"{repo_id}\0{parent}\0{message}\0".encode())
    for p in sorted(files):
        h.update(f"{p}\0{git_blob_sha1(files[p])}\0".encode())
    return h.hexdigest()


def _tree(files: dict[str, bytes], under: str) -> list[dict[str, Any]]:
    """Recursive listing (folders + files) below ``under``; ``recursive=False`` is ignored."""
    prefix = under.strip("/") + "/" if under.strip("/") else ""
    paths = sorted(p for p in files if p.startswith(prefix))
    if prefix and not paths:
        raise HubError(404, "EntryNotFound", f"{under} does not exist")
    folders = {str(parent) for p in paths for parent in PurePosixPath(p).parents}
    folders -= {".", *PurePosixPath(prefix or ".").parents, prefix.rstrip("/")}
    out: list[dict[str, Any]] = [
        {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()}
        for d in sorted(folders)
    ]
    out += [
        {"type": "file", "path": p, "size": len(files[p]), "oid": git_blob_sha1(files[p])}
        for p in paths
    ]
    return out


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after close()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = hub.handle(self.command, urlsplit(self.path).path, body)
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(payload))}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
            pass

    return Handler


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A started FakeHub that the real huggingface_hub client reaches (see module docstring)."""
    from huggingface_hub import constants, hf_api

    with FakeHub() as hub:
        template = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(hf_api.api, "endpoint", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
        harnesses = str(tmp_path / "agent_harnesses.json")
        monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", harnesses)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub
