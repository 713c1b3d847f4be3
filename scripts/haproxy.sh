#!/usr/bin/env bash
# The demo's HAProxy in front of the production services (the Procfile's `router`).
# Without haproxy it idles (honcho stops everything when one process exits) and says why.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v haproxy >/dev/null 2>&1; then
  echo "router: haproxy is not installed: rollouts have no traffic router."
  echo "router: install it (apt-get install haproxy) and run make run again; see docs/deployments.md"
  exec sleep infinity
fi
if [ ! -f var/haproxy.cfg ]; then
  echo "router: var/haproxy.cfg is missing; run: .venv/bin/python manage.py seed_deployments"
  exec sleep infinity
fi
# Once the fleet answers, send its calls between services through HAProxy, and its preview
# traffic to each service's preview frontend (what a blue/green analysis reads).
.venv/bin/python manage.py seed_deployments --fleet var/fleet.json --route-fleet &
exec haproxy -db -f var/haproxy.cfg
