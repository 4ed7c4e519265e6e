"""Turn text for a model's chat template: ChatML exactly, other GGUF templates via jinja2.

A session evaluates each turn once, so it needs each turn's text on its own,
not the whole conversation re-rendered.  ChatML (Qwen, SmolLM, the reference
model) is written directly.  Any other template (the GGUF's
`tokenizer.chat_template`, or a registry override) is rendered with jinja2:
the first turn whole, later turns and the assistant's header and closing text
from probe conversations with a sentinel, which works for templates whose
rendering of a conversation is a prefix of the rendering of a longer one
(Llama 3, Gemma, Mistral, Phi and most others).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Callable

from .base import IMAGE_MARKER, Turn
from .errors import ModelError, ModelLoadError

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SENTINEL = "\u27e6vdr-sentinel\u27e7"
SYSTEM_SENTINEL = "\u27e6vdr-system\u27e7"
# A turn as (text, framing) parts: framing is the template's own text, the only
# text whose special-token spellings may become control tokens; the rest (page
# text, search results, files, the question, even the system prompt) is content.
Parts = list[tuple[str, bool]]


def joined(parts: Parts) -> str:
    return "".join(text for text, _ in parts)


@dataclass(frozen=True)
class ChatTemplate:
    kind: str  # "chatml" or "jinja"
    header: str  # text that opens the assistant's turn (generation starts after it)
    close: str  # text that closes the assistant's turn
    first_fn: Callable[[str, str], Parts]
    turn_fn: Callable[[str, str], Parts]

    def first(self, system: str, user_content: str) -> str:
        """The conversation's opening: system prompt (may be empty) and first user turn."""
        return joined(self.first_parts(system, user_content))

    def turn(self, role: str, content: str) -> str:
        """A later turn; an assistant turn (resume) is header + content + close."""
        return joined(self.turn_parts(role, content))

    def first_parts(self, system: str, user_content: str) -> Parts:
        return [p for p in self.first_fn(system, user_content) if p[0]]

    def turn_parts(self, role: str, content: str) -> Parts:
        if role == "assistant":
            return [p for p in [(self.header, True), (content, False), (self.close, True)] if p[0]]
        return [p for p in self.turn_fn(role, content) if p[0]]


def chatml() -> ChatTemplate:
    def turn(role: str, content: str) -> Parts:
        return [(f"{IM_START}{role}\n", True), (content, False), (f"{IM_END}\n", True)]

    def first(system: str, user: str) -> Parts:
        return (turn("system", system) if system else []) + turn("user", user)

    return ChatTemplate("chatml", f"{IM_START}assistant\n", f"{IM_END}\n", first, turn)


def _framed(rendered: str, contents: list[tuple[str, str]]) -> Parts:
    """Split a rendering made with sentinels into framing and the real contents."""
    parts: Parts = []
    rest = rendered
    for sentinel, content in contents:
        head, found, rest = rest.partition(sentinel)
        if not found:
            raise ModelLoadError("chat template drops a message's content")
        parts += [(head, True), (content, False)]
    return parts + [(rest, True)]


def is_chatml(source: str | None) -> bool:
    return not source or IM_START in source


def from_source(source: str | None, bos: str = "", eos: str = "") -> ChatTemplate:
    """The template to use for `source` (ChatML when absent or ChatML-like)."""
    if is_chatml(source):
        return chatml()
    return _jinja(source or "", bos, eos)


def _jinja(source: str, bos: str, eos: str) -> ChatTemplate:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals.update(raise_exception=raise_exception,
                       strftime_now=lambda fmt: _dt.datetime.now().strftime(fmt))
    try:
        compiled = env.from_string(source)
    except TemplateError as exc:
        raise ModelLoadError(f"chat template does not parse ({exc})") from None

    def render(messages: list[dict[str, Any]], gen: bool = False) -> str:
        return compiled.render(messages=messages, add_generation_prompt=gen, bos_token=bos, eos_token=eos)

    def first(system: str, user: str) -> Parts:
        # Rendered with sentinels for the contents, which are put back as content parts.
        messages = ([{"role": "system", "content": SYSTEM_SENTINEL}] if system else []) + [{"role": "user", "content": SENTINEL}]
        contents = ([(SYSTEM_SENTINEL, system)] if system else []) + [(SENTINEL, user)]
        try:
            return _framed(render(messages), contents)
        except TemplateError:
            # Templates without a system role (Gemma): the system text leads the first turn.
            rendered = render([{"role": "user", "content": SENTINEL}])
            return _framed(rendered, [(SENTINEL, f"{system}\n\n{user}" if system else user)])

    try:
        base = _probe_base(render)
        before = render(base)
        extended = render(base + [{"role": "user", "content": SENTINEL}])
        user_pre, user_post = _split(extended[len(before):] if extended.startswith(before) else "", "user turn")
        asked = render(base + [{"role": "user", "content": "q"}], gen=True)
        plain = render(base + [{"role": "user", "content": "q"}])
        header = asked[len(plain):] if asked.startswith(plain) else ""
        answered = render(base + [{"role": "user", "content": "q"}, {"role": "assistant", "content": SENTINEL}])
        tail = answered[len(plain):] if answered.startswith(plain) else ""
        head, close = _split(tail, "assistant turn")
        if head != header:
            header = head or header
    except TemplateError as exc:
        raise ModelLoadError(f"chat template cannot render a conversation ({exc})") from None

    def turn(role: str, content: str) -> Parts:
        # Tool results go back as user turns, as the reference model was trained.
        return [(user_pre, True), (content, False), (user_post, True)]

    return ChatTemplate("jinja", header, close, first, turn)


def _probe_base(render: Callable[..., str]) -> list[dict[str, Any]]:
    """A short conversation the template accepts, ending with an assistant turn."""
    from jinja2 import TemplateError

    for base in ([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}],
                 [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]):
        try:
            render(base)
            return base
        except TemplateError:
            continue
    raise TemplateError("no probe conversation renders")


def _split(text: str, what: str) -> tuple[str, str]:
    if SENTINEL not in text:
        raise ModelLoadError(f"chat template is not incremental ({what} cannot be rendered on its own)",
                             hint="register the model with a ChatML template: vdr model add NAME --gguf F --chat-template @chatml.jinja")
    pre, post = text.split(SENTINEL, 1)
    return pre, post


def turn_content(turn: Turn, marker: str = IMAGE_MARKER) -> str:
    """A turn's content with its images' markers: where IMAGE_MARKER is, else before the text."""
    n_marks = turn.text.count(IMAGE_MARKER)
    if n_marks and n_marks != len(turn.images):
        raise ModelError(f"turn has {len(turn.images)} image(s) but {n_marks} image marker(s)")
    return turn.text.replace(IMAGE_MARKER, marker) if n_marks else marker * len(turn.images) + turn.text


def render_turn(turn: Turn, marker: str = IMAGE_MARKER) -> str:
    """ChatML text of one turn (the reference model's format)."""
    return chatml().turn(turn.role, turn_content(turn, marker))
