#!/usr/bin/env bash
# Make PostgreSQL and Redis run on loopback for the tests: install them from Debian's packages
# when absent (idempotent, fast when present), start them, create the test database.
# Prints the variables the test suite reads, for `eval "$(scripts/services.sh)"`.
set -euo pipefail
log() { echo "services: $*" >&2; }
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }

missing=""
command -v pg_ctlcluster >/dev/null 2>&1 || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ -n "$missing" ]; then
  log "installing$missing"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
fi

version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  log "starting PostgreSQL $version on 127.0.0.1:$port"
  pg_ctlcluster "$version" main start -o "-c listen_addresses=127.0.0.1" >&2
fi
for _ in $(seq 50); do as_postgres "pg_isready -q -h 127.0.0.1 -p $port" && break; sleep 0.2; done
as_postgres "psql -q -p $port -tc \"SELECT 1 FROM pg_roles WHERE rolname='dizuo'\"" | grep -q 1 \
  || as_postgres "psql -q -p $port -c \"CREATE ROLE dizuo LOGIN SUPERUSER PASSWORD 'dizuo'\"" >&2
as_postgres "psql -q -p $port -tc \"SELECT 1 FROM pg_database WHERE datname='dizuo_test'\"" | grep -q 1 \
  || as_postgres "createdb -p $port -O dizuo dizuo_test" >&2

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis on 127.0.0.1:6379"
  # As in production: an append-only file, written before each reply and flushed every second
  # (dizuo stages usage records in Redis only when Redis keeps one; docs/billing.md).
  mkdir -p /tmp/dizuo-redis
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --dir /tmp/dizuo-redis \
    --appendonly yes --appendfsync everysec >&2
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "export DIZUO_TEST_DATABASE_URL=postgresql+psycopg://dizuo:dizuo@127.0.0.1:$port/dizuo_test"
echo "export DIZUO_TEST_REDIS_URL=redis://127.0.0.1:6379/0"
