#!/bin/sh
# Each process of the fleet, running or not, and its health: runCDN.sh --status.
# Usage: scripts/statusCDN.sh -p PORT -u USER -i KEYFILE [-f FILE]
exec "$(dirname "$0")/runCDN.sh" --status "$@"
