{{/* Names, labels and the parts every Signalbox pod shares. */}}

{{- define "signalbox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "signalbox.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "signalbox.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "signalbox.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: RELEASE-signalbox-web, -worker, -beat, -migrate. */}}
{{- define "signalbox.component" -}}
{{- printf "%s-%s" (include "signalbox.fullname" .root | trunc 55 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "signalbox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signalbox.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "signalbox.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "signalbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: signalbox
{{- end -}}

{{- define "signalbox.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret that holds the four required keys; it is never created by this chart. */}}
{{- define "signalbox.secretName" -}}
{{- required "secrets.existingSecret: name a Secret you created with the keys secrets.keys lists (docs/operations.md, Kubernetes)" .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "signalbox.allowedHosts" -}}
{{- if not .Values.config.allowedHosts -}}
{{- fail "config.allowedHosts: list the host names Signalbox is reached by (e.g. [signalbox.example.com]); Django refuses every other Host" -}}
{{- end -}}
{{- join "," .Values.config.allowedHosts -}}
{{- end -}}

{{/* SIGNALBOX_BASE_URL: set, or the first Ingress host (https when it has TLS). */}}
{{- define "signalbox.baseUrl" -}}
{{- if .Values.config.baseUrl -}}
{{- .Values.config.baseUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.ingress.tls))) .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/*
The environment of every process, in docker-compose.yml's order and with its names
(deploy/tests/test_helm_chart.py compares them), then the component's own.
*/}}
{{- define "signalbox.env" -}}
{{- $secret := include "signalbox.secretName" .root -}}
{{- $v := .root.Values -}}
- name: SIGNALBOX_ENV
  value: production
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $v.secrets.keys.databaseUrl | quote }}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $v.secrets.keys.redisUrl | quote }}}
- name: ALLOWED_HOSTS
  value: {{ include "signalbox.allowedHosts" .root | quote }}
- name: CSRF_TRUSTED_ORIGINS
  value: {{ join "," $v.config.csrfTrustedOrigins | quote }}
- name: SECURE_SSL_REDIRECT
  value: {{ $v.config.secureSslRedirect | toString | quote }}
- name: SECRET_KEY_FILE
  value: /run/secrets/signalbox_secret_key
- name: SIGNALBOX_ENCRYPTION_KEY_FILE
  value: /run/secrets/signalbox_encryption_key
{{- with include "signalbox.baseUrl" .root }}
- name: SIGNALBOX_BASE_URL
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .extra }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name := keys $v.config.extraEnv | sortAlpha }}
- name: {{ $name }}
  value: {{ get $v.config.extraEnv $name | toString | quote }}
{{- end }}
{{- range $v.config.extraSecretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef: {name: {{ .secretName | quote }}, key: {{ .key | quote }}}
{{- end }}
{{- end -}}

{{/* The two key files, where docker-compose.yml's secrets put them (/run/secrets/...). */}}
{{/* The Secret's files; (dict "root" . "admin" true) adds the first admin's password
     (the migrations Job's only). */}}
{{- define "signalbox.secretVolume" -}}
{{- $v := .root.Values -}}
- name: secrets
  secret:
    secretName: {{ include "signalbox.secretName" .root | quote }}
    # 0440 (the pod's fsGroup reads, nobody writes); 0444 without an fsGroup, whose files
    # would be root's and unreadable by the image's user otherwise.
    defaultMode: {{ ternary 288 292 (hasKey $v.podSecurityContext "fsGroup") }}
    items:
      - {key: {{ $v.secrets.keys.secretKey | quote }}, path: signalbox_secret_key}
      - {key: {{ $v.secrets.keys.encryptionKey | quote }}, path: signalbox_encryption_key}
      {{- if .admin }}
      - {key: {{ $v.secrets.keys.adminPassword | quote }}, path: signalbox_admin_password}
      {{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "signalbox.secretMounts" -}}
- {name: secrets, mountPath: /run/secrets, readOnly: true}
- {name: tmp, mountPath: /tmp}
{{- end -}}

{{/* Pod-level settings shared by every component. */}}
{{- define "signalbox.podSpec" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.serviceAccountName }}
serviceAccountName: {{ .Values.serviceAccountName }}
{{- end }}
# Signalbox never calls the Kubernetes API.
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
What a kubelet's probe must send to be answered like a user's request: a Host Django
accepts (kubelets send the pod's IP, which ALLOWED_HOSTS does not list: 400) and the
proxy's X-Forwarded-Proto (with SECURE_SSL_REDIRECT on, a plain-HTTP probe gets a 301,
which Kubernetes counts as success whatever /readyz would have said).
*/}}
{{- define "signalbox.probeHeaders" -}}
{{- $host := .Values.web.probeHost -}}
{{- if not $host -}}
{{- $_ := include "signalbox.allowedHosts" . -}}
{{- $host = first .Values.config.allowedHosts | default "" | toString | trimPrefix "." -}}
{{- if eq $host "*" }}{{ $host = "localhost" }}{{ end -}}
{{- end -}}
- {name: Host, value: {{ $host | quote }}}
- {name: X-Forwarded-Proto, value: https}
{{- end -}}
