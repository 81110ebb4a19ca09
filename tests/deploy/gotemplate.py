"""A renderer for the small subset of Helm's template language that deploy/helm/hostdev uses.

It exists so that the chart is rendered and checked by the test suite on machines without the
helm binary. Where helm is on PATH the tests render with helm as well and compare the two.

Supported, with Go text/template semantics:
- text, `{{ pipeline }}`, comments `{{/* ... */}}`, the trim markers `{{- ` and ` -}}`;
- `define` (top level), `if` / `else if` / `else`, `with` / `else`, `range` / `else` (lists, and
  maps in key order), `end`; variables `$name := pipeline`, `$` and `$name.Field`;
- pipelines with `|` and parentheses; string, integer and boolean literals, `nil`;
- functions: include, toYaml, nindent, indent, quote, default, toString, eq, ne, not, and, or,
  fail.
Anything else (another function, `template`, `block`, `tpl`, ...) is a TemplateError, so the chart
cannot drift outside the subset unnoticed. Where it differs from Helm it is stricter: printing a
map or list is an error (Helm prints Go's `map[...]`, never what a manifest wants).
Every case in test_gotemplate.py was compared once with Helm 4's own renderer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml


class TemplateError(Exception):
    """A template outside the subset, or one that fails to render."""


_ACTION = re.compile(r"\{\{(- )?(.*?)( -)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<op>:=|\||\(|\))
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<num>-?[0-9]+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)
_NO_VALUE = object()


@dataclass
class Arg:
    """One operand: a literal, `.a.b`, `$v.a.b`, a function name, or a parenthesised pipeline."""

    kind: str
    value: Any
    path: tuple[str, ...] = ()


Pipeline = list[list[Arg]]


@dataclass
class Node:
    """A parsed template node: text, output, assignment, or a control structure."""

    kind: str
    text: str = ""
    pipe: Pipeline = field(default_factory=list)
    var: str = ""
    body: list[Node] = field(default_factory=list)
    branches: list[tuple[Pipeline, list[Node]]] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def _chunks(source: str) -> Iterator[tuple[str, str]]:
    """Split a template into ("text", s) and ("action", s), applying the trim markers."""
    pos, pending_trim = 0, False
    pieces: list[tuple[str, str]] = []
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if pending_trim:
            text = text.lstrip(" \t\r\n")
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        pieces += [("text", text), ("action", match.group(2).strip())]
        pending_trim, pos = bool(match.group(3)), match.end()
    tail = source[pos:]
    pieces.append(("text", tail.lstrip(" \t\r\n") if pending_trim else tail))
    return iter(pieces)


def _tokens(text: str) -> list[tuple[str, str]]:
    """Tokenize the inside of an action."""
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise TemplateError(f"cannot parse {text[pos:]!r} in {{{{ {text} }}}}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _parse_pipeline(tokens: list[tuple[str, str]]) -> Pipeline:
    """Parse tokens into commands separated by `|`; parentheses nest pipelines."""
    commands: Pipeline = [[]]
    index = 0
    while index < len(tokens):
        kind, value = tokens[index]
        if value == "|" and kind == "op":
            commands.append([])
        elif value == "(" and kind == "op":
            depth, end = 1, index
            while depth:
                end += 1
                if end >= len(tokens):
                    raise TemplateError("unbalanced parenthesis")
                depth += {"(": 1, ")": -1}.get(tokens[end][1], 0) if tokens[end][0] == "op" else 0
            commands[-1].append(Arg("pipe", _parse_pipeline(tokens[index + 1 : end])))
            index = end
        else:
            commands[-1].append(_operand(kind, value))
        index += 1
    if any(not command for command in commands):
        raise TemplateError("empty command in pipeline")
    return commands


def _operand(kind: str, value: str) -> Arg:
    """One token as an operand."""
    if kind == "str":
        return Arg("lit", json.loads(value))
    if kind == "num":
        return Arg("lit", int(value))
    if kind == "field":
        return Arg("field", None, tuple(p for p in value.split(".") if p))
    if kind == "var":
        name, *path = value.split(".")
        return Arg("var", name, tuple(path))
    if kind == "word":
        literals = {"true": True, "false": False, "nil": None}
        return Arg("lit", literals[value]) if value in literals else Arg("func", value)
    raise TemplateError(f"unexpected {value!r}")


def parse(source: str) -> tuple[list[Node], dict[str, list[Node]]]:
    """Parse a template file into its output nodes and the templates it defines."""
    defines: dict[str, list[Node]] = {}
    root: list[Node] = []
    stack: list[tuple[Node, list[Node]]] = []
    current = root
    for kind, text in _chunks(source):
        if kind == "text":
            if text:
                current.append(Node("text", text=text))
            continue
        current = _parse_action(text, current, stack, defines, root)
    if stack:
        raise TemplateError(f"missing {{{{ end }}}} for {stack[-1][0].kind}")
    return root, defines


def _parse_action(
    text: str,
    current: list[Node],
    stack: list[tuple[Node, list[Node]]],
    defines: dict[str, list[Node]],
    root: list[Node],
) -> list[Node]:
    """Handle one action; return the node list that following nodes go into."""
    if text.startswith("/*"):
        if not text.endswith("*/"):
            raise TemplateError("unterminated comment")
        return current
    keyword, _, rest = text.partition(" ")
    tokens = _tokens(rest) if keyword in {"if", "with", "range", "define"} else []
    if keyword == "define":
        if current is not root or len(tokens) != 1 or tokens[0][0] != "str":
            raise TemplateError(f"bad define: {text!r}")
        node = Node("define", var=json.loads(tokens[0][1]))
        stack.append((node, current))
        return node.body
    if keyword in {"if", "with", "range"}:
        node = Node(keyword, branches=[(_parse_pipeline(tokens), [])])
        current.append(node)
        stack.append((node, current))
        return node.branches[0][1]
    if keyword == "else":
        return _parse_else(rest, stack)
    if keyword == "end":
        if not stack:
            raise TemplateError("{{ end }} without a block")
        node, parent = stack.pop()
        if node.kind == "define":
            defines[node.var] = node.body
        return parent
    if keyword in {"template", "block", "break", "continue"}:
        raise TemplateError(f"{keyword!r} is outside the supported subset")
    current.append(_output_or_assign(text))
    return current


def _parse_else(rest: str, stack: list[tuple[Node, list[Node]]]) -> list[Node]:
    """`else` or `else if PIPELINE` inside the innermost block."""
    if not stack or stack[-1][0].kind == "define":
        raise TemplateError("{{ else }} outside if/with/range")
    node = stack[-1][0]
    if rest.startswith("if "):
        if node.kind != "if":
            raise TemplateError("else if outside an if")
        node.branches.append((_parse_pipeline(_tokens(rest[3:])), []))
        return node.branches[-1][1]
    if rest.strip():
        raise TemplateError(f"unsupported else: {rest!r}")
    return node.orelse


def _output_or_assign(text: str) -> Node:
    """`$x := pipeline` or a pipeline whose value is printed."""
    tokens = _tokens(text)
    if len(tokens) > 2 and tokens[0][0] == "var" and tokens[1] == ("op", ":="):
        return Node("assign", var=tokens[0][1], pipe=_parse_pipeline(tokens[2:]))
    return Node("output", pipe=_parse_pipeline(tokens))


def truth(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings, lists and maps are false."""
    return bool(value)


