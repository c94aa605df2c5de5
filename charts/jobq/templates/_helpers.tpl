{{/*
Names and labels shared by every template.
*/}}

{{- define "jobq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified prefix of every resource name. Kept at most 40 characters so that
"<fullname>-worker-<queue>" stays a valid 63-character DNS label for queue names up to 15 characters
(and longer ones are checked in worker-deployments.yaml).
*/}}
{{- define "jobq.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jobq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "jobq.labels" -}}
helm.sh/chart: {{ include "jobq.chart" . }}
{{ include "jobq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jobq
{{- end }}

{{/* Labels that select this release's pods; add app.kubernetes.io/component per component. */}}
{{- define "jobq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jobq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jobq.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}{{ printf "%s@%s" $ref .Values.image.digest }}{{ else }}{{ $ref }}{{ end }}
{{- end }}

{{/* ServiceAccount of the API, workers and tests: no Kubernetes API access, no token mounted. */}}
{{- define "jobq.serviceAccountName" -}}
{{- include "jobq.fullname" . }}
{{- end }}

{{- define "jobq.operatorServiceAccountName" -}}
{{- printf "%s-operator" (include "jobq.fullname" .) }}
{{- end }}

{{/* Secret and key that hold REDIS_URL. */}}
{{- define "jobq.redisSecretName" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s-redis-url" (include "jobq.fullname" .) }}
{{- else if .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecret }}
{{- else }}
{{- printf "%s-redis-url" (include "jobq.fullname" .) }}
{{- end }}
{{- end }}

{{- define "jobq.redisSecretKey" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecretKey }}
{{- else }}
{{- "redis-url" }}
{{- end }}
{{- end }}

{{/* Whether the chart creates the REDIS_URL Secret itself. */}}
{{- define "jobq.createRedisSecret" -}}
{{- if or .Values.redis.enabled (not .Values.externalRedis.existingSecret) }}true{{ end }}
{{- end }}

{{/* REDIS_URL written into the chart-created Secret. */}}
{{- define "jobq.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-redis:6379/0" (include "jobq.fullname" .) }}
{{- else }}
{{- .Values.externalRedis.url }}
{{- end }}
{{- end }}

{{/* Whether API tokens are configured (auth on). */}}
{{- define "jobq.authEnabled" -}}
{{- if or .Values.api.auth.existingSecret .Values.api.auth.tokens }}true{{ end }}
{{- end }}

{{- define "jobq.authSecretName" -}}
{{- default (printf "%s-api-tokens" (include "jobq.fullname" .)) .Values.api.auth.existingSecret }}
{{- end }}

{{- define "jobq.authSecretKey" -}}
{{- if .Values.api.auth.existingSecret }}
{{- .Values.api.auth.existingSecretKey }}
{{- else }}
{{- "tokens" }}
{{- end }}
{{- end }}

{{/*
The bundled Valkey's maxmemory: redis.maxmemory when set, else 80 % of the container's memory
limit in bytes (a Kubernetes quantity: plain bytes or K/M/G/T, Ki/Mi/Gi/Ti), so Valkey refuses
writes before the kernel kills it at the limit.
*/}}
{{- define "jobq.redisMaxmemory" -}}
{{- $given := toString (.Values.redis.maxmemory | default "") }}
{{- if $given }}
{{- $given }}
{{- else }}
{{- $limit := toString (dig "limits" "memory" "" (.Values.redis.resources | default dict)) }}
{{- $quantity := "^([0-9]+)([KMGT]i?)?$" }}
{{- if not (regexMatch $quantity $limit) }}
{{- fail (printf `redis.maxmemory is empty and redis.resources.limits.memory (%q) is not a whole quantity such as 512Mi: set redis.maxmemory (e.g. "400mb", or "0" for none)` $limit) }}
{{- end }}
{{- $units := dict "" 1 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- $bytes := mul (atoi (regexReplaceAll $quantity $limit "${1}")) (get $units (regexReplaceAll $quantity $limit "${2}")) }}
{{- div (mul $bytes 4) 5 }}
{{- end }}
{{- end }}

{{/*
JOBQ_API_ALLOWED_HOSTS: the names the API answers to (a foreign Host gets 400, against DNS
rebinding). Its Service's names in the cluster, localhost (kubectl port-forward), each Ingress
host (a rule without a host matches any, so it allows "*"), and api.allowedHosts. IP addresses
always pass, as kubelet probes and Prometheus send the pod's IP.
*/}}
{{- define "jobq.apiAllowedHosts" -}}
{{- $svc := printf "%s-api" (include "jobq.fullname" .) }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list "localhost" $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}
{{- $hosts = append $hosts (.host | default "*") }}
{{- end }}
{{- end }}
{{- join "," (uniq (concat $hosts .Values.api.allowedHosts)) }}
{{- end }}

{{/* Secret and key of the token the API ServiceMonitor scrapes /metrics with (auth on). */}}
{{- define "jobq.metricsTokenSecretName" -}}
{{- $given := .Values.metrics.serviceMonitor.tokenSecret | default dict }}
{{- if $given.name }}
{{- $given.name }}
{{- else }}
{{- include "jobq.authSecretName" . }}
{{- end }}
{{- end }}

{{- define "jobq.metricsTokenSecretKey" -}}
{{- $given := .Values.metrics.serviceMonitor.tokenSecret | default dict }}
{{- if $given.name }}
{{- $given.key | default "token" }}
{{- else if .Values.api.auth.existingSecret }}
{{- .Values.api.auth.existingSecretKey }}
{{- else }}
{{- "metrics-token" }}
{{- end }}
{{- end }}

{{/*
Refuse contradictory settings early, with a message naming the value to change.
*/}}
{{- define "jobq.validate" -}}
{{- if .Values.redis.enabled }}
{{- if .Values.externalRedis.cluster }}
{{- fail "externalRedis.cluster=true needs redis.enabled=false: the bundled Valkey is single-node" }}
{{- end }}
{{- if or .Values.externalRedis.url .Values.externalRedis.existingSecret }}
{{- fail "externalRedis.url/existingSecret are set but redis.enabled=true: set redis.enabled=false to use an external Redis" }}
{{- end }}
{{- else }}
{{- if and .Values.externalRedis.url .Values.externalRedis.existingSecret }}
{{- fail "set only one of externalRedis.url and externalRedis.existingSecret" }}
{{- end }}
{{- if not (or .Values.externalRedis.url .Values.externalRedis.existingSecret) }}
{{- fail "redis.enabled=false needs externalRedis.url or externalRedis.existingSecret" }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not .Values.operator.enabled) }}
{{- fail "autoscaling.enabled=true needs operator.enabled=true (the operator does the scaling)" }}
{{- end }}
{{- $apiStop := add (int .Values.api.preStopSleepSeconds) 10 }}
{{- if lt (int .Values.worker.terminationGracePeriodSeconds) $apiStop }}
{{- fail (printf "api.preStopSleepSeconds (%d) + the API's 10 s request drain must fit in worker.terminationGracePeriodSeconds (%d)" (int .Values.api.preStopSleepSeconds) (int .Values.worker.terminationGracePeriodSeconds)) }}
{{- end }}
{{- end }}

{{/* Environment shared by every jobq container. */}}
{{- define "jobq.env" -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "jobq.redisSecretName" . }}
      key: {{ include "jobq.redisSecretKey" . }}
- name: JOBQ_TASKS
  value: {{ .Values.tasks.modules | quote }}
- name: JOBQ_LOG_FORMAT
  value: json
- name: JOBQ_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: JOBQ_LEASE_S
  value: {{ .Values.config.leaseSeconds | int64 | quote }}
- name: JOBQ_KEY_PREFIX
  value: {{ .Values.config.keyPrefix | quote }}
- name: JOBQ_ACK_REPLICAS
  value: {{ .Values.config.ackReplicas | int64 | quote }}
{{- if not .Values.redis.enabled }}
{{- if .Values.externalRedis.cluster }}
- name: JOBQ_REDIS_CLUSTER
  value: "true"
{{- end }}
{{- if .Values.externalRedis.tls }}
- name: JOBQ_REDIS_TLS
  value: "true"
{{- end }}
{{- with .Values.externalRedis.passwordSecret.name }}
- name: JOBQ_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.externalRedis.passwordSecret.key }}
{{- end }}
{{- end }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* JOBQ_API_TOKENS, only where a process needs it (API and helm test). */}}
{{- define "jobq.authEnv" -}}
{{- if include "jobq.authEnabled" . }}
- name: JOBQ_API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "jobq.authSecretName" . }}
      key: {{ include "jobq.authSecretKey" . }}
{{- end }}
{{- end }}

{{/* Roll pods when a chart-created Secret changes. */}}
{{- define "jobq.secretChecksum" -}}
checksum/secrets: {{ printf "%s|%s" (include "jobq.redisUrl" .) (join "," .Values.api.auth.tokens) | sha256sum }}
{{- end }}

{{/* The read-only root filesystem leaves /tmp as the one writable place (also the working
directory, so relative paths in settings resolve there). */}}
{{- define "jobq.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "jobq.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{/* Pod-level scheduling and pull settings; call with a dict of root and component values. */}}
{{- define "jobq.podScheduling" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* OTEL_* variables of one component (dict "root" $ "service" "jobq-api"); none without an endpoint. */}}
{{- define "jobq.tracingEnv" -}}
{{- $t := .root.Values.tracing -}}
{{- if $t.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $t.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $t.protocol | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $t.sampler | quote }}
{{- with $t.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ include "jobq.resourceAttributes" .root | quote }}
- name: JOBQ_TRACE_PROPAGATION
  value: {{ $t.propagation | quote }}
{{- end }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: the namespace, then the values' own, as key=value pairs. */}}
{{- define "jobq.resourceAttributes" -}}
{{- $pairs := list (printf "k8s.namespace.name=%s" .Release.Namespace) -}}
{{- range $k, $v := .Values.tracing.resourceAttributes }}
{{- $pairs = append $pairs (printf "%s=%s" $k (toString $v)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end }}
