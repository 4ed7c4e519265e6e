"""The SQLite cache: hits, misses, expiry, namespaces, concurrent writers, `vdr cache`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from vdr_cli.cache import Cache, cache_key, default_path, open_cache


def test_put_get_roundtrip(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3", ttl=60)
    assert cache.get("browse", {"url": "https://a/"}) is None
    assert cache.put("browse", {"url": "https://a/"}, {"type": "page", "text": "hé"})
    assert cache.get("browse", {"url": "https://a/"}) == {"type": "page", "text": "hé"}
    assert cache.get("search", {"url": "https://a/"}) is None  # namespaces don't mix


def test_key_is_canonical() -> None:
    assert cache_key("ns", {"a": 1, "b": [1, 2]}) == cache_key("ns", {"b": [1, 2], "a": 1})
    assert cache_key("ns", {"a": 1}) != cache_key("other", {"a": 1})
    assert len(cache_key("ns", "x")) == 64


def test_ttl_expiry(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3", ttl=60)
    cache.put("ns", "k", [1], ttl=1)
    assert cache.get("ns", "k") == [1]
    time.sleep(1.1)
    assert cache.get("ns", "k") is None
    assert not cache.put("ns", "never", [1], ttl=0)  # ttl 0: not stored
    assert cache.get("ns", "never") is None


def test_default_ttl_from_config(monkeypatch) -> None:
    monkeypatch.setenv("VDR_CACHE_TTL", "123")
    assert Cache().ttl == 123
    assert Cache().path == default_path()


def test_stats_and_clear(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3", ttl=60)
    for i in range(3):
        cache.put("browse", i, {"i": i})
    cache.put("search:serper", "q", {"hits": []})
    before = cache.stats()
    cache.get("browse", 0)
    cache.get("browse", 99)
    stats = cache.stats()
    assert stats["entries"] == 4 and stats["namespaces"] == {"browse": 3, "search:serper": 1}
    assert stats["bytes"] > 0 and stats["file_bytes"] > 0
    assert stats["hits"] == before["hits"] + 1 and stats["misses"] == before["misses"] + 1
    assert cache.clear("browse") == 3
    assert cache.stats()["namespaces"] == {"search:serper": 1}
    assert cache.clear() == 1 and cache.stats()["entries"] == 0


def test_threads_share_a_cache(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3", ttl=60)

    def work(t: int) -> None:
        for i in range(50):
            cache.put("ns", [t, i], {"t": t, "i": i})
            assert cache.get("ns", [t, i]) == {"t": t, "i": i}

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert cache.stats()["entries"] == 200


WRITER = """
import sys
import time
from pathlib import Path
from vdr_cli.cache import Cache
c = Cache(Path(sys.argv[1]), ttl=600)
who = sys.argv[2]
go = Path(sys.argv[1] + ".go")
while not go.exists():  # start together, so the writes really overlap
    time.sleep(0.005)
for i in range(150):
    assert c.put("ns", [who, i], {"who": who, "i": i, "pad": "x" * 500})
    assert c.get("ns", [who, i])["i"] == i
print(c.stats()["errors"])
"""


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    Cache(path).stats()  # create the file and WAL mode first, as a real first run would
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), who], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for who in ("a", "b")]
    time.sleep(0.3)
    Path(f"{path}.go").touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-500:] for o in outs]
    assert [o[0].strip() for o in outs] == [b"0", b"0"]
    cache = Cache(path)
    assert cache.stats()["entries"] == 300
    assert cache.get("ns", ["a", 149])["who"] == "a" and cache.get("ns", ["b", 0])["who"] == "b"


def test_corrupt_file_misses_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    cache = Cache(path, ttl=60)
    assert cache.get("ns", "k") is None
    assert cache.put("ns", "k", 1) is False


def test_open_cache_respects_settings(monkeypatch) -> None:
    assert open_cache() is not None
    assert open_cache(False) is None
    monkeypatch.setenv("VDR_CACHE_ENABLED", "false")
    assert open_cache() is None


def test_cache_command(vdr, vdr_home: Path) -> None:
    path = vdr("cache", "path")
    assert path.returncode == 0 and path.stdout.decode().strip() == str(vdr_home / "cache" / "cache.sqlite3")
    cache = Cache(vdr_home / "cache" / "cache.sqlite3", ttl=60)
    cache.put("browse", "x", {"a": 1})
    cache.put("search:brave", "y", {"b": 2})
    cache.close()
    stats = vdr("cache", "stats")  # piped: JSON
    assert stats.returncode == 0
    data = json.loads(stats.stdout)
    assert data["entries"] == 2 and data["namespaces"] == {"browse": 1, "search:brave": 1}
    cleared = vdr("cache", "clear", "--namespace", "browse")
    assert cleared.returncode == 0 and "removed 1 entry" in cleared.stderr.decode()
    assert json.loads(vdr("cache", "stats").stdout)["entries"] == 1
    assert vdr("cache", "clear").returncode == 0
    assert json.loads(vdr("cache", "stats", "--json").stdout)["entries"] == 0