def to_string(value: Any) -> str:
    """Sprig's toString for the values a chart holds."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _print(value: Any) -> str:
    """How text/template prints a value (Helm turns a missing value into "")."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise TemplateError(f"refusing to print a {type(value).__name__}; use toYaml")
    return to_string(value)


def to_yaml(value: Any) -> str:
    """Helm's toYaml: block-style YAML with sorted keys, without the final newline."""
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=True, allow_unicode=True)
    return text.removesuffix("\n...\n").removesuffix("\n")


def indent(width: int, text: str) -> str:
    """Sprig's indent: prefix every line with `width` spaces."""
    pad = " " * width
    return pad + text.replace("\n", "\n" + pad)


def _eq(first: Any, *others: Any) -> bool:
    """Go's eq: first equals any of the others; values of different kinds are an error."""
    for other in others:
        if first is None or other is None:
            continue
        if isinstance(first, str) != isinstance(other, str):
            raise TemplateError(f"incompatible types for comparison: {first!r}, {other!r}")
    return any(first == other for other in others)


def _default(fallback: Any, *given: Any) -> Any:
    """Sprig's default: the given value unless it is empty."""
    return given[0] if given and truth(given[0]) else fallback


def _quote(*values: Any) -> str:
    """Sprig's quote: each non-nil value as a double-quoted string."""
    return " ".join(json.dumps(to_string(v)) for v in values if v is not None)


