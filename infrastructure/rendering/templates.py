"""The sandbox a bill group's or a dunning stage's own template runs in, with a budget.

Those templates come from import files, not from this repository, and one
worker renders every bill group's emails: a template that loops for minutes or
writes 50 MB would stall or flood delivery for everyone. So:

- At import, `template_problem` compiles the text in this sandbox and reads its
  syntax tree: a syntax error, or reaching for an attribute the sandbox forbids
  (`__class__`, `mro`, ...), is refused there, with the reason, instead of being
  dead-lettered at delivery.
- Each render has a CPU-time budget (`RENDER_CPU_SECONDS`, measured on the
  rendering thread's own clock so a busy machine does not count against it) and
  an output budget (`MAX_OUTPUT_CHARS`). Pure-Python loops are interrupted by a
  watchdog thread that raises in the rendering thread; single operations that
  could allocate without bound in C (`'x' * n`, `2 ** n`, a width of a billion,
  `%` formatting of text) are refused before they run.

Exceeding a budget raises `TemplateRefused`: permanent, it is never retried.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
import jinja2.nodes
import jinja2.sandbox
from jinja2.exceptions import SecurityError

RENDER_CPU_SECONDS = 2.0
MAX_OUTPUT_CHARS = 200_000
_WATCH_INTERVAL_S = 0.02


class TemplateRefused(ValueError):
    """A template that broke the sandbox's rules or exceeded its budget."""


class _RenderBudgetExceeded(BaseException):
    # A BaseException, raised asynchronously in the rendering thread: template code
    # (or jinja's own `except Exception`) cannot swallow it.
    pass


def _too_large(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT_CHARS


def capped_filter(filter_function: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter that refuses a width or count beyond the output budget."""

    def capped(*args: Any, **kwargs: Any) -> Any:
        if any(_too_large(a) for a in (*args[1:], *kwargs.values())):
            raise SecurityError(f"a size above {MAX_OUTPUT_CHARS} in a filter")
        return filter_function(*args, **kwargs)

    for attribute in ("jinja_pass_arg",):
        if hasattr(filter_function, attribute):
            setattr(capped, attribute, getattr(filter_function, attribute))
    return capped


class BudgetedSandbox(jinja2.sandbox.SandboxedEnvironment):
    """jinja2's sandbox, refusing the operations that allocate without bound."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Only `range` among the globals; `lipsum` and friends are not needed.
        self.globals = {"range": self.globals["range"]}
        self.filters = {name: capped_filter(f) for name, f in self.filters.items()}
        self.filters.pop("format", None)  # `%` formatting with any width: not needed

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (_too_large(left) or not isinstance(right, int) or right > 64):
            raise SecurityError("a power above 64 in a template")
        if operator == "%" and isinstance(left, str):
            raise SecurityError("% formatting of text in a template")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > MAX_OUTPUT_CHARS
                ):
                    raise SecurityError(f"a repetition above {MAX_OUTPUT_CHARS} in a template")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if any(_too_large(a) for a in (*args, *kwargs.values())):
            raise SecurityError(f"a size above {MAX_OUTPUT_CHARS} in a call")
        if getattr(__obj, "__name__", "") in ("format", "format_map") and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            raise SecurityError("str.format in a template: use the filters instead")
        return super().call(__context, __obj, *args, **kwargs)


def template_problem(environment: BudgetedSandbox | None, source: str) -> str | None:
    """Why `source` cannot be a template, or None: it compiles in the sandbox and
    reaches for no attribute the sandbox forbids."""
    sandbox = environment or _CHECKER
    try:
        tree = sandbox.parse(source)
        sandbox.compile(tree)
    except jinja2.TemplateSyntaxError as error:
        return f"not a valid template: {error.message} (line {error.lineno})"
    except SecurityError as error:  # folded at compile time, e.g. a filter's huge width
        return f"the template is refused by the sandbox: {error}"
    for node in tree.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        name = node.attr if isinstance(node, jinja2.nodes.Getattr) else None
        if isinstance(node, jinja2.nodes.Getitem) and isinstance(node.arg, jinja2.nodes.Const):
            name = node.arg.value if isinstance(node.arg.value, str) else None
        if name is not None and (name.startswith("_") or name in _UNSAFE_NAMES):
            return f"the template reaches for {name!r}, which the sandbox forbids"
    for constant in tree.find_all(jinja2.nodes.Const):
        if _too_large(constant.value):
            return f"the template holds a number above {MAX_OUTPUT_CHARS}: {constant.value}"
    return None


# Attribute names the sandbox refuses at render time besides the `_` ones.
_UNSAFE_NAMES = frozenset(
    jinja2.sandbox.UNSAFE_FUNCTION_ATTRIBUTES
    | jinja2.sandbox.UNSAFE_METHOD_ATTRIBUTES
    | jinja2.sandbox.UNSAFE_GENERATOR_ATTRIBUTES
    | jinja2.sandbox.UNSAFE_COROUTINE_ATTRIBUTES
    | jinja2.sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
    | {"mro"}
)
_CHECKER = BudgetedSandbox(autoescape=False, undefined=jinja2.StrictUndefined)


def check_template(source: str) -> str | None:
    """`template_problem` in a plain budgeted sandbox (what an import checks)."""
    return template_problem(None, source)


def render_within_budget(
    template: jinja2.Template,
    context: Mapping[str, object],
    cpu_seconds: float = RENDER_CPU_SECONDS,
    max_chars: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render `template`, or TemplateRefused when it uses more than `cpu_seconds` of
    this thread's CPU time or writes more than `max_chars` characters."""
    ident = threading.get_ident()
    spent = _thread_cpu_clock(ident)
    start = spent()
    lock = threading.Lock()
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(_WATCH_INTERVAL_S):
            if spent() - start > cpu_seconds:
                with lock:
                    if not finished.is_set():
                        _raise_in(ident, _RenderBudgetExceeded)
                return

    watchdog = threading.Thread(target=watch, name="template-budget", daemon=True)
    watchdog.start()
    try:
        try:
            parts: list[str] = []
            size = 0
            stream: Iterator[str] = template.generate(**context)
            for part in stream:
                size += len(part)
                if size > max_chars:
                    raise TemplateRefused(f"the template writes more than {max_chars} characters")
                parts.append(part)
            return "".join(parts)
        finally:
            with lock:
                finished.set()
            _raise_in(ident, None)  # clear one raised too late to land, if any
    except _RenderBudgetExceeded:
        raise TemplateRefused(
            f"the template used more than {cpu_seconds:g} s of CPU time"
        ) from None
    except SecurityError as error:
        raise TemplateRefused(f"the template is refused by the sandbox: {error}") from None
    finally:
        watchdog.join()


def _thread_cpu_clock(ident: int) -> Callable[[], float]:
    """The CPU time of thread `ident` (Linux, most Unixes); elsewhere wall time."""
    try:
        clock = time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):
        return time.monotonic
    return lambda: time.clock_gettime(clock)


def _raise_in(ident: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exception) if exception else ctypes.c_void_p()
    )
