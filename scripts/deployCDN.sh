#!/bin/sh
# shellcheck disable=SC2317,SC2031 # functions called through on_hosts, in subshells.
# Copies the release (built with `deno task dist` if missing), websites.txt (next to the fleet
# file: the replicas' --preload list) and the admin token to every host of the fleet file, over
# ssh/scp. Idempotent: what a host already holds (same SHA-256) is not copied again.
# Usage: scripts/deployCDN.sh -p PORT -o ORIGIN -n NAME -u USER -i KEYFILE [-f FILE] [-t TOKEN]
set -u
# shellcheck source=scripts/_cdn_common.sh
. "$(dirname "$0")/_cdn_common.sh"
parse_args "$@"
load_fleet

if [ ! -f "$RELEASE" ]; then
  echo "no release at $RELEASE: building it (deno task dist)"
  (cd "$REPO" && ./deno task dist) || die "deno task dist failed"
  [ -f "$RELEASE" ] || die "deno task dist made no $RELEASE"
fi
REL_SHA=$(sha256sum "$RELEASE" | cut -d' ' -f1)
REL_MIB=$(($(wc -c <"$RELEASE") / 1048576))
WEB="$FLEETDIR/websites.txt"
WEB_SHA=-
[ -f "$WEB" ] && WEB_SHA=$(sha256sum "$WEB" | cut -d' ' -f1)

probe_host() { remote probe; }
echo "checking $(printf '%s\n' "$HOSTS" | grep -c .) hosts"
if ! on_hosts probe_host "$HOSTS"; then
  die "some hosts cannot be reached (above): nothing was changed on any host"
fi
i=0
while [ -f "$WORK/out.$((i + 1))" ]; do
  i=$((i + 1))
  mv "$WORK/out.$i" "$WORK/probe.$i"
done

if [ -n "$TOKEN" ]; then
  echo "admin token: the one given (-t or NEARCAST_ADMIN_TOKEN)"
else
  held=$(for f in "$WORK"/probe.*; do keyval TOKEN "$f"; done | grep -vx -e - | sort -u)
  case "$(printf '%s' "$held" | grep -c .)" in
    0)
      TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
      echo "admin token: generated, kept in each install folder's admin_token"
      ;;
    1)
      TOKEN=$held
      echo "admin token: the one the hosts hold"
      ;;
    *) die "the hosts hold different admin tokens (DIR/admin_token): pass -t TOKEN to set one" ;;
  esac
fi

install_host() {
  p="$WORK/probe.$HOSTNUM"
  dir=$(keyval DIR "$p")
  did=""
  if [ "$(keyval RELEASE "$p")" != "$REL_SHA" ]; then
    copy "$RELEASE" "$dir/.incoming.tar.gz" || return 1
    remote "install_release $REL_SHA" || return 1
    did="$did, $NAME copied ($REL_MIB MiB) and unpacked"
  fi
  have=$(keyval WEBSITES "$p")
  if [ "$have" != "$WEB_SHA" ]; then
    if [ "$WEB_SHA" = - ]; then
      remote drop_websites || return 1
      did="$did, websites.txt removed (none next to the fleet file)"
    else
      copy "$WEB" "$dir/websites.txt" || return 1
      did="$did, websites.txt copied"
    fi
  fi
  if [ "$(keyval TOKEN "$p")" != "$TOKEN" ]; then
    remote "set_token $(q "$TOKEN")" || return 1
    did="$did, admin token written"
  fi
  if [ -z "$did" ]; then
    echo "up to date in $dir: nothing copied"
  else
    echo "${did#, } in $dir"
  fi
}
echo "deploying $NAME"
if on_hosts install_host "$HOSTS"; then
  echo "deployed $NAME to every host"
else
  echo "deploy failed on some hosts (above); the others are deployed. Fix and run it again." >&2
  exit 1
fi
