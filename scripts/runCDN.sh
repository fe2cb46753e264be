#!/bin/sh
# shellcheck disable=SC2317,SC2031 # functions called through on_hosts, in subshells.
# Starts the fleet deployed by deployCDN.sh: the DNS servers, then the first replica, then the
# others (they join it), each detached with its pid file and log under its install folder
# (run/, logs/), binding its host's address; waits until each answers its health check.
# A failed run stops what it started. `--status` shows each process and its health instead.
# Usage: scripts/runCDN.sh -p PORT -o ORIGIN -n NAME -u USER -i KEYFILE [-f FILE] [-t TOKEN]
#        scripts/runCDN.sh --status -p PORT -u USER -i KEYFILE [-f FILE]
set -u
export EXTRA_USAGE=" [--status]"
# shellcheck source=scripts/_cdn_common.sh
. "$(dirname "$0")/_cdn_common.sh"
parse_args "$@"
WAIT=${NEARCAST_START_TIMEOUT:-120}

if [ "$STATUS" = 1 ]; then
  [ -n "$PORT" ] || die "-p PORT is required"
  load_fleet
  status_host() { remote "status $KIND"; }
  on_hosts status_host "$HOSTS" || exit 1
  down=$(cat "$WORK"/out.* | grep -c '^DOWN=')
  [ "$down" = 0 ] || {
    echo "$down process(es) down or not healthy"
    exit 3
  }
  echo "every process is running and healthy"
  exit 0
fi

require_run_args
load_fleet
ANNOUNCE=""
for line in $(dns_hosts | tr "$TAB" '|'); do
  host_fields "$(printf '%s' "$line" | tr '|' "$TAB")"
  ANNOUNCE="$ANNOUNCE $URLHOST:$H_CPORT"
done
ANNOUNCE=${ANNOUNCE# }
host_fields "$(replica_hosts | head -n 1)"
FIRST="http://$URLHOST:$PORT"

start_dns_host() { remote start_dns "WAIT=$WAIT" "ZONE=$ZONE" "TOKEN=$TOKEN"; }
start_replica_host() {
  join=$FIRST
  [ "$IDX" = 0 ] && join=""
  remote start_replica "WAIT=$WAIT" "TOKEN=$TOKEN" "ORIGIN=$ORIGIN" "ANNOUNCE=$ANNOUNCE" \
    "JOIN=$join" "ID=$H_ID" "LAT=$H_LAT" "LON=$H_LON" "PROV=$H_PROV"
}
stop_host() { remote "stop $KIND"; }

failed() {
  echo "run failed on: $(printf '%s' "$FAILED" | while IFS= read -r l; do
    host_fields "$l"
    printf '%s; ' "$LABEL"
  done)" >&2
  if [ -n "$STARTED" ]; then
    echo "stopping what this run started:" >&2
    on_hosts stop_host "$STARTED" >&2
  else
    echo "this run started nothing" >&2
  fi
  exit 1
}

trap 'echo "interrupted: stopCDN.sh stops what was started" >&2; exit 130' INT TERM
# Before starting anything: every host answers and holds the release.
ready_host() {
  remote probe >"$WORK/probe.$HOSTNUM" || {
    grep -v '^[A-Z_]*=' "$WORK/probe.$HOSTNUM"
    return 1
  }
  if [ "$(keyval RELEASE "$WORK/probe.$HOSTNUM")" = - ]; then
    echo "$NAME is not installed in $(keyval DIR "$WORK/probe.$HOSTNUM"): run deployCDN.sh first"
    return 1
  fi
}
echo "checking $(printf '%s\n' "$HOSTS" | grep -c .) hosts"
on_hosts ready_host "$HOSTS" >"$WORK/ready" || {
  grep -v ': ok$' "$WORK/ready" >&2
  die "nothing was started"
}
echo "starting the DNS servers"
on_hosts start_dns_host "$(dns_hosts)" || failed
echo "starting the first replica"
on_hosts start_replica_host "$(replica_hosts | head -n 1)" || failed
if [ "$(replica_hosts | grep -c .)" -gt 1 ]; then
  echo "starting the other replicas (joining $FIRST)"
  on_hosts start_replica_host "$(replica_hosts | tail -n +2)" || failed
fi
echo "the fleet is running: dig @DNS -p $PORT $ZONE"
