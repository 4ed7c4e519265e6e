"""Running the model's Python code in a jail (the PythonInterpreter tool).

`run_python(code)` starts `sandbox_launch.py` in a separate process with a
scrubbed environment; the launcher builds the jail (Linux namespaces, a new
root with no $HOME, no network, rlimits: see its docstring) and runs the code
there.  This side enforces what a jailed process cannot be trusted with: the
wall-clock limit and the output cap (it reads the pipes and kills the whole
process group, and the launcher's death takes the jail's pid namespace with it).

`availability()` says whether the jail can be built here, and how: only
Linux namespaces are used; elsewhere (macOS, Windows) there is no jail and the
tool is left out.  Nothing here imports agent or models code.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("sandbox_launch.py")
SETUP_FAILED = 125
TIMEOUT_S = 50  # the reference's PythonInterpreterTool.timeout
# An unused uid for code run by root: no file on the host is its, and its
# process count (RLIMIT_NPROC) is its own.  One per run, so parallel runs are apart.
JAIL_UID_BASE = 2_100_000_000


class SandboxError(Exception):
    """The jail could not be built or run (not an error of the code)."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = TIMEOUT_S
    cpu_s: int = TIMEOUT_S
    memory_bytes: int = 1 << 30  # address space per process (no cgroup: the total is processes x this)
    processes: int = 16  # processes and threads of the jail's uid
    output_bytes: int = 100_000  # kept per stream; more and the code is stopped
    tmp_bytes: int = 64 << 20  # the writable folder (a tmpfs) and the largest file


@dataclass
class PythonRun:
    """What a run produced, before it is formatted for the model."""

    stdout: str = ""
    stderr: str = ""
    variables: str | None = None  # repr of the variables the code left (reference's [Variables])
    timed_out: bool = False
    truncated: bool = False  # output passed Limits.output_bytes; the code was stopped
    signal: int | None = None  # the code was killed by this signal (CPU, memory or process limit)
    exit_code: int | None = None
    ms: float = 0.0


@dataclass(frozen=True)
class Availability:
    ok: bool
    mechanism: str  # how code is confined, or why it cannot be
    reason: str = ""


def _binds() -> list[str]:
    """Read-only paths the jail shows: the system's program folders and this interpreter's own."""
    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
             "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives"]
    exe = Path(sys.executable)
    py = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(exe.parent),
          str(exe.resolve().parent.parent), sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib"),
          sysconfig.get_paths().get("stdlib")]
    # Site folders only: an editable install's source tree (the user's files) stays out.
    py += [p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)]
    out: list[str] = []
    for p in paths + [os.path.realpath(x) for x in py if x]:
        if os.path.lexists(p) and not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out = [q for q in out if not q.startswith(p.rstrip("/") + "/")] + [p]
    return out


def _env() -> dict[str, str]:
    # Nothing of the caller's environment: no keys, no proxies, no HOME.
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MPLBACKEND": "Agg"}


def _config(limits: Limits, root: str, result_fd: int) -> str:
    return json.dumps({"root": root, "result_fd": result_fd, "binds": _binds(), "python": sys.executable, "env": _env(),
                       "cpu_s": max(1, int(limits.cpu_s)), "memory_bytes": int(limits.memory_bytes),
                       "processes": int(limits.processes), "tmp_bytes": int(limits.tmp_bytes),
                       "uid": _jail_uid()})


def _mapped(ident: int, map_file: str) -> bool:
    """Whether `ident` exists in this user namespace (a container may map only a few ids)."""
    try:
        rows = [line.split() for line in Path(map_file).read_text().splitlines()]
    except OSError:
        return True  # no user namespaces at all: every id exists
    return any(int(first) <= ident < int(first) + int(count) for first, _, count in rows)


def _jail_uid() -> int:
    """The uid (and gid) root runs the code as: an unused one, else nobody where only few ids are mapped."""
    for ident in (JAIL_UID_BASE + os.getpid() % 1_000_000, 65534):
        if _mapped(ident, "/proc/self/uid_map") and _mapped(ident, "/proc/self/gid_map"):
            return ident
    return JAIL_UID_BASE  # unmapped: the jail cannot be built, and the tool is left out


