#!/usr/bin/env bash
# The main job on the embedded default (SQLite store + local-process resource), from a fresh machine:
# create a queue, submit the quickstart notebook with a parameter, run an agent until idle,
# print the run with its history and the path of the executed notebook.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DEMO=${DEMO_DIR:-$PWD/.demo}
rm -rf "$DEMO"
export XDG_DATA_HOME="$DEMO/data" XDG_CONFIG_HOME="$DEMO/config"
unset LAUNCH_JUPYTER_DB LAUNCH_JUPYTER_CONFIG
lj() { .venv/bin/launch-jupyter "$@"; }

lj queue create demo --resource local-process
out=$(lj submit examples/notebooks/quickstart.ipynb -q demo -p name=README -p n 5)
echo "$out"
run_id=$(echo "$out" | awk '/^queued run/ {print $3}')
lj agent -q demo --until-idle --poll-interval 0.5
lj run show "$run_id"
state=$(lj run show "$run_id" --json | .venv/bin/python -c 'import json,sys; r=json.load(sys.stdin); print(r["state"]); print("executed notebook:", r["output_notebook"], file=sys.stderr)')
test "$state" = succeeded
