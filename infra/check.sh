#!/usr/bin/env bash
# Offline static analysis of the Bicep templates with checkov.
#
#   infra/check.sh            # from anywhere; uses .venv-infra/bin/checkov if present
#   infra/check.sh DIR        # scan DIR instead of infra/ (used by tests/infra)
#   CHECKOV=/path/to/checkov infra/check.sh
#
# Exits non-zero when a check fails (every accepted finding carries a
# `checkov:skip=<ID>: <reason>` comment inside its resource) or when a template cannot be
# parsed: checkov itself would report parse errors but still exit 0.
# Setup: python3 -m venv .venv-infra && .venv-infra/bin/pip install -r requirements-infra.txt
set -euo pipefail

infra_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$infra_dir")"

checkov="${CHECKOV:-}"
if [[ -z "$checkov" ]]; then
  if [[ -x "$repo_dir/.venv-infra/bin/checkov" ]]; then
    checkov="$repo_dir/.venv-infra/bin/checkov"
  elif command -v checkov >/dev/null 2>&1; then
    checkov="$(command -v checkov)"
  else
    echo "checkov not found: create .venv-infra (see requirements-infra.txt) or set CHECKOV" >&2
    exit 2
  fi
fi

target="${1:-$infra_dir}"
if ! find "$target" -name '*.bicep' -print -quit | grep -q .; then
  echo "checkov: no .bicep files under $target" >&2
  exit 2
fi
report="$(mktemp -d)"
trap 'rm -rf "$report"' EXIT

# --skip-download: never contact the vendor platform (no network here, and not needed).
set +e
"$checkov" -d "$target" --framework bicep --skip-download --compact --quiet \
  -o cli -o json --output-file-path "console,$report/results.json"
status=$?
set -e

if [[ $status -ne 0 ]]; then
  echo "checkov: failed checks (exit $status)" >&2
  exit "$status"
fi

python3 - "$report/results.json" <<'PY'
import json
import sys

try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        data = json.load(fh)
except (OSError, ValueError) as exc:
    print(f"checkov: no readable JSON report ({exc})", file=sys.stderr)
    sys.exit(1)
reports = data if isinstance(data, list) else [data]
errors = 0
for report in reports:
    summary = report.get("summary", {})
    errors += int(summary.get("parsing_errors", 0))
    for path in report.get("results", {}).get("parsing_errors", []) or []:
        print(f"checkov: could not parse {path}", file=sys.stderr)
if errors:
    print(f"checkov: {errors} template(s) could not be parsed", file=sys.stderr)
    sys.exit(1)
PY
echo "checkov: no failed checks, all templates parsed"
