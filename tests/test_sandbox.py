"""PythonInterpreter: the trained call form, the reference's result texts, and a real
sandbox that every escape attempt fails against while the session goes on.

The sandbox is the real one (Linux namespaces, a new root, rlimits); the sessions
run the real loop and toolbox with the scripted backend playing the model's turns.
Reference texts: Osilly/Vision-DeepResearch@67af60f rllm/eval/tools.py
(PythonInterpreterTool.call) and rllm/eval/deepresearch_agent.py (`_run`,
`execute_python`); line numbers are those of the same code at bac38dc.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.conftest import run_vdr
from vdr_cli.agent import prompt
from vdr_cli.agent.loop import LoopConfig, ResearchLoop
from vdr_cli.agent.toolbox import ToolSettings, WebToolbox
from vdr_cli.agent.turns import parse_turn
from vdr_cli.models.base import Turn
from vdr_cli.models.scripted import ScriptedSession
from vdr_cli.tools.sandbox import JAIL_UID_BASE, Limits, availability, run_python
from vdr_cli.trace.schema import validate_event

pytestmark = pytest.mark.skipif(not availability().ok, reason=f"no sandbox here: {availability().reason}")

LIMITS = Limits(wall_s=5, cpu_s=10, output_bytes=20_000)
SHORT = Limits(wall_s=1, cpu_s=10, output_bytes=20_000)  # for code that never ends


def python_call(code: str) -> str:
    """A turn in the trained form (the example in the reference's system prompt)."""
    return ('<think>compute it</think>\n<tool_call>\n{"name": "PythonInterpreter", "arguments": {}}\n'
            f"<code>\n{code}\n</code>\n</tool_call>")


ANSWER = "<think>done</think>\n<answer>42</answer>"


def session(turns: list[str], python: bool = True, limits: Limits = LIMITS) -> tuple[list[dict], ScriptedSession]:
    """The real loop and toolbox on scripted turns; returns the events and the model (its transcript)."""
    model = ScriptedSession(turns)
    events: list[dict] = []
    toolbox = WebToolbox([], ToolSettings(python_limits=limits), python=python)
    tools = ("search", "visit", "PythonInterpreter") if python else ("search", "visit")
    loop = ResearchLoop(model, toolbox, events.append, LoopConfig(tools=tools))
    loop.run(prompt.system_prompt(tools, "2026-01-15", with_images=False), Turn("user", "q?"))
    for ev in events:
        assert validate_event(ev) == [], ev
    return events, model


def one_result(code: str, **kw) -> str:
    """Run one Python call in a session that must go on to its answer; the text the model was shown."""
    events, model = session([python_call(code), ANSWER], **kw)
    assert events[-1]["type"] == "end" and events[-1]["reason"] == "answer"  # the session went on
    [result] = [e for e in events if e["type"] == "result"]
    assert result["tool"] == "PythonInterpreter"
    # exactly that text went back to the model, as the reference wraps it
    assert any(t.role == "user" and t.text == prompt.tool_response(result["content"]) for t in model.transcript)
    return result["content"]


# --- the call as trained, and the reference's texts ------------------------------------------


def test_trained_call_form_is_parsed_as_the_reference_splits_it():
    turn = parse_turn(python_call("import numpy as np\nprint(np.mean([1,2,3]))"))
    assert (turn.kind, turn.tool, turn.args) == ("call", "PythonInterpreter", {"code": "import numpy as np\nprint(np.mean([1,2,3]))"})
    # bac38dc deepresearch_agent.py:494: any call text mentioning "python" takes the Python path...
    query = parse_turn('<tool_call>\n{"name": "search", "arguments": {"query": ["Python 3.13 release"]}}\n</tool_call>')
    assert (query.tool, query.args) == ("PythonInterpreter", {})
    # ...and its code is cut at the first </code> (no </code>: up to the end of the call)
    assert parse_turn('<tool_call>{"name": "PythonInterpreter"}<code>print(1)</tool_call>').args == {"code": "print(1)"}
    assert parse_turn('<tool_call>{"name": "search", "arguments": {"query": ["x"]}}</tool_call>').tool == "search"


@pytest.mark.parametrize("code, expected", [
    # tools.py PythonInterpreterTool.call: f"[Output]\n{stdout.rstrip()}" (bac38dc python_interpreter_tool.py:240-243)
    ("print('hi')\nprint()", "[Output]\nhi"),
    # the reference preloads math/numpy/... in the namespace: no import needed
    ("print(math.sqrt(16), np.mean([1, 2, 3]))", "[Output]\n4.0 2.0"),
    # f"[Variables]\n{meaningful_vars}": names not starting with "_" nor preloaded modules (:244-247)
    ("x = 5\n_hidden = 1\nimport json\nwords = ['a']", "[Variables]\n{'x': 5, 'words': ['a']}"),
    ("pass", "[Success] Code executed (no output)"),  # :249
    # an exception: stderr_buffer.write(f"Execution error: {e}") then f"[Error]\n{stderr}" (:205, :236-238)
    ("print('lost')\n1/0", "[Error]\nExecution error: division by zero"),
    ("import sys\nprint('out')\nprint('warn', file=sys.stderr)", "[Error]\nwarn\n"),
])
def test_results_are_written_as_the_reference_writes_them(code, expected):
    assert one_result(code) == expected


def test_a_call_without_code_and_a_session_without_the_tool():
    events, _ = session(['<tool_call>\n{"name": "search", "arguments": {"query": ["python snake"]}}\n</tool_call>', ANSWER])
    # deepresearch_agent.py `_run`: the split finds no <code> (bac38dc :515)
    assert [e["content"] for e in events if e["type"] == "result"] == [prompt.PYTHON_FORMAT_ERROR]
    events, model = session([python_call("print(1)"), ANSWER], python=False)
    # execute_python without the tool (bac38dc :749); the prompt did not offer it
    assert [e["content"] for e in events if e["type"] == "result"] == ["PythonInterpreter tool not available"]
    assert "PythonInterpreter" not in model.transcript[0].text


def test_timeout_text_and_the_run_record():
    events, _ = session([python_call("while True:\n    pass"), ANSWER], limits=SHORT)
    [result] = [e for e in events if e["type"] == "result"]
    # f"[Timeout] Execution exceeded {timeout}s" (bac38dc python_interpreter_tool.py:220); vdr's limit here is 1 s
    assert result["content"] == "[Timeout] Execution exceeded 1s"
    assert result["ok"] is False and result["data"][0]["type"] == "python" and result["data"][0]["timed_out"] is True
    assert Limits().wall_s == 50  # the reference eval's PythonInterpreterTool.timeout


# --- escapes: each fails, the session goes on ----------------------------------------------


@pytest.fixture
def listener():
    """A loopback TCP listener that records every connection it accepts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    accepted: list[tuple] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            accepted.append(addr)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    thread.join()
    srv.close()


def test_escape_connect_to_a_loopback_listener(listener):
    port, accepted = listener
    text = one_result(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
    assert text == "[Error]\nExecution error: [Errno 101] Network is unreachable"
    text = one_result(f"import urllib.request\nprint(urllib.request.urlopen('http://localhost:{port}/', timeout=2).read())")
    assert text.startswith("[Error]\nExecution error: ") and "connected" not in text
    assert accepted == []


@pytest.fixture
def home_secret():
    home = Path.home()
    fd, name = tempfile.mkstemp(prefix=".vdr-sandbox-test-", dir=home)
    os.write(fd, b"home-secret-7f3a")
    os.close(fd)
    yield Path(name)
    os.unlink(name)


def test_escape_read_a_file_in_home(home_secret):
    text = one_result(f"print(open({str(home_secret)!r}).read())")
    assert text == f"[Error]\nExecution error: [Errno 2] No such file or directory: {str(home_secret)!r}"
    listing = one_result(f"import os\nprint(os.path.expanduser('~'), os.listdir('/'), os.path.exists({str(Path.home())!r} + '/.bashrc'))")
    assert "home-secret" not in listing and listing.startswith("[Output]\n/tmp [") and listing.endswith("False")


def test_escape_read_an_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-9d2c")
    monkeypatch.setenv("VDR_KEYS_SERPER", "serper-key-1b4e")
    text = one_result("import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ').read())\n"
                      "print([open(f'/proc/{p}/environ').read() for p in os.listdir('/proc') if p.isdigit()])")
    assert text.startswith("[Output]\n{") and "HOME': '/tmp'" in text
    assert "sk-test-key" not in text and "serper-key" not in text and "OPENAI_API_KEY" not in text


def jail_processes() -> list[str]:
    """Host pids running as a jail uid (root mode runs code as JAIL_UID_BASE + n)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid_line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) >= JAIL_UID_BASE:
            found.append(pid)
    return found


