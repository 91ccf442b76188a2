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
if ls js/*.test.mjs >/dev/null 2>&1; then node --test js/; fi
exec .venv/bin/python -m pytest "$@"
