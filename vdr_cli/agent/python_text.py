"""How a PythonInterpreter run is written for the model: the reference's texts.

The reference (Osilly/Vision-DeepResearch@67af60f rllm/eval/tools.py,
PythonInterpreterTool.call; the RL tool at bac38dc
rllm/vision_deepresearch_async_workflow/tools/python_interpreter_tool.py lines
200-250 writes the same texts) reports, in this order of precedence:

- a timeout: "[Timeout] Execution exceeded {timeout}s" (nothing else);
- anything on stderr (an exception adds "Execution error: {e}" there):
  "[Error]\\n{stderr}", stdout dropped;
- stdout: "[Output]\\n{stdout.rstrip()}";
- the variables the code left: "[Variables]\\n{dict}";
- else "[Success] Code executed (no output)".

vdr's sandbox adds two endings the reference cannot have (its code runs in
the agent's own process): output cut at the sandbox's cap, and a kill by a
CPU, memory or process limit.  Those texts are vdr's own.
"""

from __future__ import annotations

from vdr_cli.tools.sandbox import PythonRun

TIMEOUT = "[Timeout] Execution exceeded {timeout}s"
ERROR = "[Error]\n{stderr}"
OUTPUT = "[Output]\n{stdout}"
VARIABLES = "[Variables]\n{variables}"
SUCCESS = "[Success] Code executed (no output)"
EXECUTION_ERROR = "Python execution error: {error}"  # deepresearch_agent.py execute_python: the tool raised
# vdr's own (see the module docstring).
TRUNCATED = "\n[Output truncated: the code printed more than {limit} bytes and was stopped]"
KILLED = "Execution error: stopped by the sandbox (signal {signal}: a CPU-time, memory or process limit)"


def _timeout_text(seconds: float) -> str:
    return TIMEOUT.format(timeout=int(seconds) if float(seconds).is_integer() else seconds)


def format_python_run(run: PythonRun, timeout_s: float, output_limit: int) -> str:
    """The tool response text for one run, as the reference writes it."""
    if run.timed_out:
        return _timeout_text(timeout_s)
    tail = TRUNCATED.format(limit=output_limit) if run.truncated else ""
    if run.stderr:
        return ERROR.format(stderr=run.stderr) + tail
    if run.stdout:
        return OUTPUT.format(stdout=run.stdout.rstrip()) + tail
    if run.signal is not None:
        return ERROR.format(stderr=KILLED.format(signal=run.signal))
    if run.variables:
        return VARIABLES.format(variables=run.variables)
    return SUCCESS
