#!/usr/bin/env bash
# Runs the whole test suite N times in a row (default 20) and reports every
# failure by test binary and test name, to prove the suite does not flake:
#
#     bash tests/repeat.sh              # 20 runs of cargo test --workspace
#     bash tests/repeat.sh 5            # 5 runs
#     bash tests/repeat.sh 10 -p course-tests --test soak --test props
#                                       # 10 runs of just these tests
#
# Arguments after N go to `cargo test` instead of `--workspace`. Every run
# uses --no-fail-fast, so one failing test binary does not hide the others.
# A run that takes longer than REPEAT_TIMEOUT seconds (default 900) is
# stopped and counted as failed (where the `timeout` command exists).
# Logs of failed runs are kept; the last lines say where.
#
# Exit status 0 only if every run passed.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-20}
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash tests/repeat.sh [N] [cargo test arguments...]" >&2
  exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))
if [ $# -gt 0 ]; then
  selection=("$@")
else
  selection=(--workspace)
fi

limit=()
if command -v timeout >/dev/null 2>&1; then
  limit=(timeout "${REPEAT_TIMEOUT:-900}")
fi

logs=$(mktemp -d)

# The failing tests of one log, as `BINARY: TEST`. cargo names each test
# binary in a `Running` line before its results, so we remember the last one.
failures() {
  awk '
    /^ *Running / { bin = $2 }
    /^ *Doc-tests / { bin = "doc-tests " $2 }
    /^test .* \.\.\. FAILED$/ {
      name = $0
      sub(/^test /, "", name)
      sub(/ \.\.\. FAILED$/, "", name)
      print bin ": " name
    }
  ' "$1"
}

echo "building once..."
cargo test "${selection[@]}" --no-run --quiet || exit 1

failed_runs=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  log="$logs/run$i.log"
  if ${limit[@]+"${limit[@]}"} cargo test "${selection[@]}" --no-fail-fast >"$log" 2>&1; then
    echo "run $i/$runs: ok ($(( $(date +%s) - start )) s)"
    rm -f "$log"
  else
    status=$?
    failed_runs=$((failed_runs + 1))
    echo "run $i/$runs: FAILED ($(( $(date +%s) - start )) s, status $status); log: $log"
    if [ -n "$(failures "$log")" ]; then
      failures "$log" | sed 's/^/    /'
    else
      # No test reported a failure: a build error, a crash, or the time limit.
      [ "$status" -eq 124 ] && echo "    (stopped after ${REPEAT_TIMEOUT:-900} s)"
      tail -n 15 "$log" | sed 's/^/    | /'
    fi
  fi
done

echo
if [ "$failed_runs" -eq 0 ]; then
  echo "$runs/$runs runs passed"
  rmdir "$logs" 2>/dev/null
else
  echo "$((runs - failed_runs))/$runs runs passed; failing tests, with how often:"
  for log in "$logs"/run*.log; do failures "$log"; done | sort | uniq -c | sort -rn
  echo "logs of the failed runs: $logs"
  exit 1
fi
