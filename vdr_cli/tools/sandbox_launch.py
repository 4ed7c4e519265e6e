"""The sandbox's launcher: run as `python -I -S -B sandbox_launch.py CONFIG_JSON`.

It reads the model's code on stdin, then (Linux only) builds the jail and
execs a fresh interpreter on the code inside it:

- namespaces: network (only a down loopback: nothing is reachable), mount,
  pid (the code is pid 1: when it ends the kernel kills every process it
  left), ipc, uts, cgroup; a user namespace too when not run as root;
- a new root: an empty read-only tmpfs holding read-only, nosuid binds of
  the interpreter's own folders (listed by the parent), a few device nodes,
  a fresh /proc and one writable size-limited tmpfs at /tmp (the code's
  folder and HOME). Everything else, $HOME included, does not exist there;
- as root the code runs as an otherwise unused uid with no groups, so it
  has no capability anywhere; as a user it keeps its uid, whose capabilities
  in the new user namespace end at exec. no_new_privs in both cases;
- rlimits on CPU time, address space, processes, file size and open files.

Standard library only, no vdr imports: it runs before and outside vdr.
The runner (RUNNER) writes one JSON line to the result pipe (fd cfg["result_fd"]): the variables the code
left, as the reference reports them. Exit status 125: the jail could not
be built (the reason is on that pipe as {"setup_error": ...}).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PIVOT_ROOT = {"x86_64": 155, "amd64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
KEYCTL = {"x86_64": 250, "amd64": 250, "aarch64": 219, "arm64": 219, "riscv64": 219, "ppc64le": 271, "s390x": 280}
KEYCTL_JOIN_SESSION_KEYRING = 1
DEVICES = ("null", "zero", "full", "random", "urandom")
SETUP_FAILED = 125

# Runs inside the jail.  Namespace and variables as the reference reports them
# (rllm/eval/tools.py PythonInterpreterTool.call): its preloaded modules, and
# "meaningful" variables = names not starting with "_" and not those modules.
RUNNER = r'''
import json, os, sys
_fd = int(sys.argv[1]); _code = sys.stdin.read(); sys.stdin.close()
_preloaded = ("math", "datetime", "json", "random", "re", "collections", "itertools", "statistics")
_g = {"__name__": "__main__", "__builtins__": __builtins__}
for _m in _preloaded:
    _g[_m] = __import__(_m)
class _Lazy:
    # numpy/pandas are preloaded by the reference; imported here on first use only.
    def __init__(self, name): object.__setattr__(self, "_name", name)
    def __getattr__(self, attr): return getattr(__import__(object.__getattribute__(self, "_name")), attr)
for _alias, _mod in (("numpy", "numpy"), ("np", "numpy"), ("pandas", "pandas"), ("pd", "pandas")):
    _g[_alias] = _Lazy(_mod)
_main, _error = os.getpid(), None
try:
    exec(compile(_code, "<code>", "exec"), _g)
except SystemExit as _e:
    _error = None if _e.code in (None, 0) else str(_e)
except BaseException as _e:
    _error = str(_e)
if os.getpid() != _main:  # a forked child of the code: only the first process reports
    os._exit(0 if _error is None else 1)
try:
    sys.stdout.flush()
except BaseException:
    pass
if _error is not None:
    sys.stderr.write(f"Execution error: {_error}")
    sys.stderr.flush()
_skip = set(_preloaded) | {"numpy", "np", "pandas", "pd"}
_vars = {k: v for k, v in _g.items() if not k.startswith("_") and k not in _skip}
try:
    _text = repr(_vars)[:200000] if _vars else None
except BaseException as _e:
    _text = f"<variables could not be shown: {_e}>"
os.write(_fd, (json.dumps({"variables": _text}) + "\n").encode())
'''

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {dst}")


def _lock_flags(path: str) -> int:
    """Mount flags a remount must keep (a user namespace may not clear them)."""
    f = os.statvfs(path).f_flag
    flags = (MS_NODEV if f & os.ST_NODEV else 0) | (MS_NOEXEC if f & os.ST_NOEXEC else 0)
    flags |= MS_NODIRATIME if f & os.ST_NODIRATIME else 0
    if f & os.ST_NOATIME:
        return flags | MS_NOATIME
    return flags | (MS_RELATIME if f & os.ST_RELATIME else MS_STRICTATIME)


def _bind_ro(src: str, root: str) -> None:
    dst = root + src
    if os.path.islink(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.lexists(dst):
            os.symlink(os.readlink(src), dst)
        return
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _mount(src, dst, None, MS_BIND | MS_REC)
    _mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | _lock_flags(src))


def _build_root(cfg: dict) -> None:
    """Populate the new root at cfg["root"] and pivot into it (we are pid 1 of the new pid namespace)."""
    root = cfg["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount may propagate to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    # /tmp first: an interpreter that lives under /tmp (a venv in a clone there) is then
    # bound inside it, read-only, instead of being hidden by it or colliding with it.
    os.makedirs(root + "/tmp")
    tmp_opts = f"size={cfg['tmp_bytes']},nr_inodes=4096,mode=1777"
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts)
    for path in cfg["binds"]:
        if os.path.lexists(path):
            _bind_ro(path, root)
    os.makedirs(root + "/dev")
    _mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for dev in DEVICES:
        open(f"{root}/dev/{dev}", "a").close()
        _mount(f"/dev/{dev}", f"{root}/dev/{dev}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(root + "/proc")
    try:
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass  # some containers refuse a new proc; Python runs without one
    number = PIVOT_ROOT.get(platform.machine().lower())
    if number is None:
        raise OSError(0, f"pivot_root: unknown architecture {platform.machine()}")
    os.chdir(root)
    _check(_libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount old root")  # the old root is gone for good
    os.chdir("/")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _libc.sethostname(b"sandbox", 7)
    os.chdir("/tmp")


def _limits(cfg: dict) -> None:
    cpu = int(cfg["cpu_s"])
    # soft == hard: pid 1 ignores SIGXCPU, so the limit is the kernel's SIGKILL.
    for res, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, cfg["memory_bytes"]),
                       (resource.RLIMIT_NPROC, cfg["processes"]), (resource.RLIMIT_FSIZE, cfg["tmp_bytes"]),
                       (resource.RLIMIT_NOFILE, 256), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (value, value))


def _write_map(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _child(cfg: dict, code_fd: int) -> None:
    _build_root(cfg)
    _limits(cfg)
    if cfg["as_root"]:
        uid = int(cfg["uid"])
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    keyctl = KEYCTL.get(platform.machine().lower())
    if keyctl is not None:  # a new, empty session keyring: the caller's keys are not "possessed" in here
        _libc.syscall(ctypes.c_long(keyctl), KEYCTL_JOIN_SESSION_KEYRING, None)  # refused under some seccomp: fine
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    # After the uid change (which clears it): die with the launcher, and so the whole jail.
    _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "pdeathsig")
    # (No getppid() race check: pid 1 of a namespace always sees 0.  A launcher
    # killed before this line is killed with its process group, this child included.)
    os.dup2(code_fd, 0)
    os.close(code_fd)
    env = cfg["env"]
    os.execve(cfg["python"], [cfg["python"], "-I", "-B", "-X", "utf8", "-c", RUNNER, str(cfg["result_fd"])], env)


def _fail(fd: int, message: str) -> None:
    try:
        os.write(fd, (json.dumps({"setup_error": message}) + "\n").encode())
    finally:
        os._exit(SETUP_FAILED)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    code = sys.stdin.buffer.read()
    _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "pdeathsig")
    # The code goes to the runner's stdin through a memfd: it survives the pivot.
    code_fd = os.memfd_create("code", 0)
    os.write(code_fd, code)
    os.lseek(code_fd, 0, os.SEEK_SET)
    as_root = os.geteuid() == 0
    cfg["as_root"] = as_root
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    try:
        if as_root:
            _check(_libc.unshare(flags), "unshare")
        else:
            _check(_libc.unshare(flags | CLONE_NEWUSER), "unshare (user namespace)")
            _write_map("/proc/self/setgroups", "deny")
            _write_map("/proc/self/uid_map", f"{uid} {uid} 1")
            _write_map("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError as exc:
        _fail(cfg["result_fd"], str(exc))
    pid = os.fork()
    if pid == 0:
        try:
            _child(cfg, code_fd)
        except BaseException as exc:  # noqa: BLE001 - whatever broke, the parent gets one line
            _fail(cfg["result_fd"], f"{type(exc).__name__}: {exc}")
    os.close(code_fd)
    # SIGTERM from vdr (a timeout, too much output): kill the jail's pid 1, whose end
    # kills and reaps every process in the namespace; reaping it here means that when
    # this launcher has exited, nothing of the jail is left.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
