{{/* ---------------------------------------------------------------------------------------
Names and labels
--------------------------------------------------------------------------------------- */}}

{{/* The chart name, or nameOverride. */}}
{{- define "bitrix-sla-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name: release-chart, shortened to 63 characters. */}}
{{- define "bitrix-sla-connector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: (dict "context" $ "component" "worker") -> <fullname>-worker. */}}
{{- define "bitrix-sla-connector.componentName" -}}
{{- printf "%s-%s" (include "bitrix-sla-connector.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bitrix-sla-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Standard labels of every resource. */}}
{{- define "bitrix-sla-connector.labels" -}}
helm.sh/chart: {{ include "bitrix-sla-connector.chart" . }}
{{ include "bitrix-sla-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bitrix-sla-connector
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select the release's pods (never change them on upgrade). */}}
{{- define "bitrix-sla-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bitrix-sla-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: (dict "context" $ "component" "web"). */}}
{{- define "bitrix-sla-connector.componentLabels" -}}
{{ include "bitrix-sla-connector.labels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Selector labels of one component: (dict "context" $ "component" "web"). */}}
{{- define "bitrix-sla-connector.componentSelectorLabels" -}}
{{ include "bitrix-sla-connector.selectorLabels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bitrix-sla-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bitrix-sla-connector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bitrix-sla-connector.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------
Database mode
--------------------------------------------------------------------------------------- */}}

{{/* "true" when no PostgreSQL is configured: the embedded SQLite default, one pod. */}}
{{- define "bitrix-sla-connector.sqlite" -}}
{{- if not (or .Values.postgresql.enabled .Values.externalDatabase.url .Values.secrets.databaseUrl.useExisting) -}}
true
{{- end -}}
{{- end -}}

{{/* The component that serves HTTP: "server" (SQLite, `serve`) or "web" (PostgreSQL, gunicorn). */}}
{{- define "bitrix-sla-connector.httpComponent" -}}
{{- if include "bitrix-sla-connector.sqlite" . -}}server{{- else -}}web{{- end -}}
{{- end -}}

{{/* Service name of the Bitnami PostgreSQL dependency (its common.names.fullname + primary). */}}
{{- define "bitrix-sla-connector.postgresql.fullname" -}}
{{- $pg := .Values.postgresql -}}
{{- $fullname := "" -}}
{{- if $pg.fullnameOverride -}}
{{- $fullname = $pg.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "postgresql" $pg.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- $fullname = .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $fullname = printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- $fullname -}}
{{- end -}}

{{- define "bitrix-sla-connector.postgresql.host" -}}
{{- $fullname := include "bitrix-sla-connector.postgresql.fullname" . -}}
{{- if eq (default "standalone" .Values.postgresql.architecture) "replication" -}}
{{- printf "%s-primary" $fullname | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $fullname -}}
{{- end -}}
{{- end -}}

{{- define "bitrix-sla-connector.postgresql.port" -}}
{{- dig "primary" "service" "ports" "postgresql" 5432 .Values.postgresql -}}
{{- end -}}

{{/* DATABASE_URL (and what it is built from) as container env entries. */}}
{{- define "bitrix-sla-connector.databaseEnv" -}}
{{- if .Values.postgresql.enabled }}
{{- $auth := .Values.postgresql.auth | default dict }}
{{- /* The password stays out of the URL: the connector escapes it, so it may hold any character. */}}
- name: BITRIX_SLA_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "bitrix-sla-connector.postgresql.fullname" .) $auth.existingSecret }}
      key: {{ dig "secretKeys" "userPasswordKey" "password" $auth }}
- name: DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s@%s:%v/%s" (default "bitrix_sla" $auth.username) (include "bitrix-sla-connector.postgresql.host" .) (include "bitrix-sla-connector.postgresql.port" .) (default "bitrix_sla" $auth.database) | quote }}
{{- else if .Values.secrets.databaseUrl.useExisting }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.databaseUrl.secretName }}
      key: {{ .Values.secrets.databaseUrl.secretKey }}
{{- else if .Values.externalDatabase.url }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "bitrix-sla-connector.fullname" . }}
      key: databaseUrl
{{- else }}
- name: DATABASE_URL
  value: {{ printf "sqlite:///%s/bitrix-sla.db" (.Values.persistence.mountPath | trimSuffix "/") | quote }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------
Secrets
--------------------------------------------------------------------------------------- */}}

{{/* Names under `secrets` that instances refer to, one per line, sorted and unique. */}}
{{- define "bitrix-sla-connector.instanceSecretNames" -}}
{{- $names := list -}}
{{- range .Values.instances -}}
{{- $names = append $names .tokenSecret -}}
{{- if .webhookSecretSecret -}}
{{- $names = append $names .webhookSecretSecret -}}
{{- end -}}
{{- range $_, $name := .optionSecrets -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- $names | compact | uniq | sortAlpha | join "\n" -}}
{{- end -}}

{{/* The data of the chart's own Secret as YAML (key: base64), empty when nothing is stored. */}}
{{- define "bitrix-sla-connector.secretData" -}}
{{- if and .Values.externalDatabase.url (not .Values.secrets.databaseUrl.useExisting) }}
databaseUrl: {{ .Values.externalDatabase.url | b64enc | quote }}
{{- end }}
{{- if and (not .Values.secrets.adminToken.useExisting) .Values.secrets.adminToken.value }}
adminToken: {{ .Values.secrets.adminToken.value | b64enc | quote }}
{{- end }}
{{- range $name := splitList "\n" (include "bitrix-sla-connector.instanceSecretNames" $) | compact }}
{{- $entry := get $.Values.secrets $name | default dict }}
{{- if not $entry.useExisting }}
{{ $name }}: {{ default "" $entry.value | toString | b64enc | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where the helpdesk secrets are mounted as files. */}}
{{- define "bitrix-sla-connector.secretsDir" -}}/run/secrets/bitrix-sla{{- end -}}

{{/* ---------------------------------------------------------------------------------------
Mappings and settings
--------------------------------------------------------------------------------------- */}}

{{/* The mappings ConfigMap data as YAML: the bundled files, overridden or extended by
mappings.files. toYaml quotes each file whatever its text (an indented first line, blank lines
at the end, no final newline, CRLF), so the pods read it byte for byte. */}}
{{- define "bitrix-sla-connector.mappingsData" -}}
{{- $files := dict -}}
{{- range $path, $_ := .Files.Glob "files/mappings/*.yaml" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- range $name, $content := .Values.mappings.files -}}
{{- $_ := set $files $name $content -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/* The connector's settings file (keys as connector.settings reads them). */}}
{{- define "bitrix-sla-connector.settingsFile" -}}
{{- $c := .Values.config -}}
{{- $settings := dict
  "max_body_bytes" $c.maxBodyBytes
  "lease_seconds" $c.leaseSeconds
  "max_attempts" $c.maxAttempts
  "max_age_hours" $c.maxAgeHours
  "backoff_base_seconds" $c.backoffBaseSeconds
  "backoff_cap_seconds" $c.backoffCapSeconds
  "event_retention_days" $c.eventRetentionDays
  "reconcile_interval_seconds" $c.reconcileIntervalSeconds
  "worker_concurrency" $c.workerConcurrency
  "settle_seconds" $c.settleSeconds
  "settle_max_seconds" $c.settleMaxSeconds
  "group_commit" $c.groupCommit
-}}
{{- $dir := include "bitrix-sla-connector.secretsDir" . -}}
{{- $instances := list -}}
{{- range .Values.instances -}}
{{- $instance := dict "name" .name "kind" .kind "url" .url "token_file" (printf "%s/%s" $dir .tokenSecret) -}}
{{- if .webhookSecretSecret -}}
{{- $_ := set $instance "webhook_secret_file" (printf "%s/%s" $dir .webhookSecretSecret) -}}
{{- end -}}
{{- if hasKey . "verifyTls" -}}
{{- $_ := set $instance "verify_tls" .verifyTls -}}
{{- end -}}
{{- if hasKey . "timeoutSeconds" -}}
{{- $_ := set $instance "timeout_seconds" .timeoutSeconds -}}
{{- end -}}
{{- $options := deepCopy (default dict .options) -}}
{{- range $key, $name := .optionSecrets -}}
{{- $_ := set $options (printf "%s_file" $key) (printf "%s/%s" $dir $name) -}}
{{- end -}}
{{- with $options -}}
{{- $_ := set $instance "options" . -}}
{{- end -}}
{{- $instances = append $instances $instance -}}
{{- end -}}
{{- $_ := set $settings "instances" $instances -}}
{{- if .Values.backup.enabled -}}
{{- $_ := set $settings "backup_dir" (printf "%s/backups" (.Values.persistence.mountPath | trimSuffix "/")) -}}
{{- $_ := set $settings "backup_interval_hours" .Values.backup.intervalHours -}}
{{- $_ := set $settings "backup_keep" .Values.backup.keep -}}
{{- end -}}
{{- toYaml $settings -}}
{{- end -}}

{{/* Annotations that roll the pods when their configuration changes. */}}
{{- define "bitrix-sla-connector.checksums" -}}
{{- if not .Values.mappings.existingConfigMap }}
checksum/mappings: {{ include "bitrix-sla-connector.mappingsData" . | sha256sum }}
{{- end }}
checksum/settings: {{ include "bitrix-sla-connector.settingsFile" . | sha256sum }}
{{- with include "bitrix-sla-connector.secretData" . }}
checksum/secret: {{ . | sha256sum }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget's budget from a `<component>.pdb` value: minAvailable when set, else
maxUnavailable (1 when empty). 0 is a value, not "unset", for both. */}}
{{- define "bitrix-sla-connector.pdbBudget" -}}
{{- if or .minAvailable (eq (toString .minAvailable) "0") -}}
minAvailable: {{ .minAvailable }}
{{- else if or .maxUnavailable (eq (toString .maxUnavailable) "0") -}}
maxUnavailable: {{ .maxUnavailable }}
{{- else -}}
maxUnavailable: 1
{{- end -}}
{{- end -}}

{{/* prometheus.io annotations: (dict "context" $ "port" 8080). */}}
{{- define "bitrix-sla-connector.scrapeAnnotations" -}}
{{- if .context.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------
Pod parts shared by the server, web and worker pods
--------------------------------------------------------------------------------------- */}}

{{/* Environment of every connector container. */}}
{{- define "bitrix-sla-connector.env" -}}
- name: BITRIX_SLA_CONFIG
  value: /etc/bitrix-sla/settings/settings.yaml
- name: BITRIX_SLA_MAPPINGS
  value: /etc/bitrix-sla/mappings
{{- include "bitrix-sla-connector.databaseEnv" . }}
{{- if .Values.secrets.adminToken.useExisting }}
- name: BITRIX_SLA_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.adminToken.secretName }}
      key: {{ .Values.secrets.adminToken.secretKey }}
{{- else if .Values.secrets.adminToken.value }}
- name: BITRIX_SLA_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "bitrix-sla-connector.fullname" . }}
      key: adminToken
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volume mounts of every connector container (the caller adds its own). */}}
{{- define "bitrix-sla-connector.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: settings
  mountPath: /etc/bitrix-sla/settings
  readOnly: true
- name: mappings
  mountPath: /etc/bitrix-sla/mappings
  readOnly: true
{{- if .Values.instances }}
- name: helpdesk-secrets
  mountPath: {{ include "bitrix-sla-connector.secretsDir" . }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes of every connector pod (the caller adds its own). */}}
{{- define "bitrix-sla-connector.volumes" -}}
- name: tmp
  emptyDir: {}
- name: settings
  configMap:
    name: {{ include "bitrix-sla-connector.componentName" (dict "context" . "component" "settings") }}
- name: mappings
  configMap:
    name: {{ default (include "bitrix-sla-connector.componentName" (dict "context" . "component" "mappings")) .Values.mappings.existingConfigMap }}
{{- if .Values.instances }}
- name: helpdesk-secrets
  projected:
    defaultMode: 0440
    sources:
    {{- range $name := splitList "\n" (include "bitrix-sla-connector.instanceSecretNames" .) | compact }}
    {{- $entry := get $.Values.secrets $name | default dict }}
      - secret:
          name: {{ ternary $entry.secretName (include "bitrix-sla-connector.fullname" $) (default false $entry.useExisting) }}
          items:
            - key: {{ ternary $entry.secretKey $name (default false $entry.useExisting) }}
              path: {{ $name }}
    {{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Probes on the HTTP port: startup and liveness on /healthz, readiness on /readyz. */}}
{{- define "bitrix-sla-connector.httpProbes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.startupProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.startupProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.startupProbe.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
{{- end -}}

{{/* Pod-level fields shared by every connector pod: (dict "context" $ "values" .Values.web). */}}
{{- define "bitrix-sla-connector.podCommon" -}}
{{- $ := .context -}}
serviceAccountName: {{ include "bitrix-sla-connector.serviceAccountName" $ }}
automountServiceAccountToken: {{ $.Values.serviceAccount.automountServiceAccountToken }}
enableServiceLinks: false
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
{{- with $.Values.imagePullSecrets }}
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
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------
Guards: refuse configurations that would lose or corrupt data, or leak a secret
--------------------------------------------------------------------------------------- */}}

{{- define "bitrix-sla-connector.validateValues" -}}
{{- $sources := list -}}
{{- if .Values.postgresql.enabled }}{{ $sources = append $sources "postgresql.enabled" }}{{ end -}}
{{- if .Values.externalDatabase.url }}{{ $sources = append $sources "externalDatabase.url" }}{{ end -}}
{{- if .Values.secrets.databaseUrl.useExisting }}{{ $sources = append $sources "secrets.databaseUrl.useExisting" }}{{ end -}}
{{- if gt (len $sources) 1 -}}
{{- fail (printf "bitrix-sla-connector: choose ONE database, not %s" (join " and " $sources)) -}}
{{- end -}}
{{- if include "bitrix-sla-connector.sqlite" . -}}
{{- $why := list -}}
{{- if gt (int .Values.web.replicaCount) 1 }}{{ $why = append $why (printf "web.replicaCount=%v" .Values.web.replicaCount) }}{{ end -}}
{{- if gt (int .Values.worker.replicaCount) 1 }}{{ $why = append $why (printf "worker.replicaCount=%v" .Values.worker.replicaCount) }}{{ end -}}
{{- if .Values.web.autoscaling.enabled }}{{ $why = append $why "web.autoscaling.enabled" }}{{ end -}}
{{- if .Values.worker.autoscaling.enabled }}{{ $why = append $why "worker.autoscaling.enabled" }}{{ end -}}
{{- if $why -}}
{{- fail (printf "bitrix-sla-connector: SQLite runs in exactly one pod and a SQLite file must never be shared by several pods, but %s is set. Use PostgreSQL to scale out: externalDatabase.url, secrets.databaseUrl.useExisting or postgresql.enabled=true." (join ", " $why)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.backup.enabled (not (include "bitrix-sla-connector.sqlite" .)) -}}
{{- fail "bitrix-sla-connector: backup.enabled copies the SQLite store; with PostgreSQL use its own backups (pg_dump, or your database service's)" -}}
{{- end -}}
{{- if and .Values.secrets.databaseUrl.useExisting (not .Values.secrets.databaseUrl.secretName) -}}
{{- fail "bitrix-sla-connector: secrets.databaseUrl.useExisting needs secrets.databaseUrl.secretName" -}}
{{- end -}}
{{- if and .Values.secrets.adminToken.useExisting (not .Values.secrets.adminToken.secretName) -}}
{{- fail "bitrix-sla-connector: secrets.adminToken.useExisting needs secrets.adminToken.secretName" -}}
{{- end -}}
{{- range $index, $instance := .Values.instances -}}
{{- $options := $instance.options | default dict -}}
{{- range $key := list "password" "webhook_basic_password" "webhook_bearer_token" -}}
{{- if hasKey $options $key -}}
{{- fail (printf "bitrix-sla-connector: instances[%d].options.%s would write a secret into a ConfigMap; name a key under `secrets` in instances[%d].optionSecrets.%s instead" $index $key $index $key) -}}
{{- end -}}
{{- end -}}
{{- $refs := dict "tokenSecret" $instance.tokenSecret "webhookSecretSecret" ($instance.webhookSecretSecret | default "") -}}
{{- range $key, $name := $instance.optionSecrets -}}
{{- range $variant := list "" "_env" "_file" -}}
{{- if hasKey $options (printf "%s%s" $key $variant) -}}
{{- fail (printf "bitrix-sla-connector: instances[%d] gives options.%s%s and optionSecrets.%s; keep one" $index $key $variant $key) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $refs (printf "optionSecrets.%s" $key) $name -}}
{{- end -}}
{{- range $field := keys $refs | sortAlpha -}}
{{- $name := get $refs $field -}}
{{- if $name -}}
{{- if not (hasKey $.Values.secrets $name) -}}
{{- fail (printf "bitrix-sla-connector: instances[%d].%s refers to secrets.%s, which is not defined" $index $field $name) -}}
{{- end -}}
{{- $entry := get $.Values.secrets $name -}}
{{- if $entry.useExisting -}}
{{- if not (and $entry.secretName $entry.secretKey) -}}
{{- fail (printf "bitrix-sla-connector: secrets.%s.useExisting needs secretName and secretKey" $name) -}}
{{- end -}}
{{- else if not $entry.value -}}
{{- fail (printf "bitrix-sla-connector: secrets.%s has no value; set secrets.%s.value or useExisting with secretName/secretKey" $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