def test_escape_fork_bomb():
    text = one_result("import os\nwhile True:\n    os.fork()")
    assert text == "[Error]\nExecution error: [Errno 11] Resource temporarily unavailable"
    if os.geteuid() == 0:
        assert jail_processes() == []  # the pid namespace died with its first process
    assert one_result("print('still here')") == "[Output]\nstill here"


def test_escape_loop_forever_and_leave_a_child_behind():
    text = one_result("import os, time\nif os.fork() == 0:\n    time.sleep(1000)\nwhile True:\n    pass", limits=SHORT)
    assert text == "[Timeout] Execution exceeded 1s"
    if os.geteuid() == 0:
        assert jail_processes() == []


def test_escape_print_a_gigabyte():
    text = one_result("import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)")
    assert text.startswith("[Output]\nxxxx") and text.endswith("[Output truncated: the code printed more than 20000 bytes and was stopped]")
    assert len(text) < 20_000 + 200
    big = one_result("s = 'y' * (2 << 30)")  # 2 GiB in one piece: over the address-space limit
    assert big == "[Error]\nExecution error: "  # MemoryError has no message; the reference prints the same


def test_escape_write_outside_its_folder(tmp_path):
    venv = Path(sys.prefix)
    targets = [tmp_path / "escape.txt", Path("/usr/escape.txt"), Path("/escape.txt"), Path.home() / "escape.txt",
               venv / "escape.txt", Path("/dev/escape.txt"), Path("/proc/sys/kernel/hostname")]
    code = ("results = []\n"
            f"for path in {[str(t) for t in targets]!r}:\n"
            "    try:\n        open(path, 'w').write('x')\n        results.append('WROTE ' + path)\n"
            "    except OSError as e:\n        results.append(type(e).__name__)\n"
            "open('/tmp/inside.txt', 'w').write('ok')\nimport os\n"
            "print(results, open('inside.txt').read(), os.getcwd())")
    text = one_result(code)
    assert "WROTE" not in text and text.endswith("ok /tmp")
    assert not any(t.exists() for t in targets[:5])
    assert socket.gethostname() != "sandbox"
    # a fresh folder every run: the last run's file is gone (what is left are the
    # read-only mount points of an interpreter that lives under /tmp, if this one does)
    from vdr_cli.tools.sandbox import _binds

    left = sorted({Path(p).relative_to("/tmp").parts[0] for p in _binds() if p.startswith("/tmp/")})
    assert one_result("import os\nprint(sorted(os.listdir('/tmp')))") == f"[Output]\n{left}"