def run_python(code: str, limits: Limits = Limits()) -> PythonRun:
    """Run `code` in the jail; raises SandboxError when the jail cannot be built."""
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"no sandbox on {sys.platform}: vdr confines code with Linux namespaces only")
    root = tempfile.mkdtemp(prefix="vdr-jail-")  # an empty mount point: the jail's root tmpfs goes over it
    read_fd, write_fd = os.pipe()
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", str(LAUNCHER), _config(limits, root, write_fd)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_env(), cwd=root, pass_fds=(write_fd,), start_new_session=True)
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        os.rmdir(root)
        raise SandboxError(f"cannot start the sandbox: {exc}") from None
    os.close(write_fd)
    try:
        run = _collect(proc, read_fd, code.encode("utf-8", "surrogatepass"), limits, t0)
    finally:
        _kill(proc)
        os.close(read_fd)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        try:
            os.rmdir(root)
        except OSError:
            pass
    return run


def _collect(proc: subprocess.Popen, result_fd: int, code: bytes, limits: Limits, t0: float) -> PythonRun:
    assert proc.stdin and proc.stdout and proc.stderr
    try:
        proc.stdin.write(code)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    bufs: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray(), "result": bytearray()}
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    sel.register(result_fd, selectors.EVENT_READ, "result")
    deadline = t0 + limits.wall_s
    run = PythonRun()
    while sel.get_map():
        left = deadline - time.perf_counter()
        if left <= 0:
            run.timed_out = True
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            fd = key.fd
            chunk = os.read(fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            bufs[key.data].extend(chunk)
        if any(len(bufs[k]) > limits.output_bytes for k in ("stdout", "stderr")) or len(bufs["result"]) > 1 << 20:
            run.truncated = True
            break
    sel.close()
    if not (run.timed_out or run.truncated):
        try:  # every pipe closed: the code may still run (it closed them); the wall limit still holds
            proc.wait(timeout=max(0.1, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            run.timed_out = True
    if run.timed_out or run.truncated:
        proc.send_signal(signal.SIGTERM)  # the launcher kills the jail and reaps it before exiting
    try:
        status = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _kill(proc)
        status = proc.wait()
    run.ms = (time.perf_counter() - t0) * 1000
    result = _result(bytes(bufs["result"]))
    if "setup_error" in result:
        raise SandboxError(f"the sandbox could not be built: {result['setup_error']}")
    if status == SETUP_FAILED and not result:
        raise SandboxError("the sandbox could not be built: " + bufs["stderr"].decode("utf-8", "replace").strip()[-300:])
    run.exit_code = status
    if status > 128 and "variables" not in result and not (run.timed_out or run.truncated):
        run.signal = status - 128
    run.variables = result.get("variables")
    cap = limits.output_bytes
    run.stdout = bytes(bufs["stdout"][:cap]).decode("utf-8", "replace")
    run.stderr = bytes(bufs["stderr"][:cap]).decode("utf-8", "replace")
    return run


def _result(raw: bytes) -> dict:
    line = raw.split(b"\n", 1)[0]
    try:
        value = json.loads(line) if line else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and whatever stayed in its group
        except ProcessLookupError:
            pass


@functools.lru_cache(maxsize=1)
def availability() -> Availability:
    """Whether code can be jailed here: a real run that must print and must find no network."""
    if not sys.platform.startswith("linux"):
        return Availability(False, "none", f"no sandbox on {sys.platform} (vdr confines code with Linux namespaces only)")
    probe = ("import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', 9))\n"
             "except OSError as e:\n    print('ok', e.errno)\n")
    try:
        run = run_python(probe, Limits(wall_s=20, cpu_s=10))
    except SandboxError as exc:
        return Availability(False, "none", str(exc))
    if not run.stdout.startswith("ok"):
        return Availability(False, "none", f"the sandbox probe failed: {(run.stderr or run.stdout)[:200]!r}")
    who = "uid-switch (root)" if os.geteuid() == 0 else "user namespace"
    return Availability(True, f"linux namespaces (net, mount, pid, ipc, uts; {who}), new root without $HOME, rlimits")
