#!/usr/bin/env bash
# `make run`: prepare the database and the demo, then start every process with honcho, each
# under scripts/keep_running.py (a process that dies is started again, and the log says so).
set -euo pipefail
cd "$(dirname "$0")/.."
export SIGNALBOX_PORT="${SIGNALBOX_PORT:-8000}"
PY=.venv/bin/python

echo "== checking PostgreSQL and Redis"
$PY scripts/preflight.py || exit 1

echo "== migrating the database"
$PY manage.py migrate --no-input >/dev/null || { echo "migrate failed: see the error above"; exit 1; }

echo "== planning the demo fleet (var/fleet.json)"
$PY -m fleet plan --config fleet/demo.yaml --out var/fleet.json

echo "== seeding the demo (safe to re-run)"
$PY manage.py seed_demo --fleet var/fleet.json

echo "== the demo's HAProxy config and traffic routes (var/haproxy.cfg)"
$PY manage.py seed_deployments --fleet var/fleet.json

echo "== the demo's scaling group (search in production, on the router's request rate)"
$PY manage.py seed_scaling --fleet var/fleet.json

echo "== starting web, worker, beat, the demo fleet and its vendor status page on :8950 (Ctrl-C stops them all)"
echo "   a process that dies is restarted by scripts/keep_running.py: see docs/operations.md"
exec .venv/bin/honcho start -f Procfile
