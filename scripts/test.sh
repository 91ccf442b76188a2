#!/usr/bin/env bash
# Runs the whole test suite from a fresh machine: system packages (when CI is set), venv, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ]; then
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker-registry >/dev/null || need+=(docker-registry)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v node >/dev/null || need+=(nodejs)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
fi
bash scripts/setup.sh "[test]"
.venv/bin/ruff check launch_jupyter tests
.venv/bin/ruff format --check launch_jupyter tests benchmarks scripts hatch_build.py
if ls js/*.test.mjs >/dev/null 2>&1; then node --test js/; fi
# The tests need a PostgreSQL server ($LAUNCH_JUPYTER_TEST_PG, default 127.0.0.1:5432); on a machine
# where none answers, start a throwaway one for this run.
pg_answers() {
  .venv/bin/python - <<'PY'
import os, sys
import psycopg
from sqlalchemy.engine import make_url
url = os.environ.get("LAUNCH_JUPYTER_TEST_PG") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
try:
    psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                    connect_timeout=5).close()
except psycopg.Error:
    sys.exit(1)
PY
}
LJ_PG_DIR=
if ! pg_answers; then
  echo "no PostgreSQL server answers: starting a throwaway one for the tests" >&2
  eval "$(bash scripts/pg.sh)"
  trap 'bash scripts/pg.sh stop "$LJ_PG_DIR"' EXIT
fi
.venv/bin/python -m pytest --durations=30 "$@"
