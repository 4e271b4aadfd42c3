#!/usr/bin/env bash
# The main step of the composite action (action.yml). Inputs arrive only as environment variables, never
# spliced into the script text. Exits with the command's exit code after the report and outputs are written.
set -uo pipefail

case "$ADAPTERCI_COMMAND" in
  check | train | eval | gate | release | promote | rollback | run | canary) ;;
  install)
    "$ADAPTERCI_EXE" --version
    exit $?
    ;;
  *)
    echo "::error::unknown command '$ADAPTERCI_COMMAND' (check|train|eval|gate|release|promote|rollback|run|canary|install)"
    exit 2
    ;;
esac
if [ -n "$ADAPTERCI_REGISTRY_INPUT" ]; then
  export ADAPTERCI_REGISTRY="$ADAPTERCI_REGISTRY_INPUT"
fi
read -r -a extra <<<"$ADAPTERCI_EXTRA_ARGS"
config=(--config "$ADAPTERCI_CONFIG")
run_dir=()
if [ -n "$ADAPTERCI_RUN_DIR_INPUT" ]; then
  run_dir=(--run-dir "$ADAPTERCI_RUN_DIR_INPUT")
fi
tmp="${RUNNER_TEMP:-/tmp}"
outputs="$tmp/adapterci-outputs.json"

if [ "$ADAPTERCI_COMMAND" = promote ] || [ "$ADAPTERCI_COMMAND" = rollback ] || [ "$ADAPTERCI_COMMAND" = canary ]; then
  # (canary writes its verdict and tables to the step summary itself)
  "$ADAPTERCI_EXE" "$ADAPTERCI_COMMAND" "${config[@]}" --json "${extra[@]}" | tee "$outputs"
  rc=${PIPESTATUS[0]}
else
  "$ADAPTERCI_EXE" "$ADAPTERCI_COMMAND" "${config[@]}" "${run_dir[@]}" "${extra[@]}"
  rc=$?
  # `run` already wrote the report and the step summary; the other commands get them here.
  summary=--summary
  if [ "$ADAPTERCI_COMMAND" = run ]; then summary=--no-summary; fi
  "$ADAPTERCI_EXE" report "${config[@]}" "${run_dir[@]}" --json "$summary" >"$outputs" ||
    echo "::warning::adapterci report could not be written"
fi

python - "$outputs" "$rc" <<'PY' >>"$GITHUB_OUTPUT"
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    data = {}
data = data if isinstance(data, dict) else {}
print(f"verdict={data.get('verdict') or ''}")
print(f"version={data.get('version') or ''}")
print(f"report-path={data.get('report') or ''}")
print(f"exit-code={sys.argv[2]}")
PY
if [ "$ADAPTERCI_COMMAND" = canary ] && [ "$rc" -eq 3 ]; then
  exit 0 # CONTINUE: the canary keeps serving; the exit-code output still says 3
fi
exit "$rc"