def _fail(message: str) -> Any:
    raise TemplateError(f"fail: {message}")


_FUNCS: dict[str, Callable[..., Any]] = {
    "toYaml": to_yaml,
    "nindent": lambda width, text: "\n" + indent(width, text),
    "indent": indent,
    "quote": _quote,
    "default": _default,
    "toString": to_string,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "not": lambda value: not truth(value),
    "fail": _fail,
}


class Renderer:
    """Renders parsed templates against a context, with `include` for named templates."""

    def __init__(self, defines: dict[str, list[Node]]) -> None:
        self.defines = defines

    def render(self, nodes: list[Node], dot: Any) -> str:
        """Render nodes with `dot` as both `.` and `$`."""
        return self._block(nodes, dot, {"$": dot})

    def _block(self, nodes: list[Node], dot: Any, scope: dict[str, Any]) -> str:
        scope = dict(scope)
        return "".join(self._node(node, dot, scope) for node in nodes)

    def _node(self, node: Node, dot: Any, scope: dict[str, Any]) -> str:
        if node.kind == "text":
            return node.text
        if node.kind == "output":
            return _print(self._pipeline(node.pipe, dot, scope))
        if node.kind == "assign":
            scope[node.var] = self._pipeline(node.pipe, dot, scope)
            return ""
        if node.kind == "if":
            for pipe, body in node.branches:
                if truth(self._pipeline(pipe, dot, scope)):
                    return self._block(body, dot, scope)
            return self._block(node.orelse, dot, scope)
        value = self._pipeline(node.branches[0][0], dot, scope)
        body = node.branches[0][1]
        if not truth(value):
            return self._block(node.orelse, dot, scope)
        if node.kind == "with":
            return self._block(body, value, scope)
        items = [value[k] for k in sorted(value)] if isinstance(value, dict) else value
        if not isinstance(items, list):
            raise TemplateError(f"range over {type(value).__name__}")
        return "".join(self._block(body, item, scope) for item in items)

    def _pipeline(self, pipe: Pipeline, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = _NO_VALUE
        for command in pipe:
            value = self._command(command, dot, scope, value)
        return value

    def _command(self, command: list[Arg], dot: Any, scope: dict[str, Any], piped: Any) -> Any:
        head, args = command[0], command[1:]
        if head.kind != "func":
            if head.kind == "lit" and head.value is None:
                raise TemplateError("nil is not a command")
            if args or piped is not _NO_VALUE:
                raise TemplateError(f"{head} is not a function")
            return self._arg(head, dot, scope)
        if head.value in {"and", "or"}:
            return self._and_or(head.value, args, dot, scope, piped)
        values = [self._arg(arg, dot, scope) for arg in args]
        if piped is not _NO_VALUE:
            values.append(piped)
        if head.value == "include":
            return self._include(*values)
        if head.value not in _FUNCS:
            raise TemplateError(f"function {head.value!r} is outside the supported subset")
        return _FUNCS[head.value](*values)

    def _and_or(
        self, name: str, args: list[Arg], dot: Any, scope: dict[str, Any], piped: Any
    ) -> Any:
        """Go's and/or: evaluate left to right, stop at the first deciding operand."""
        value: Any = None
        operands: list[Any] = [*args] + ([Arg("lit", piped)] if piped is not _NO_VALUE else [])
        for arg in operands:
            value = self._arg(arg, dot, scope)
            if truth(value) == (name == "or"):
                return value
        return value

    def _include(self, name: str, data: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f"no template named {name!r}")
        return self.render(self.defines[name], data)

    def _arg(self, arg: Arg, dot: Any, scope: dict[str, Any]) -> Any:
        if arg.kind == "lit":
            return arg.value
        if arg.kind == "pipe":
            return self._pipeline(arg.value, dot, scope)
        if arg.kind == "field":
            return _lookup(dot, arg.path)
        if arg.kind == "var":
            if arg.value not in scope:
                raise TemplateError(f"undefined variable {arg.value}")
            return _lookup(scope[arg.value], arg.path)
        raise TemplateError(f"function {arg.value!r} used as a value")


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    """Field access on maps; a missing key is nil, a field of nil is an error."""
    for name in path:
        if value is None:
            raise TemplateError(f"nil pointer evaluating .{name}")
        if not isinstance(value, dict):
            raise TemplateError(f"can't evaluate field {name} in {type(value).__name__}")
        value = value.get(name)
    return value
