#!/usr/bin/env bash
# Runs the whole test suite N times in a row (default 20) and reports every
# failure by test name, to prove the suite does not flake:
#
#     bash tests/repeat.sh        # 20 runs
#     bash tests/repeat.sh 5      # 5 runs
#
# Exit status 0 only if every run passed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
logs=$(mktemp -d)

echo "building once..."
cargo test --workspace --no-run --quiet || exit 1

failed_runs=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if cargo test --workspace >"$logs/run$i.log" 2>&1; then
    echo "run $i/$runs: ok ($(( $(date +%s) - start )) s)"
  else
    failed_runs=$((failed_runs + 1))
    echo "run $i/$runs: FAILED ($(( $(date +%s) - start )) s); log: $logs/run$i.log"
    grep -E '^test .* FAILED$' "$logs/run$i.log" | sed 's/^/    /'
  fi
done

echo
if [ "$failed_runs" -eq 0 ]; then
  echo "$runs/$runs runs passed"
else
  echo "$((runs - failed_runs))/$runs runs passed; failing tests, with how often:"
  grep -h -E '^test .* FAILED$' "$logs"/run*.log | sort | uniq -c | sort -rn
  exit 1
fi
