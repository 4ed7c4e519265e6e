"""The disk cache for network results: one SQLite file (WAL) in the cache folder.

Keys are the sha256 of a canonical JSON of (namespace, request): the namespace names the
tool or provider ("browse", "search:serper"), the request is whatever the caller made
canonical (a normalised URL, a query with its options). Values are JSON.

What gets stored is the caller's decision, and the rule is: only successful, non-empty
results. An error, an empty page or an anti-bot challenge page must never be cached, or a
transient failure would be replayed for a week. `put` stores what it is given.

Several processes and threads may share the file: WAL lets readers run beside a writer,
`busy_timeout` makes a second writer wait instead of failing, and each thread gets its own
connection. A broken or locked cache never breaks a command: reads miss, writes are
skipped, and the failure is counted in `stats()["errors"]`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from vdr_cli.paths import cache_dir

FILENAME = "cache.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_namespace ON entries(namespace);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires);
"""

# Hits and misses of this process, for `stats()` (all Cache objects together).
_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


_setup_lock = threading.Lock()
_ready: set[str] = set()


def _retry_locked(fn: Any, tries: int = 8) -> Any:
    """Run a statement, retrying briefly while SQLite reports the file locked or busy."""
    for attempt in range(tries):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if attempt + 1 == tries or not any(w in str(exc).lower() for w in ("locked", "busy")):
                raise
            time.sleep(0.01 * 2**attempt)
    return None


def default_path() -> Path:
    return cache_dir() / FILENAME


def cache_key(namespace: str, key_obj: Any) -> str:
    """sha256 of the canonical JSON of (namespace, request): same request, same key, any process."""
    canonical = json.dumps([namespace, key_obj], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Cache:
    """get/put JSON values by (namespace, request) with a time to live."""

    def __init__(self, path: Path | None = None, ttl: int | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._ttl = ttl
        self._local = threading.local()
        self._puts = 0

    @property
    def ttl(self) -> int:
        if self._ttl is None:
            from vdr_cli import config

            self._ttl = int(config.current().get("cache.ttl"))
        return self._ttl

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable enough for a cache
            # Switching to WAL and creating the schema take locks that SQLite
            # may refuse at once (no busy wait) when threads race to set up:
            # do it once per file per process, retrying what another process holds.
            with _setup_lock:
                if str(self.path) not in _ready:
                    _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                    _retry_locked(lambda: conn.executescript(_SCHEMA))
                    _ready.add(str(self.path))
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's Cache goes away)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def get(self, namespace: str, key_obj: Any) -> Any | None:
        """The cached value, or None on a miss (absent, expired, or an unreadable cache)."""
        key = cache_key(namespace, key_obj)
        try:
            row = self._conn().execute("SELECT value, expires FROM entries WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            _count("errors")
            return None
        if row is None or row[1] <= time.time():
            _count("misses")
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            _count("errors")
            return None
        _count("hits")
        return value

    def put(self, namespace: str, key_obj: Any, value_json: Any, ttl: int | None = None) -> bool:
        """Store a JSON-able value for `ttl` seconds (default `cache.ttl`); False if not stored.

        Callers store only successful, non-empty results (see the module docstring).
        """
        ttl = self.ttl if ttl is None else ttl
        if ttl <= 0:
            return False
        text = json.dumps(value_json, ensure_ascii=False, separators=(",", ":"), default=str)
        now = time.time()
        try:
            conn = self._conn()
            _retry_locked(lambda: conn.execute(
                "INSERT OR REPLACE INTO entries (key, namespace, value, created, expires, size) VALUES (?, ?, ?, ?, ?, ?)",
                (cache_key(namespace, key_obj), namespace, text, now, now + ttl, len(text.encode("utf-8"))),
            ))
            self._puts += 1
            if self._puts % 200 == 1:  # expired rows go now and then, not on every write
                conn.execute("DELETE FROM entries WHERE expires <= ?", (now,))
        except sqlite3.Error:
            _count("errors")
            return False
        return True

    def clear(self, namespace: str | None = None) -> int:
        """Remove every entry (or one namespace's); returns how many went.

        A corrupt database file is removed whole when everything is cleared: this is
        the command people run to fix it (`removed_corrupt` says it happened)."""
        self.removed_corrupt = False
        try:
            conn = self._conn()
            if namespace is None:
                n = conn.execute("DELETE FROM entries").rowcount
            else:
                n = conn.execute("DELETE FROM entries WHERE namespace = ?", (namespace,)).rowcount
        except sqlite3.DatabaseError as exc:
            if namespace is not None or isinstance(exc, sqlite3.OperationalError):
                raise self._corrupt(exc) from None
            self.close()
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                p.unlink(missing_ok=True)
            with _setup_lock:
                _ready.discard(str(self.path))
            self.removed_corrupt = True
            return 0
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if namespace is None:
                conn.execute("VACUUM")  # give the disk space back
        except sqlite3.OperationalError:
            pass  # another process is reading: the space comes back later
        return max(n, 0)

    def _corrupt(self, exc: Exception) -> Exception:
        from vdr_cli.errors import InputError

        return InputError(f"{self.path}: the cache database cannot be read ({exc})",
                          hint="`vdr cache clear` removes it (the cache fills again as you go)")

    def stats(self) -> dict[str, Any]:
        """entries, bytes (values), file_bytes (db and WAL), per-namespace counts, this process's hits/misses."""
        now = time.time()
        try:
            conn = self._conn()
            rows = conn.execute(
                "SELECT namespace, COUNT(*), COALESCE(SUM(size), 0), SUM(expires <= ?) FROM entries GROUP BY namespace ORDER BY namespace",
                (now,),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None
        file_bytes = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        with _counts_lock:
            counts = dict(_counts)
        return {
            "path": str(self.path),
            "entries": sum(r[1] for r in rows),
            "expired": sum(int(r[3] or 0) for r in rows),
            "bytes": sum(r[2] for r in rows),
            "file_bytes": file_bytes,
            "namespaces": {r[0]: r[1] for r in rows},
            "hits": counts.get("hits", 0),
            "misses": counts.get("misses", 0),
            "errors": counts.get("errors", 0),
        }


def _count(what: str) -> None:
    with _counts_lock:
        _counts[what] += 1


def open_cache(enabled: bool | None = None) -> Cache | None:
    """The configured cache, or None when `cache.enabled` (or the flag) says no."""
    from vdr_cli import config

    if not config.current().get("cache.enabled", enabled):
        return None
    return Cache()
