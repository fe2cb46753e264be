#!/bin/sh
# shellcheck disable=SC2317,SC2031 # functions called through on_hosts, in subshells.
# Stops the processes runCDN.sh started on every host of the fleet file (replicas first, then
# the DNS servers): only a process its pid file names that is still that install's server.
# Usage: scripts/stopCDN.sh -p PORT -o ORIGIN -n NAME -u USER -i KEYFILE [-f FILE]
set -u
# shellcheck source=scripts/_cdn_common.sh
. "$(dirname "$0")/_cdn_common.sh"
parse_args "$@"
load_fleet
stop_host() { remote "stop $KIND"; }
rc=0
echo "stopping the replicas"
on_hosts stop_host "$(replica_hosts)" || rc=1
echo "stopping the DNS servers"
on_hosts stop_host "$(dns_hosts)" || rc=1
[ "$rc" = 0 ] && echo "stopped" || echo "some hosts could not be reached or stopped (above)" >&2
exit "$rc"
