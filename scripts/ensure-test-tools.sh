#!/usr/bin/env bash
# The Debian packages the test suite runs as real programs, installed when missing:
#   prometheus              promtool (rule checks and tests) and the server (integration test)
#   prometheus-alertmanager amtool (the Alertmanager config and its routes)
#   docker-compose          `docker-compose config` on the stack (no engine needed)
#   graphviz                dot, which draws `lienthong definitions graph --format svg`
#   libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
#                           WeasyPrint prints the forms as PDF (services/documents) with them
# As root (a fresh CI machine) they are installed with apt-get; otherwise the script
# says in one line what to run, and fails. (PostgreSQL: scripts/ensure-postgres.sh,
# which the tests call themselves.)
set -euo pipefail

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v dot >/dev/null || missing+=(graphviz)
for package in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
((${#missing[@]})) || exit 0

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "ensure-test-tools: missing ${missing[*]}: run \`sudo apt-get install -y --no-install-recommends ${missing[*]}\`" >&2
    exit 1
fi
echo "ensure-test-tools: installing ${missing[*]} with apt-get" >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