def test_escape_with_ctypes(listener, home_secret):
    port, accepted = listener
    code = f"""
import ctypes, ctypes.util, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
out = ["setuid0=%d" % libc.setuid(0)]
fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
addr = struct.pack("=HH4s8x", socket.AF_INET, socket.htons({port}), socket.inet_aton("127.0.0.1"))
out.append("connect=%d" % libc.connect(fd, addr, len(addr)))
# a nested user+mount+net namespace: full capabilities, but only over what the jail already sees
out.append("unshare=%d" % libc.unshare(0x10000000 | 0x00020000 | 0x40000000))
out.append("mount=%d" % libc.mount(b"/", b"/tmp", None, 4096 | 16384, None))
f = libc.open({str(home_secret).encode()!r}, 0)
out.append("open=%d" % f)
buf = ctypes.create_string_buffer(64)
out.append(repr(buf.raw[: max(0, libc.read(f, buf, 64))]) if f >= 0 else "no-read")
print(" ".join(out))
"""
    text = one_result(code)
    assert text.startswith("[Output]\nsetuid0=-1 connect=-1 ")  # ctypes imports; it reaches nothing
    assert "open=-1 no-read" in text and "home-secret" not in text
    assert accepted == []


# --- vdr ask: the option, the notice, the trace ---------------------------------------------


