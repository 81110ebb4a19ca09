{{/*
Helpers. The templates use a small subset of Helm's template language (define/include,
if/else/with/range, and toYaml nindent indent quote default toString eq or and not) so that
tests/deploy can also render them without the helm binary.
*/}}

{{- define "hostdev.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride -}}
{{- end -}}

{{- define "hostdev.selectorLabels" -}}
app.kubernetes.io/name: hostdev
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hostdev.labels" -}}
{{ include "hostdev.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* "true" when hostdev gets a config file at all. */}}
{{- define "hostdev.hasConfig" -}}
{{- $c := .Values.config -}}
{{- if or $c.resources $c.permittedHostDevices $c.sriov $c.mediatedDevicesTypes $c.nodeMediatedDeviceTypes -}}
true
{{- end -}}
{{- end -}}

{{/* "true" when a native resource binds (bind: onStart) or resets (reset: true) devices. */}}
{{- define "hostdev.resourcesWrite" -}}
{{- range .Values.config.resources -}}
{{- if or (eq (toString .bind) "onStart") .reset -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when the pod must be privileged: see `privileged` in values.yaml. */}}
{{- define "hostdev.privileged" -}}
{{- $c := .Values.config -}}
{{- $mode := toString .Values.privileged -}}
{{- if not (or (eq $mode "auto") (eq $mode "always") (eq $mode "never")) -}}
{{- fail "privileged must be one of: auto, always, never" -}}
{{- end -}}
{{- if eq $mode "always" -}}
true
{{- else if eq $mode "auto" -}}
{{- if or $c.sriov $c.mediatedDevicesTypes $c.nodeMediatedDeviceTypes (include "hostdev.resourcesWrite" .) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hostdev.metricsAddress" -}}
{{- if .Values.metrics.enabled -}}
:{{ .Values.metrics.port }}
{{- else -}}
127.0.0.1:{{ .Values.metrics.port }}
{{- end -}}
{{- end -}}
