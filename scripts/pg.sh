#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests (a fresh machine without the service) and prints
# the shell lines that point the tests at it:  eval "$(bash scripts/pg.sh)"
# Stop it with:  bash scripts/pg.sh stop DIR
set -euo pipefail
if [ "${1:-}" = stop ]; then
  dir=$2
  bin=$(cat "$dir/bin")
  as=(); [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
bin=$(find_bin)
if [ -z "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "no PostgreSQL server answers and none is installed: apt-get install postgresql (as root)" >&2
    exit 1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  bin=$(find_bin)
fi
dir=$(mktemp -d /tmp/lj-pg.XXXXXX)
echo "$bin" > "$dir/bin"
as=()
if [ "$(id -u)" = 0 ]; then  # initdb refuses root: the server runs as Debian's postgres user
  chown postgres "$dir"
  as=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >&2
"${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
echo "export LAUNCH_JUPYTER_TEST_PG=postgresql+psycopg://postgres@127.0.0.1:$port/test"
echo "LJ_PG_DIR=$dir"
