# Run on a fleet host by deployCDN.sh, runCDN.sh and stopCDN.sh: sent over ssh to `sh -s` after
# the variables of that host (D, NAME, ...) and before the one line that calls an action below.
# Needs only sh, tar, coreutils and the release (its own Deno does the health checks).
# Every line it prints is for the operator, except KEY=VALUE lines, which the caller reads.
# shellcheck shell=sh
# shellcheck disable=SC2154 # D, NAME and the rest are set by the caller.
set -u
umask 077

# D: install folder (`~/` expanded here), made if missing; A: its absolute, symlink-free path.
# shellcheck disable=SC2088 # a literal ~ in the fleet file's dir.
case "$D" in "~/"*) D="$HOME/${D#"~/"}" ;; "~") D=$HOME ;; esac
mkdir -p "$D" || exit 1
A=$(cd "$D" && pwd -P) || exit 1
R="$A/$NAME"

sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

# probe: where the install folder is and what it holds.
probe() {
  echo "DIR=$A"
  if [ -f "$R.sha256" ] && [ -x "$R/bin/httpserver" ]; then echo "RELEASE=$(cat "$R.sha256")"; else echo "RELEASE=-"; fi
  if [ -f "$A/websites.txt" ]; then echo "WEBSITES=$(sha "$A/websites.txt")"; else echo "WEBSITES=-"; fi
  if [ -s "$A/admin_token" ]; then echo "TOKEN=$(cat "$A/admin_token")"; else echo "TOKEN=-"; fi
  cur=$(readlink "$A/current" 2>/dev/null) && [ -f "$A/$cur.sha256" ] && echo "CURRENT=$cur" ||
    echo "CURRENT=-"
  if command -v rsync >/dev/null 2>&1; then echo "RSYNC=yes"; else echo "RSYNC=no"; fi
}

# install_release SHA: unpacks $A/.incoming.tar.gz (copied over ssh) as $A/$NAME, checked
# against SHA, then activates it.
install_release() {
  got=$(sha "$A/.incoming.tar.gz")
  if [ -n "$got" ] && [ "$got" != "$1" ]; then
    echo "the copied release's SHA-256 is $got, not $1 (copy damaged?)"
    return 1
  fi
  rm -rf "$A/.unpack" && mkdir "$A/.unpack" || return 1
  tar -xzf "$A/.incoming.tar.gz" -C "$A/.unpack" || { echo "tar -x failed"; return 1; }
  if [ ! -x "$A/.unpack/$NAME/bin/httpserver" ]; then
    echo "the archive holds no $NAME/bin/httpserver"
    return 1
  fi
  rm -rf "$R" && mv "$A/.unpack/$NAME" "$R" && rm -rf "$A/.unpack" "$A/.incoming.tar.gz" || return 1
  echo "$1" >"$R.sha256"
  activate
}

# install_tree SHA: the release tree rsync copied to $A/.incoming becomes $A/$NAME (SHA: its
# tarball's), then is activated.
install_tree() {
  if [ ! -x "$A/.incoming/bin/httpserver" ]; then
    echo "the copied tree holds no bin/httpserver"
    return 1
  fi
  rm -rf "$R" && mv "$A/.incoming" "$R" || return 1
  echo "$1" >"$R.sha256"
  activate
}

