"""What a model-hub repository holds, and which of its files `vdr model pull` takes.

The hub's tree endpoint (`GET /api/models/OWNER/REPO/tree/REVISION`, the
same one huggingface_hub's `list_repo_tree` reads) answers a JSON list of
entries `{"type": "file", "path", "size", "oid", "lfs": {"oid": SHA256,
"size"}}`; LFS entries carry the file's SHA-256.  Publishers name their
quantisations and projectors in many ways (`Qwen3VL-8B-Instruct-Q4_K_M.gguf`,
`model.Q4_K_M.gguf`, `mmproj-model-f16.gguf`), so files are chosen by
pattern, not by a fixed name.  Before a multi-GB transfer the first bytes of
each file are fetched with a Range request to check the GGUF magic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from vdr_cli.models.download import DownloadError, hub_url

DEFAULT_QUANT = "Q4_K_M"
# Projector precisions, best first: F16 is what llama.cpp's converter writes by default.
_MMPROJ_ORDER = ("f16", "bf16", "q8_0", "f32")
_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.I)


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    sha256: str | None  # the LFS object id, when the hub gives one

    @property
    def is_gguf(self) -> bool:
        return self.path.lower().endswith(".gguf")

    @property
    def is_mmproj(self) -> bool:
        name = self.path.rsplit("/", 1)[-1].lower()
        return self.is_gguf and ("mmproj" in name or "projector" in name)


def parse_ref(text: str) -> tuple[str, str | None]:
    """`hf:OWNER/REPO[:QUANT]` → (OWNER/REPO, QUANT or None)."""
    body = text[len("hf:"):] if text.startswith("hf:") else text
    repo, _, quant = body.partition(":")
    parts = repo.split("/")
    if len(parts) != 2 or not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p) for p in parts):
        from vdr_cli.errors import UsageError

        raise UsageError(f"{text!r} is not a hub repository", hint="write hf:OWNER/REPO or hf:OWNER/REPO:QUANT, e.g. hf:Qwen/Qwen3-VL-8B-Instruct-GGUF:Q8_0")
    return repo, (quant or None)


def _headers(token: str | None) -> dict[str, str]:
    from vdr_cli.net.client import USER_AGENT

    headers = {"User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def list_files(hub: str, repo: str, revision: str = "main", token: str | None = None, timeout: float = 30.0) -> list[RepoFile]:
    """Every file of the repository at `revision` (following the hub's pagination)."""
    import httpx

    url: str | None = f"{hub.rstrip('/')}/api/models/{repo}/tree/{quote(revision, safe='')}?recursive=true"
    out: list[RepoFile] = []
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, headers=_headers(token)) as client:
            while url:
                response = client.get(url)
                if response.status_code in (401, 403, 404):
                    # The hub answers 401 for a repository that does not exist as for a private one.
                    raise DownloadError(
                        f"{repo}: no such repository on {hub} (HTTP {response.status_code})",
                        hint=("check the name on the hub's website; a gated or private repository needs HF_TOKEN"
                              if not token else "check the name, and that your HF_TOKEN may read this repository"))
                if response.status_code >= 400:
                    raise DownloadError(f"{repo}: the hub answered HTTP {response.status_code} listing its files")
                try:
                    entries = response.json()
                except ValueError:
                    raise DownloadError(f"{repo}: the hub's file listing is not JSON (is {hub} a model hub?)") from None
                if not isinstance(entries, list):
                    raise DownloadError(f"{repo}: unexpected file listing from {hub}")
                for e in entries:
                    if isinstance(e, dict) and e.get("type") == "file" and isinstance(e.get("path"), str):
                        lfs = e.get("lfs") if isinstance(e.get("lfs"), dict) else {}
                        out.append(RepoFile(path=e["path"], size=int(lfs.get("size") or e.get("size") or 0),
                                            sha256=lfs.get("oid") if isinstance(lfs.get("oid"), str) else None))
                url = response.links.get("next", {}).get("url")
    except httpx.HTTPError as exc:
        raise DownloadError(f"cannot reach {hub} to list {repo} ({type(exc).__name__})",
                            hint="offline? download the files elsewhere and register them: vdr model add NAME --gguf FILE --mmproj FILE") from None
    return out


