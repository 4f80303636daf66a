"""A local HTTP server that plays the Hugging Face hub for one model repo, for the tests of a
first download (the real hub cannot be reached from these machines).

It serves the files of a directory (a tiny demo model built offline) as `repo` at commit `SHA`,
through the endpoints huggingface_hub 2.x calls when HF_ENDPOINT points here (read from its
hf_api.py, file_download.py and _snapshot_download.py):

  GET  /api/models/{repo}                 model_info: the probe before a download
  GET  /api/models/{repo}/revision/{rev}  repo_info: snapshot_download resolves "main" to SHA
  GET  /api/models/{repo}/tree/{rev}      list_repo_tree: names, sizes, blob ids (one page, so
                                          no Link header)
  HEAD /{repo}/resolve/{rev}/{file}       file metadata: X-Repo-Commit, ETag, Content-Length
  GET  /{repo}/resolve/{rev}/{file}       the file itself

No X-Xet-* headers are sent, so the client takes its plain HTTP path. Anything else answers
404. Every request is recorded as (method, path without the query); a GET of a file named in
`held` waits for `release` to be set first, so a test can look at a download half done.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = "arena-test/tiny-llava"
SHA = "0123456789abcdef0123456789abcdef01234567"
HOLD_S = 60  # a held file is sent anyway after this long, so a broken test cannot hang


def repo_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


class FakeHub(BaseHTTPRequestHandler):
    """The server (tests.conftest.serve_http) carries files ({name: bytes}), requests (a list),
    held (names) and release (a threading.Event)."""

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.server.requests.append((self.command, path))
        api = f"/api/models/{REPO}"
        if body and path in (api, f"{api}/revision/main", f"{api}/revision/{SHA}"):
            return self._json({"id": REPO, "modelId": REPO, "sha": SHA, "private": False,
                               "siblings": [{"rfilename": n} for n in self.server.files]})  # fmt: skip
        if body and path in (f"{api}/tree/main", f"{api}/tree/{SHA}"):
            return self._json([{"type": "file", "path": n, "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest()}
                               for n, data in self.server.files.items()])  # fmt: skip
        for rev in ("main", SHA):
            prefix = f"/{REPO}/resolve/{rev}/"
            name = path[len(prefix) :] if path.startswith(prefix) else None
            if name in self.server.files:
                return self._file(name, body)
        self.send_error(404)

    def _json(self, data) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _file(self, name: str, body: bool) -> None:
        data = self.server.files[name]
        if body and name in self.server.held:
            self.server.release.wait(HOLD_S)
        self.send_response(200)
        self.send_header("X-Repo-Commit", SHA)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


def hub_attributes(directory: Path, held: tuple[str, ...] = ()) -> dict:
    """What serve_http(FakeHub, **...) needs to serve `directory` as REPO."""
    return {
        "files": repo_files(directory),
        "requests": [],
        "held": set(held),
        "release": threading.Event(),
    }