# in_use DIR: a process named by one of our pid files runs from DIR.
in_use() {
  for p in "$A"/run/*.pid; do
    [ -f "$p" ] || continue
    pid=$(cat "$p")
    kill -0 "$pid" 2>/dev/null || continue
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$1/" && return 0
  done
  return 1
}

# activate: $A/current points at $NAME and $A/previous at the release current pointed at before
# (for a rollback); every other release (a $A/X with its $A/X.sha256) is removed, unless a
# process of ours still runs from it. Prints REMOVED=X for each one removed.
activate() {
  cur=$(readlink "$A/current" 2>/dev/null) || cur=""
  if [ "$cur" != "$NAME" ]; then
    [ -n "$cur" ] && [ -f "$A/$cur.sha256" ] && ln -sfn "$cur" "$A/previous"
    ln -sfn "$NAME" "$A/current" || return 1
  fi
  prev=$(readlink "$A/previous" 2>/dev/null) || prev=""
  for f in "$A"/*.sha256; do
    [ -f "$f" ] || continue
    rel=$(basename "$f" .sha256)
    [ "$rel" = "$NAME" ] || [ "$rel" = "$prev" ] && continue
    if in_use "$A/$rel"; then
      echo "KEPT=$rel"
      continue
    fi
    rm -rf "${A:?}/$rel" "$f" && echo "REMOVED=$rel"
  done
  return 0
}

set_token() { printf '%s\n' "$1" >"$A/admin_token"; }
drop_websites() { rm -f "$A/websites.txt"; }

# ours PID KIND: the process PID is alive and is this install's KIND (dnsserver or httpserver).
ours() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline")
  else
    cmd=$(ps -p "$1" -o args= 2>/dev/null)
  fi
  case "$2" in dnsserver) main=main_dns.ts ;; *) main=main_http.ts ;; esac
  case "$cmd" in *"$A/"*"/app/$main"*) return 0 ;; *) return 1 ;; esac
}

# healthy URL: the release's Deno gets 200 from URL.
healthy() {
  DENO_DIR="$R/cache" DENO_NO_UPDATE_CHECK=1 "$R/runtime/deno" eval \
    'const r = await fetch(Deno.args[0], { signal: AbortSignal.timeout(2000) }).catch(() => null);
     await r?.body?.cancel();
     Deno.exit(r?.status === 200 ? 0 : 1);' "$1" 2>/dev/null
}

# start KIND URL ARGS...: starts bin/KIND detached (pid file run/KIND.pid, log logs/KIND.log)
# unless it already runs, then waits until URL answers 200 (at most $WAIT seconds).
start() {
  kind=$1 url=$2
  shift 2
  pidf="$A/run/$kind.pid" log="$A/logs/$kind.log"
  mkdir -p "$A/run" "$A/logs" "$A/data" || return 1
  if [ ! -x "$R/bin/$kind" ]; then
    echo "$NAME is not installed in $A: run deployCDN.sh first"
    return 1
  fi
  if [ -f "$pidf" ] && ours "$(cat "$pidf")" "$kind"; then
    echo "$kind already running (pid $(cat "$pidf")), left as it is"
    return 0
  fi
  if [ -z "${TOKEN:-}" ]; then
    if [ ! -s "$A/admin_token" ]; then
      echo "no admin token in $A/admin_token: run deployCDN.sh first, or pass -t"
      return 1
    fi
    TOKEN=$(cat "$A/admin_token")
  fi
  : >"$log"
  if command -v setsid >/dev/null 2>&1; then
    NEARCAST_ADMIN_TOKEN=$TOKEN setsid "$R/bin/$kind" "$@" >"$log" 2>&1 </dev/null &
  else
    NEARCAST_ADMIN_TOKEN=$TOKEN nohup "$R/bin/$kind" "$@" >"$log" 2>&1 </dev/null &
  fi
  pid=$!
  echo "$pid" >"$pidf"
  echo "STARTED=$kind"
  waited=0
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidf"
      echo "$kind exited at start; the end of $log:"
      tail -n 5 "$log" | sed 's/^/    /'
      return 1
    fi
    if healthy "$url"; then
      echo "$kind started (pid $pid), healthy: $url"
      return 0
    fi
    if [ "$waited" -ge "$WAIT" ]; then
      echo "$kind (pid $pid) not healthy after ${WAIT}s at $url; the end of $log:"
      tail -n 5 "$log" | sed 's/^/    /'
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

start_dns() {
  start dnsserver "http://$URLHOST:$CPORT/replicas" -p "$PORT" -n "$ZONE" --host "$ADDR" \
    --control "$CPORT" --data "$A/data/dns"
}

# announce_help: the --help text of --announce (its line and its continuation lines, which are
# indented further than the next flag's line).
announce_help() {
  awk '/--announce/ && !f { f = 1; print; next }
       f && match($0, /^ *-/) && RLENGTH < 10 { exit }
       f { print }'
}

start_replica() {
  # ANNOUNCE: every DNS server's HOST:PORT, space-separated. A release whose --help does not say
  # --announce may be repeated announces to the first one only.
  set -- -p "$PORT" --host "$ADDR" -o "$ORIGIN" --data "$A/data/http"
  if "$R/bin/httpserver" --help 2>&1 | announce_help |
    grep -qi 'repeat'; then
    for a in $ANNOUNCE; do set -- "$@" --announce "$a"; done
  else
    set -- "$@" --announce "${ANNOUNCE%% *}"
  fi
  [ -n "$JOIN" ] && set -- "$@" --join "$JOIN"
  [ "$ID" != "-" ] && set -- "$@" --id "$ID"
  [ "$LAT" != "-" ] && set -- "$@" "--lat=$LAT"
  [ "$LON" != "-" ] && set -- "$@" "--lon=$LON"
  [ "$PROV" != "-" ] && set -- "$@" --provider "$PROV"
  [ -f "$A/websites.txt" ] && set -- "$@" --preload "$A/websites.txt"
  start httpserver "http://$URLHOST:$PORT/_cdn/health" "$@"
}

# stop KIND: stops KIND (dnsserver or httpserver) if its pid file names a process that is still
# this install's KIND; a pid file naming anything else is removed, and nothing is killed.
stop() {
  pidf="$A/run/$1.pid"
  if [ ! -f "$pidf" ]; then
    echo "$1: nothing to stop (no pid file $pidf)"
    return 0
  fi
  pid=$(cat "$pidf")
  if ! ours "$pid" "$1"; then
    echo "$1: not running (stale pid file, pid $pid, removed)"
    rm -f "$pidf"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  n=0
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    echo "$1 (pid $pid) did not stop within 10 s of SIGTERM: killed"
  else
    echo "$1 stopped (pid $pid)"
  fi
  rm -f "$pidf"
}

# status KIND: whether KIND runs and answers its health check; DOWN=KIND when not.
status() {
  pidf="$A/run/$1.pid"
  case "$1" in
    dnsserver) url="http://$URLHOST:$CPORT/replicas" ;;
    *) url="http://$URLHOST:$PORT/_cdn/health" ;;
  esac
  if [ ! -f "$pidf" ]; then
    echo "$1: not started (no pid file)"
    echo "DOWN=$1"
  elif ! ours "$(cat "$pidf")" "$1"; then
    echo "$1: not running (stale pid file, pid $(cat "$pidf"))"
    echo "DOWN=$1"
  elif healthy "$url"; then
    echo "$1: running (pid $(cat "$pidf")), healthy ($url)"
  else
    echo "$1: running (pid $(cat "$pidf")), NOT healthy ($url)"
    echo "DOWN=$1"
  fi
}
