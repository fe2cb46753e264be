#!/bin/sh
# shellcheck disable=SC2317,SC2031,SC2013 # functions called through on_hosts, in subshells.
# Copies the release (built with `deno task dist` if missing), websites.txt (next to the fleet
# file: the replicas' --preload list) and the admin token to every host of the fleet file, with
# rsync when both ends have it (the unpacked tree; files the host's current release holds alike are
# hard-linked, not sent), else over ssh (the tarball). Idempotent: what a host already holds (same
# SHA-256) is not copied again. The new release becomes DIR/current, the one before DIR/previous;
# older ones are removed. NEARCAST_COPY=ssh or =rsync forces one way.
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

# rsync_release DIR CURRENT: the release tree to DIR/.incoming, hard-linking what DIR/CURRENT
# holds alike; prints what it sent.
rsync_release() {
  link=""
  [ "$2" != - ] && link="--link-dest=$1/$2"
  # shellcheck disable=SC2086 # $link: one word or none.
  rsync -rlptD --delete --stats $link -e "ssh -F $WORK/ssh_config -p $H_PORT" \
    "$WORK/tree/$NAME/" "$SSH_USER@$H_SSH:$1/.incoming/" >"$WORK/rsync.$HOSTNUM" 2>&1 || {
    echo "rsync to $H_SSH:$1 failed: $(grep -v '^$' "$WORK/rsync.$HOSTNUM" | tail -n 3)"
    return 1
  }
  files=$(sed -n 's/^Number of regular files transferred: *\([0-9,]*\).*/\1/p' "$WORK/rsync.$HOSTNUM" | tr -d ,)
  all=$(sed -n 's/^Number of files: .*reg: *\([0-9,]*\).*/\1/p' "$WORK/rsync.$HOSTNUM" | tr -d ,)
  bytes=$(sed -n 's/^Total bytes sent: *\([0-9,]*\).*/\1/p' "$WORK/rsync.$HOSTNUM" | tr -d ,)
  echo "$files of $all files sent, $((${bytes:-0} / 1048576)) MiB"
}

# remote_into FILE ACTION: remote ACTION, its output kept in FILE (shown if it fails).
remote_into() {
  f=$1
  shift
  remote "$@" >"$f" || {
    grep -v '^[A-Z_]*=' "$f"
    return 1
  }
}

# COPY: rsync when this machine has it (for the hosts that have it too), unless NEARCAST_COPY=ssh.
COPY=ssh
case "${NEARCAST_COPY:-}" in
  ssh) ;;
  "") command -v rsync >/dev/null 2>&1 && COPY=rsync ;;
  rsync)
    command -v rsync >/dev/null 2>&1 || die "NEARCAST_COPY=rsync: no rsync here"
    COPY=rsync
    ;;
  *) die "NEARCAST_COPY=$NEARCAST_COPY: must be ssh or rsync" ;;
esac
# The unpacked release, which rsync sends: made once, when some host lacks the release.
if [ "$COPY" = rsync ] && grep -q '^RSYNC=yes' "$WORK"/probe.* &&
  for f in "$WORK"/probe.*; do keyval RELEASE "$f"; done | grep -qvx "$REL_SHA"; then
  mkdir "$WORK/tree" || exit 1
  tar -xzf "$RELEASE" -C "$WORK/tree" || die "cannot unpack $RELEASE for rsync"
  [ -x "$WORK/tree/$NAME/bin/httpserver" ] || die "$RELEASE holds no $NAME/bin/httpserver"
fi

install_host() {
  p="$WORK/probe.$HOSTNUM"
  dir=$(keyval DIR "$p")
  did=""
  how=ssh
  [ "$COPY" = rsync ] && [ "$(keyval RSYNC "$p")" = yes ] && how=rsync
  if [ "${NEARCAST_COPY:-}" = rsync ] && [ "$how" != rsync ]; then
    echo "NEARCAST_COPY=rsync, but this host has no rsync"
    return 1
  fi
  if [ "$(keyval RELEASE "$p")" != "$REL_SHA" ]; then
    if [ "$how" = rsync ]; then
      sent=$(rsync_release "$dir" "$(keyval CURRENT "$p")") || {
        echo "$sent"
        return 1
      }
      remote_into "$WORK/installed.$HOSTNUM" "install_tree $REL_SHA" || return 1
      did="$did, $NAME copied with rsync ($sent)"
    else
      copy "$RELEASE" "$dir/.incoming.tar.gz" || return 1
      remote_into "$WORK/installed.$HOSTNUM" "install_release $REL_SHA" || return 1
      did="$did, $NAME copied ($REL_MIB MiB) and unpacked"
    fi
  elif [ "$(keyval CURRENT "$p")" != "$NAME" ]; then
    remote_into "$WORK/installed.$HOSTNUM" activate || return 1
    did="$did, $NAME already there (nothing copied), now current"
  fi
  if [ -f "$WORK/installed.$HOSTNUM" ]; then
    # Release names hold no spaces: one word each.
    for r in $(sed -n 's/^REMOVED=//p' "$WORK/installed.$HOSTNUM"); do
      did="$did, old release $r removed"
    done
    for r in $(sed -n 's/^KEPT=//p' "$WORK/installed.$HOSTNUM"); do
      did="$did, old release $r kept (a process runs from it)"
    done
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
