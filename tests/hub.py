"""A loopback model hub answering as the real one does, for `vdr model pull` tests.

Files are served at /OWNER/REPO/resolve/REV/FILE with Range support and the
LFS object's SHA-256 as X-Linked-Etag (as the hub's resolve URLs send it); the
file listing at /api/models/OWNER/REPO/tree/REV?recursive=true is a JSON list
of {"type": "file", "oid", "size", "path", "lfs": {"oid", "size",
"pointerSize"}} entries, the shape of the hub's tree endpoint
(huggingface_hub's list_repo_tree reads the same fields).  A repository that
does not exist answers 401 with the hub's error body, as the real hub does
for unauthenticated requests.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class Hub:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # "/OWNER/REPO/resolve/REV/FILE" → bytes
        self.cut_after: dict[str, int] = {}  # path → bytes sent before dropping the connection (once)
        self.bad_etag: set[str] = set()
        self.requests: list[dict] = []
        self.page_size = 1000  # entries per listing page (the Link header gives the next)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                hub.requests.append({"path": self.path, "range": self.headers.get("Range"), "auth": self.headers.get("Authorization")})
                parts = urlsplit(self.path)
                if parts.path.startswith("/api/models/"):
                    return self._tree(unquote(parts.path), parts.query)
                data = hub.files.get(unquote(parts.path))
                if data is None:
                    return self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound"})
                start = 0
                rng = self.headers.get("Range")
                headers = {"X-Linked-Etag": '"' + hashlib.sha256(b"tampered" if self.path in hub.bad_etag else data).hexdigest() + '"',
                           "Accept-Ranges": "bytes"}
                if rng:
                    first, _, last = rng.split("=")[1].partition("-")
                    start = int(first)
                    end = int(last) if last else len(data) - 1
                    if start >= len(data):
                        return self._send(416)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                    body = data[start:end + 1]
                else:
                    self.send_response(200)
                    body = data
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = hub.cut_after.get(self.path)
                if cut is not None and len(body) > cut:  # a transfer, not the 4-byte magic probe
                    del hub.cut_after[self.path]
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # drop mid-transfer
                    return
                self.wfile.write(body)

            def _tree(self, path: str, query: str) -> None:
                # /api/models/OWNER/REPO/tree/REV
                rest = path[len("/api/models/"):]
                repo, _, rev = rest.partition("/tree/")
                prefix = f"/{repo}/resolve/{rev}/"
                names = sorted(p[len(prefix):] for p in hub.files if p.startswith(prefix))
                if not names:
                    body = json.dumps({"error": "Repository not found"}).encode()
                    return self._send(401, body, {"Content-Type": "application/json", "X-Error-Code": "RepoNotFound"})
                offset = int(dict(q.split("=") for q in query.split("&") if "=" in q).get("cursor", 0))
                page = names[offset:offset + hub.page_size]
                entries = []
                for name in page:
                    data = hub.files[prefix + name]
                    sha = hashlib.sha256(data).hexdigest()
                    entry = {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": name}
                    if name.endswith(".gguf"):
                        entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
                    entries.append(entry)
                headers = {"Content-Type": "application/json"}
                if offset + hub.page_size < len(names):
                    headers["Link"] = f'<{hub.url}{path}?recursive=true&cursor={offset + hub.page_size}>; rel="next"'
                self._send(200, json.dumps(entries).encode(), headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, repo: str, files: dict[str, bytes], revision: str = "main") -> None:
        for name, data in files.items():
            self.files[f"/{repo}/resolve/{revision}/{name}"] = data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
