#!/usr/bin/env bash
# The machine's prerequisites, checked up front, and the project's own tools, fetched into .local.
#
#   infra/tools.sh check   one line per missing prerequisite, naming the command that installs it
#   infra/tools.sh fetch   Prometheus and promtool (built from the Go module proxy into .local/bin),
#                          the AsyncAPI reference parser (npm ci in infra/asyncapi); no-op when present
#   infra/tools.sh bin     print the directory of the fetched binaries (make puts it first on PATH)
#
# Why Prometheus from the Go module proxy rather than Debian's package: it needs no root, every
# machine gets the same pinned version (Debian 12 ships 2.42), and Go is already a prerequisite
# here. The build takes a few minutes once; later runs find the binaries in .local/bin.
#
# Environment (defaults in brackets):
#   JOINTUSE_LOCAL_DIR [.local]   where the tools go (.local/bin)
# Exit codes: 0 ok; 1 a fetch failed; 2 a prerequisite is missing or bad usage.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${JOINTUSE_LOCAL_DIR:-$ROOT/.local}
BIN=$LOCAL/bin
# Prometheus 3.x is published as module versions v0.3xx.y (v0.316.0 is Prometheus 3.16.0).
PROMETHEUS_MODULE=github.com/prometheus/prometheus
PROMETHEUS_VERSION=v0.316.0
PROMETHEUS_STAMP=$BIN/.prometheus-$PROMETHEUS_VERSION
ASYNCAPI_DIR=$ROOT/infra/asyncapi
PYTHON=${PYTHON:-python3.11}

say() { printf '[tools] %s\n' "$*" >&2; }

missing=0
need() {  # need WHAT INSTALL: reports one missing prerequisite
  say "missing: $1; install: $2"
  missing=1
}

version_at_least() {  # version_at_least HAVE WANT (dotted numbers)
  [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]
}

check() {
  command -v "$PYTHON" >/dev/null || need "Python 3.11 ($PYTHON)" "apt-get install python3.11 python3.11-venv"
  command -v curl >/dev/null || need "curl" "apt-get install curl"
  command -v mvn >/dev/null || need "Maven 3.8+ (fetches Kafka and the registry)" "apt-get install maven"
  "$ROOT/infra/local.sh" check || missing=1
  if ! command -v go >/dev/null; then
    need "Go 1.21+ (builds Prometheus and promtool)" "apt-get install golang-go (Go 1.21 or newer fetches the toolchain Prometheus needs)"
  elif ! version_at_least "$(go env GOVERSION | sed 's/^go//')" 1.21; then
    need "Go 1.21+ (found $(go env GOVERSION))" "install Go 1.21 or newer; it fetches the toolchain Prometheus needs"
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    need "Node.js 18+ with npm (runs the AsyncAPI parser in the tests)" "apt-get install nodejs npm"
  elif ! version_at_least "$(node --version | sed 's/^v//')" 18; then
    need "Node.js 18+ (found $(node --version))" "install Node.js 18 or newer"
  fi
  return "$missing"
}

fetch_prometheus() {
  if [[ -f $PROMETHEUS_STAMP && -x $BIN/prometheus && -x $BIN/promtool ]]; then return; fi
  mkdir -p "$BIN"
  say "building Prometheus and promtool $PROMETHEUS_VERSION from the Go module proxy into $BIN (a few minutes, once)"
  local started=$SECONDS
  # remove_all_sd: no cloud service discovery (the tests scrape static targets), a far smaller build.
  # The version flag makes `--version` say what was pinned.
  local minor_patch=${PROMETHEUS_VERSION#v0.3}  # v0.316.0 -> 16.0
  local release=3.$minor_patch
  (
    cd "$LOCAL"
    GOBIN=$BIN GOFLAGS=-mod=mod go install -tags remove_all_sd \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
      "$PROMETHEUS_MODULE/cmd/prometheus@$PROMETHEUS_VERSION" "$PROMETHEUS_MODULE/cmd/promtool@$PROMETHEUS_VERSION" &
    build=$!
    while kill -0 "$build" 2>/dev/null; do
      sleep 30
      kill -0 "$build" 2>/dev/null && say "still building Prometheus ($((SECONDS - started)) s)"
    done
    wait "$build"
  ) || { say "error: building Prometheus failed"; exit 1; }
  rm -f "$BIN"/.prometheus-*
  touch "$PROMETHEUS_STAMP"
  say "Prometheus $("$BIN/prometheus" --version 2>&1 | head -n 1 | awk '{print $3}') built in $((SECONDS - started)) s"
}

fetch_asyncapi() {
  local stamp=$ASYNCAPI_DIR/node_modules/.jointuse-installed
  if [[ -f $stamp && $stamp -nt $ASYNCAPI_DIR/package-lock.json ]]; then return; fi
  say "installing the AsyncAPI parser (npm ci in infra/asyncapi)"
  # --ignore-scripts: nothing the parser needs runs at install time (one dependency would report usage).
  (cd "$ASYNCAPI_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
    || { say "error: npm ci in infra/asyncapi failed"; exit 1; }
  touch "$stamp"
}

case ${1:-} in
  check) check || exit 2 ;;
  fetch) fetch_prometheus; fetch_asyncapi ;;
  bin) echo "$BIN" ;;
  -h | --help | help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
