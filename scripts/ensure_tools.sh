#!/bin/sh
# Installs the Debian packages the tests drive when they are missing and we are root: dig and kdig
# (DNS tests), curl (HTTP tests), ip and tc (network-namespace scenario tests), ImageMagick's
# convert (image tests: the reference downscale and JPEG decoder), photos from
# lomiri-wallpapers-16.04 (JPEG decoder tests, bench:image), openssl, tcpdump and pebble (TLS
# tests: certificates, capture, ACME), promtool from prometheus (metrics test), OpenSSH's sshd and ssh-keygen, rsync (deploy scripts' test),
# chromium (the dashboard test drives it with npm puppeteer-core; the meta-CDN scenario),
# firefox-esr (the dashboard test drives it too, through WebDriver BiDi).
# Used by `deno task test` and `.ci/run`, so a fresh machine needs no other set-up step.
set -e
need=""
command -v dig >/dev/null 2>&1 || need="$need dnsutils"
command -v kdig >/dev/null 2>&1 || need="$need knot-dnsutils"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v tc >/dev/null 2>&1 || need="$need iproute2"
command -v wget >/dev/null 2>&1 || need="$need wget"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1 || need="$need firefox-esr"
# /usr/bin/convert: a stand-in for `convert` may come first on PATH; the tests call the real one.
[ -x /usr/bin/convert ] || need="$need imagemagick"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v tcpdump >/dev/null 2>&1 || need="$need tcpdump"
command -v pebble >/dev/null 2>&1 || need="$need pebble"
# promtool checks every process's /metrics (tests/metrics_promtool_test.ts).
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
# Real photos for the JPEG decoder tests and bench:image (Ubuntu wallpaper contest photos).
[ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v ssh-keygen >/dev/null 2>&1 || need="$need openssh-client"
command -v rsync >/dev/null 2>&1 || need="$need rsync"
[ -f /usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg ] || need="$need lomiri-wallpapers-16.04"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_tools: missing$need; install them (apt-get install$need) and run again" >&2
  exit 1
fi
echo "ensure_tools: installing$need" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