def script(tmp_path: Path, turns: list[str]) -> Path:
    path = tmp_path / "script.jsonl"
    lines = [{"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [], "model": {}, "vdr": "0"}]
    lines += [{"type": "step", "n": n, "raw": raw} for n, raw in enumerate(turns, 1)]
    path.write_text("".join(json.dumps(l) + "\n" for l in lines))
    return path


def trace_events(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def test_ask_offers_python_by_default_and_not_with_no_python(tmp_path):
    turns = script(tmp_path, [python_call("print(6 * 7)"), ANSWER])
    r = run_vdr("ask", "what is six times seven?", "--model", f"scripted:{turns}", "-o", str(tmp_path / "a.jsonl"))
    assert r.returncode == 0, r.stderr
    evs = trace_events(tmp_path / "a.jsonl")
    assert evs[0]["tools"] == ["search", "visit", "PythonInterpreter"]  # the prompt that was used
    assert [e["content"] for e in evs if e["type"] == "result"] == ["[Output]\n42"]
    r = run_vdr("ask", "q?", "--no-python", "--model", f"scripted:{turns}", "-o", str(tmp_path / "b.jsonl"))
    evs = trace_events(tmp_path / "b.jsonl")
    assert r.returncode == 0 and evs[0]["tools"] == ["search", "visit"]
    assert [e["content"] for e in evs if e["type"] == "result"] == ["PythonInterpreter tool not available"]


def _unbuildable() -> list[str] | None:
    # As uid 0 of a user namespace that maps nothing else, the jail's uid switch cannot work:
    # a real platform where no sandbox can be built.
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True).returncode:
        return None
    return ["unshare", "-U", "-r"]


def test_ask_without_a_sandbox_leaves_the_tool_out_with_one_notice(tmp_path):
    wrap = _unbuildable()
    if wrap is None:
        pytest.skip("unshare -U -r is not available")
    turns = script(tmp_path, [ANSWER])
    env = {**os.environ}
    cmd = [*wrap, sys.executable, "-m", "vdr_cli", "ask", "q?", "--model", f"scripted:{turns}", "-o", str(tmp_path / "c.jsonl")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    notices = [l for l in r.stderr.splitlines() if "PythonInterpreter left out of the prompt: " in l]
    assert len(notices) == 1, r.stderr
    assert trace_events(tmp_path / "c.jsonl")[0]["tools"] == ["search", "visit"]
    r = subprocess.run(cmd[:-2] + ["--python", "-o", str(tmp_path / "d.jsonl")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "--python: " in r.stderr and "Traceback" not in r.stderr


def test_an_interpreter_under_tmp_is_shown_read_only_inside_the_jails_tmp(tmp_path, monkeypatch):
    """A venv in a clone under /tmp (CI in /tmp): its folders are bound inside the jail's
    /tmp, read-only (the jail failed to build before: FileExistsError on /tmp)."""
    import vdr_cli.tools.sandbox as sandbox

    prefix = tmp_path.resolve() / "venv"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "marker.txt").write_text("from the venv")
    assert str(prefix).startswith("/tmp/")
    real = sandbox._binds
    monkeypatch.setattr(sandbox, "_binds", lambda: real() + [str(prefix)])
    code = (f"print(open({str(prefix / 'lib' / 'marker.txt')!r}).read())\n"
            f"try:\n    open({str(prefix / 'lib' / 'new.txt')!r}, 'w')\n    print('WROTE')\n"
            "except OSError as e:\n    print(e.errno == 30)\n"  # EROFS
            "open('/tmp/scratch.txt', 'w').write('ok')\nprint(open('/tmp/scratch.txt').read())")
    assert one_result(code) == "[Output]\nfrom the venv\nTrue\nok"
    assert not (prefix / "lib" / "new.txt").exists()