def quant_of(name: str) -> str | None:
    """The quantisation a file name announces (Q4_K_M, IQ4_XS, Q8_0, F16, BF16…), upper-cased."""
    base = name.rsplit("/", 1)[-1]
    match = re.search(r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32)(?![A-Za-z0-9])", base.removesuffix(".gguf"), re.I)
    return match.group(1).upper() if match else None


def _menu(files: list[RepoFile]) -> str:
    quants = sorted({q for f in files if f.is_gguf and not f.is_mmproj and (q := quant_of(f.path))})
    return ", ".join(quants) if quants else ", ".join(f.path for f in files if f.is_gguf)[:200] or "no GGUF files"


def choose(files: list[RepoFile], repo: str, quant: str | None = None, gguf: str | None = None,
           mmproj: str | None = None) -> tuple[RepoFile, RepoFile | None]:
    """The model file and its projector, by name when given, else by quantisation and pattern."""
    by_path = {f.path: f for f in files}
    models = [f for f in files if f.is_gguf and not f.is_mmproj]
    if gguf is not None:
        model = by_path.get(gguf)
        if model is None:
            raise DownloadError(f"{repo} has no file {gguf}", hint=f"its model files: {_menu(files)}")
    else:
        if not models:
            raise DownloadError(f"{repo} holds no GGUF model file",
                                hint="it may publish safetensors only: convert with llama.cpp's convert_hf_to_gguf.py, then `vdr model add`")
        want = (quant or DEFAULT_QUANT).upper()
        matching = [f for f in models if quant_of(f.path) == want]
        if not matching and quant is None and len(models) == 1:
            matching = models
        if not matching:
            raise DownloadError(f"{repo} has no {want} model file", hint=f"quantisations there: {_menu(files)}; pull hf:{repo}:QUANT")
        whole = [f for f in matching if not _SPLIT.search(f.path)]
        if not whole:
            raise DownloadError(f"{repo}: the {want} model is split into parts, which vdr does not join",
                                hint="merge them with llama.cpp's llama-gguf-split --merge, then `vdr model add`")
        model = min(whole, key=lambda f: (f.path.count("/"), f.path))
    if mmproj is not None:
        projector = by_path.get(mmproj)
        if projector is None:
            raise DownloadError(f"{repo} has no file {mmproj}",
                                hint="projectors there: " + (", ".join(f.path for f in files if f.is_mmproj) or "none"))
        return model, projector
    projectors = [f for f in files if f.is_mmproj]

    def rank(f: RepoFile) -> tuple[int, str]:
        q = (quant_of(f.path) or "").lower()
        return (_MMPROJ_ORDER.index(q) if q in _MMPROJ_ORDER else len(_MMPROJ_ORDER), f.path)

    return model, (min(projectors, key=rank) if projectors else None)


def check_magic(hub: str, repo: str, revision: str, filename: str, token: str | None = None, timeout: float = 30.0) -> None:
    """Fetch the file's first bytes (a Range request) and check that they are GGUF's magic."""
    import httpx

    from vdr_cli.models.gguf_header import MAGIC

    url = hub_url(hub, repo, revision, filename)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, headers=_headers(token)) as client:
            with client.stream("GET", url, headers={"Range": "bytes=0-3"}) as response:
                if response.status_code >= 400:
                    raise DownloadError(f"{repo}/{filename}: HTTP {response.status_code} before the download started",
                                        hint="set HF_TOKEN if the repository is gated" if response.status_code in (401, 403) else None)
                head = b""
                for chunk in response.iter_bytes():
                    head += chunk
                    if len(head) >= 4:
                        break
    except httpx.HTTPError as exc:
        raise DownloadError(f"cannot reach {hub} for {filename} ({type(exc).__name__})") from None
    if head[:4] != MAGIC:
        raise DownloadError(f"{repo}/{filename}: not a GGUF file (its first bytes are {head[:4]!r}); nothing was downloaded")
