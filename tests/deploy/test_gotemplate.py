"""The Helm-subset renderer used to render the chart without helm: Go template semantics."""

from __future__ import annotations

from typing import Any

import pytest
from gotemplate import Renderer, TemplateError, parse


def render(source: str, data: Any, extra_defines: str = "") -> str:
    """Render one template (plus optional defines) against data."""
    nodes, defines = parse(source)
    _, more = parse(extra_defines)
    return Renderer({**defines, **more}).render(nodes, data)


CASES = [
    ("text", "plain", {}, "plain"),
    ("field", "{{ .a.b }}", {"a": {"b": "x"}}, "x"),
    ("missing-key-prints-nothing", "[{{ .a.zzz }}]", {"a": {}}, "[]"),
    ("int-and-bool", "{{ .n }} {{ .t }}", {"n": 9477, "t": False}, "9477 false"),
    ("trim-left", "a  \n  {{- .x }}", {"x": "b"}, "ab"),
    ("trim-right", "{{ .x -}}  \n  c", {"x": "b"}, "bc"),
    ("comment", "a{{/* nothing */}}b", {}, "ab"),
    ("if-else-if", "{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}", {"b": 1}, "B"),
    ("if-empty-list-false", "{{ if .l }}yes{{ else }}no{{ end }}", {"l": []}, "no"),
    ("with-rebinds-dot", "{{ with .a }}{{ .b }}{{ end }}", {"a": {"b": "in"}}, "in"),
    ("with-else", "{{ with .a }}x{{ else }}none{{ end }}", {"a": {}}, "none"),
    ("range-list", "{{ range .l }}[{{ . }}]{{ end }}", {"l": [1, 2]}, "[1][2]"),
    ("range-map-sorted", "{{ range .m }}{{ . }}{{ end }}", {"m": {"b": 2, "a": 1}}, "12"),
    ("range-root-var", "{{ range .l }}{{ $.p }}{{ . }}{{ end }}", {"l": [1], "p": "p"}, "p1"),
    ("variable", "{{ $v := .a }}{{ $v.b }}", {"a": {"b": "vb"}}, "vb"),
    ("pipe-default", '{{ .x | default "d" }}', {"x": ""}, "d"),
    ("default-given", '{{ default "d" .x }}', {"x": "given"}, "given"),
    ("quote", "{{ .v | quote }}", {"v": 'a"b'}, '"a\\"b"'),
    ("nindent", "k:{{ .v | nindent 2 }}", {"v": "a\nb"}, "k:\n  a\n  b"),
    ("indent", "{{ indent 1 .v }}", {"v": "a\nb"}, " a\n b"),
    ("toYaml-sorted", "{{ toYaml .m }}", {"m": {"b": 1, "a": [1]}}, "a:\n- 1\nb: 1"),
    ("toString-nil", "{{ toString .missing }}", {}, "<nil>"),
    ("eq", '{{ if eq .s "x" "y" }}T{{ end }}', {"s": "y"}, "T"),
    ("ne", '{{ if ne .s "x" }}T{{ end }}', {"s": "y"}, "T"),
    ("not", "{{ not .f }}", {"f": ""}, "true"),
    ("and-returns-deciding", "{{ and .a .b }}", {"a": "A", "b": ""}, ""),
    ("or-returns-first-true", "{{ or .a .b .c }}", {"a": "", "b": "B", "c": "C"}, "B"),
    ("or-short-circuits", "{{ or .a .a.b }}", {"a": "set"}, "set"),
    ("parens", '{{ if (eq (toString .x) "true") }}T{{ end }}', {"x": True}, "T"),
    ("literal-true-false", "{{ if true }}x{{ end }}{{ if false }}y{{ end }}", {}, "x"),
    ("eq-nil-is-false", '{{ eq .missing "1" }}', {}, "false"),
]


@pytest.mark.parametrize(
    ("source", "data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_renders_like_go_templates(source: str, data: Any, expected: str) -> None:
    assert render(source, data) == expected


def test_include_passes_data_and_defines_are_not_output() -> None:
    defines = '{{- define "greet" -}}hi {{ .name }}{{- end -}}'
    assert render('{{ include "greet" .p | quote }}', {"p": {"name": "n"}}, defines) == '"hi n"'
    assert render(defines, {}) == ""


ERRORS = [
    ("unknown-function", "{{ upper .x }}", "outside the supported subset"),
    ("template-keyword", '{{ template "x" . }}', "outside the supported subset"),
    ("missing-end", "{{ if .x }}a", "missing {{ end }}"),
    ("stray-end", "{{ end }}", "without a block"),
    ("stray-else", "{{ else }}", "outside if/with/range"),
    ("else-if-in-range", "{{ range .l }}{{ else if .x }}{{ end }}", "else if outside an if"),
    ("nil-pointer", "{{ .a.b }}", "nil pointer"),
    ("field-of-string", "{{ .s.b }}", "can't evaluate field"),
    ("print-map", "{{ .m }}", "use toYaml"),
    ("eq-different-kinds", '{{ eq .n "1" }}', "incompatible types"),
    ("nil-command", "{{ nil }}", "nil is not a command"),
    ("unknown-include", '{{ include "nope" . }}', "no template named"),
    ("undefined-variable", "{{ $nope }}", "undefined variable"),
    ("fail", '{{ fail "stop here" }}', "fail: stop here"),
    ("bad-token", "{{ .a ! }}", "cannot parse"),
    ("unbalanced", "{{ (eq .a .b }}", "unbalanced"),
    ("range-over-string", "{{ range .s }}x{{ end }}", "range over str"),
    ("nested-define", '{{ if .x }}{{ define "a" }}{{ end }}{{ end }}', "bad define"),
    ("unterminated-comment", "{{/* open }}", "unterminated comment"),
]


@pytest.mark.parametrize(("source", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_rejects_with_a_clear_error(source: str, message: str) -> None:
    data = {"a": None, "s": "str", "m": {"k": 1}, "n": 1, "l": [1], "x": 1}
    with pytest.raises(TemplateError, match=message):
        render(source, data)
