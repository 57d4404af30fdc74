#!/usr/bin/env bash
# infra/cdk/check.sh: the CDK construct's checks (make construct-check).
#   npm ci (pinned lock; skipped while node_modules matches it), schema module freshness, tsc,
#   synth of the example app into a temp dir, the construct's refusals (example/selftest.ts),
#   diff against the committed templates,
#   cfn-lint (nothing reported) and checkov (no failed check) on every synthesized template.
#   ./check.sh --update   rewrites the committed templates from a fresh synth instead of diffing.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
CFN_LINT=${CFN_LINT:-$ROOT/dev/.venv/bin/cfn-lint}
CHECKOV=${CHECKOV:-$ROOT/dev/.venv-infra/bin/checkov}
update=false
[[ ${1:-} == --update ]] && update=true

started=$SECONDS
step() { printf '== %s (%ss)\n' "$1" $((SECONDS - started)); }

# npm ci wipes node_modules; redoing it only when the lock changed keeps a warm run fast.
stamp=node_modules/.ci-$(sha256sum package-lock.json | cut -c1-12)
if [[ ! -e $stamp ]]; then
  step "npm ci"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi

step "schema module is fresh"
node render-schema.mjs --check

step "tsc"
rm -rf build
./node_modules/.bin/tsc -p tsconfig.json

step "synth"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CDK_OUTDIR=$out node build/example/app.js

step "selftest (refusals and warnings)"
node build/example/selftest.js

# synthesized file -> committed copy
declare -A checked=(
  [UserConfirmedPipeline.template.json]=uc-pipeline.template.json
  [UserConfirmedPipelineOptions.template.json]=example/synth/UserConfirmedPipelineOptions.template.json
)
for f in "$out"/amplify-standin-*.template.json "$out"/amplifystandin*.nested.template.json; do
  checked[$(basename "$f")]=example/synth/$(basename "$f")
done

if $update; then
  step "update the committed templates"
  rm -f example/synth/*.json
  mkdir -p example/synth
  for f in "${!checked[@]}"; do cp "$out/$f" "${checked[$f]}"; done
else
  step "diff against the committed templates"
  committed=$( (ls uc-pipeline.template.json example/synth/*.json 2>/dev/null || true) | sort)
  expected=$(printf '%s\n' "${checked[@]}" | sort)
  if [[ $committed != "$expected" ]]; then
    echo "committed templates differ in number or names from the synth: run infra/cdk/check.sh --update" >&2
    diff <(echo "$committed") <(echo "$expected") >&2 || true
    exit 1
  fi
  status=0
  for f in "${!checked[@]}"; do
    diff -u "${checked[$f]}" "$out/$f" || status=1
  done
  if ((status)); then
    echo "the synthesized templates differ from the committed ones (above): if intended, run infra/cdk/check.sh --update" >&2
    exit 1
  fi
fi

templates=()
for f in "${!checked[@]}"; do templates+=("$out/$f"); done

step "cfn-lint"
lint=$("$CFN_LINT" "${templates[@]}") || { echo "$lint" >&2; exit 1; }
[[ -z $lint ]] || { echo "$lint" >&2; exit 1; }

step "checkov"
files=()
for t in "${templates[@]}"; do files+=(--file "$t"); done
"$CHECKOV" "${files[@]}" --framework cloudformation --skip-download --compact --quiet

step "ok"
