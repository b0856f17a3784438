#!/usr/bin/env bash
# Lints the deployment files without Docker, a cluster or AWS access: hadolint on
# the Dockerfile, kubernetes-validate --strict on the Kubernetes manifest, and
# botocore's model of the AWS Batch API on the two request bodies. Each validator
# is also shown a deliberately broken copy, which it must reject.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-pytools.sh
PY=.tools/venv/bin/python
K8S_VERSIONS=(-k1.33.0 -k1.37.0)   # 1.33: backoffLimitPerIndex is GA; 1.37: newest schema shipped
K8S=deploy/kubernetes/indexed-job.yaml JOBDEF=deploy/aws-batch/job-definition.json SUBMIT=deploy/aws-batch/submit-job.json
log() { printf '[lint-deploy] %s\n' "$*" >&2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

log "hadolint --failure-threshold warning Dockerfile"
.tools/venv/bin/hadolint --no-color --failure-threshold warning Dockerfile

# kubernetes-validate exits 0 with a WARN line for a kind it has no schema for; count that as a failure.
k8s_validate() {
  local out rc=0
  out=$("$PY" -m kubernetes_validate --strict "${K8S_VERSIONS[@]}" "$1") || rc=$?
  printf '    %s\n' "${out//$'\n'/$'\n'    }" >&2
  [ "$rc" -eq 0 ] && ! grep -q '^WARN' <<<"$out"
}
log "kubernetes-validate --strict ${K8S_VERSIONS[*]} $K8S"
k8s_validate "$K8S"

# Checks request bodies against botocore's input shapes (types, required and unknown
# members, lengths), plus enum values, which ParamValidator leaves alone.
batch_validate() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
import botocore.session
from botocore.validate import ParamValidator
model = botocore.session.get_session().get_service_model('batch')
def enums(v, s, p):
    if s.type_name == 'structure' and isinstance(v, dict):
        for k in v.keys() & s.members.keys(): yield from enums(v[k], s.members[k], f'{p}.{k}')
    elif s.type_name == 'list' and isinstance(v, list):
        for i, x in enumerate(v): yield from enums(x, s.member, f'{p}[{i}]')
    elif getattr(s, 'enum', None) and isinstance(v, str) and v not in s.enum:
        yield f'Invalid value for parameter {p[1:]}, value: {v}, valid values: {", ".join(s.enum)}'
bad = 0
for arg in sys.argv[1:]:
    op, path = arg.split('=', 1)
    shape = model.operation_model(op).input_shape
    params = json.load(open(path))
    errors = ParamValidator().validate(params, shape).generate_report().splitlines()
    errors += list(enums(params, shape, ''))
    print(f'    {path}: batch {model.api_version} {op} input: ' + ('OK' if not errors else 'INVALID'), file=sys.stderr)
    for e in errors: print(f'      {e.strip()}', file=sys.stderr)
    bad |= bool(errors)
sys.exit(bad)
PYEOF
}
log "botocore batch model: $JOBDEF, $SUBMIT"
batch_validate "RegisterJobDefinition=$JOBDEF" "SubmitJob=$SUBMIT"

log "shard counts agree: completions/--shard-count, arrayProperties.size/BATCHIMG_SHARD_COUNT"
"$PY" - "$K8S" "$SUBMIT" <<'PYEOF'
import json, sys, yaml
job = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d['kind'] == 'Job'][0]
args = job['spec']['template']['spec']['containers'][0]['args']
assert str(job['spec']['completions']) == args[args.index('--shard-count') + 1], 'completions != --shard-count'
sub = json.load(open(sys.argv[2]))
env = {e['name']: e['value'] for e in sub['containerOverrides']['environment']}
assert str(sub['arrayProperties']['size']) == env['BATCHIMG_SHARD_COUNT'], 'size != BATCHIMG_SHARD_COUNT'
PYEOF

log "self-check: the validators must reject broken copies (ERROR/INVALID lines below are expected)"
sed 's/^  completionMode: Indexed$/&\n  notARealField: true/' "$K8S" >"$tmp/unknown-field.yaml"
sed 's/"type": "container"/"type": 42/' "$JOBDEF" >"$tmp/type-42.json"
sed 's/"type": "VCPU"/"type": "CPU"/' "$JOBDEF" >"$tmp/bad-enum.json"
if ! { grep -q notARealField "$tmp/unknown-field.yaml" && grep -q '"type": 42' "$tmp/type-42.json" \
  && grep -q '"CPU"' "$tmp/bad-enum.json"; }; then log "FAIL: could not make the broken copies"; exit 1; fi
printf 'FROM debian\nRUN apt-get install -y curl\n' >"$tmp/Dockerfile"
if .tools/venv/bin/hadolint --no-color --failure-threshold warning "$tmp/Dockerfile" >&2; then log "FAIL: hadolint passed an untagged FROM"; exit 1; fi
if k8s_validate "$tmp/unknown-field.yaml"; then log "FAIL: unknown field under Job spec accepted"; exit 1; fi
for f in type-42 bad-enum; do
  if batch_validate "RegisterJobDefinition=$tmp/$f.json"; then log "FAIL: $f.json accepted"; exit 1; fi
done
log "OK: Dockerfile, $K8S, $JOBDEF and $SUBMIT are valid; broken copies were rejected"
