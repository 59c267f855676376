#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one node) and Apicurio schema registry, without Docker.
#
#   infra/local.sh fetch     download the broker jars and the registry from Maven Central
#   infra/local.sh up        start both (no-op when already up); waits until they answer
#   infra/local.sh down      stop both (no-op when already down)
#   infra/local.sh status    print what runs, exit 0 when both are up
#   infra/local.sh logs      last lines of both logs
#   infra/local.sh env       shell exports for the local admin principal: eval "$(infra/local.sh env)"
#   infra/local.sh env-mtls  the same principal by its client certificate, on the mTLS listener
#   infra/local.sh env-plaintext  the same principal in plain text (to measure what TLS costs)
#   infra/local.sh tls-reset make the local CA and certificates anew (then down and up)
#   infra/local.sh kafka-up / kafka-down   the Kafka nodes alone (a second cluster beside a registry)
#   infra/local.sh node-stop N [kill]   stop node N of the cluster (SIGTERM, or SIGKILL with kill)
#   infra/local.sh node-start N         start node N again (the others keep running)
#   infra/local.sh reset     down, then delete the broker's data (the next up formats anew)
#   infra/local.sh registry-java   print the Java 21+ the registry runs on (exit 2 if none)
#
# Environment (defaults in brackets):
#   JOINTUSE_LOCAL_DIR [.local]            state: jars, data, logs, pid files
#   JOINTUSE_KAFKA_PORT [19092]            broker listener on 127.0.0.1 (SCRAM over TLS)
#   JOINTUSE_KAFKA_MTLS_PORT [19094]       broker listener for client certificates (mTLS)
#   JOINTUSE_KAFKA_PLAIN_PORT [19095]      SCRAM in plain text, the local option (env-plaintext)
#   JOINTUSE_KAFKA_CONTROLLER_PORT [19093] KRaft controller listener on 127.0.0.1
#   JOINTUSE_KAFKA_NODES [1]               KRaft nodes (1 or 3); node n listens on each port + 10*(n-1)
#   JOINTUSE_REGISTRY_PORT [18081]         registry HTTPS on 127.0.0.1
#   JOINTUSE_REGISTRY_MANAGEMENT_PORT [18091] the registry's health and metrics on 127.0.0.1
#   JOINTUSE_REGISTRY_JAVA                 java (21+) for the registry; found under /usr/lib/jvm otherwise
#   JOINTUSE_INFRA_TIMEOUT [120]           seconds to wait for readiness
# Exit codes: 0 ok, 1 a service failed to start or stop, 2 bad usage or missing prerequisite.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${JOINTUSE_LOCAL_DIR:-$ROOT/.local}
KAFKA_PORT=${JOINTUSE_KAFKA_PORT:-19092}
KAFKA_MTLS_PORT=${JOINTUSE_KAFKA_MTLS_PORT:-19094}
KAFKA_PLAIN_PORT=${JOINTUSE_KAFKA_PLAIN_PORT:-19095}
CONTROLLER_PORT=${JOINTUSE_KAFKA_CONTROLLER_PORT:-19093}
REGISTRY_PORT=${JOINTUSE_REGISTRY_PORT:-18081}
REGISTRY_MANAGEMENT_PORT=${JOINTUSE_REGISTRY_MANAGEMENT_PORT:-18091}
TIMEOUT=${JOINTUSE_INFRA_TIMEOUT:-120}
REGISTRY_VERSION=3.3.3
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

KAFKA_HOME=$LOCAL/kafka
KAFKA_LIBS=$KAFKA_HOME/libs
NODES_FILE=$KAFKA_HOME/nodes  # how many nodes the last `up` started: down, env and status follow it
ADMIN_PASSWORD_FILE=$KAFKA_HOME/admin.password
SUBJECT_KEY_FILE=$LOCAL/subject.key
AUDIT_KEY_FILE=$LOCAL/audit.key
TLS_DIR=$LOCAL/tls
KEYSTORE_PASSWORD_FILE=$TLS_DIR/keystore.password
REGISTRY_HOME=$LOCAL/registry
REGISTRY_LOG=$REGISTRY_HOME/registry.log
REGISTRY_PID=$REGISTRY_HOME/registry.pid

say() { printf '[infra] %s\n' "$*" >&2; }
die() { say "error: $*"; exit "${2:-1}"; }

mvn_quiet() {
  # -B: no prompts (CI has no stdin); -q: errors only. Maven still writes colour resets to a
  # terminal-less stdout, so its output goes to a log, shown when it fails.
  mkdir -p "$LOCAL"
  if ! mvn -B -q -Dstyle.color=never "$@" >"$LOCAL/maven.log" 2>&1; then
    say "Maven failed; last lines of $LOCAL/maven.log:"
    tail -n 20 "$LOCAL/maven.log" >&2
    return 1
  fi
}

fetch_kafka() {
  if compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is required to fetch Kafka" 2
  say "fetching the Kafka broker jars (Maven Central)"
  mkdir -p "$KAFKA_LIBS"
  (cd "$ROOT/infra/kafka" && mvn_quiet "$DEPENDENCY_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS")
}

fetch_registry() {
  if [[ -f $REGISTRY_HOME/quarkus-run.jar ]]; then return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is required to fetch the registry" 2
  say "fetching Apicurio Registry $REGISTRY_VERSION (Maven Central)"
  mkdir -p "$REGISTRY_HOME"
  mvn_quiet "$DEPENDENCY_PLUGIN:copy" \
    -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
    -DoutputDirectory="$REGISTRY_HOME"
  tar -xzf "$REGISTRY_HOME/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz" -C "$REGISTRY_HOME"
  rm -f "$REGISTRY_HOME/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz"
}

java_major() {
  "$1" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'
}

# Apicurio 3.3 needs Java 21 or newer; the broker is content with 17.
registry_java() {
  if [[ -n ${JOINTUSE_REGISTRY_JAVA:-} ]]; then echo "$JOINTUSE_REGISTRY_JAVA"; return; fi
  local candidate
  for candidate in "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [[ -x $candidate ]] || continue
    if (( $(java_major "$candidate") >= 21 )); then echo "$candidate"; return; fi
  done
  die "the schema registry needs Java 21+; none found (set JOINTUSE_REGISTRY_JAVA)" 2
}

pid_alive() {
  local pidfile=$1
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(<"$pidfile")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then return 0; fi
  rm -f "$pidfile" # stale: the process is gone
  return 1
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

registry_ready() {
  curl -sf --cacert "$TLS_DIR/ca.pem" -o /dev/null "https://localhost:$REGISTRY_PORT/apis/ccompat/v7/subjects"
}


# wait_until NAME PIDFILE LOG CHECK: polls CHECK; fails with the log's tail on timeout or death.
wait_until() {
  local name=$1 pidfile=$2 log=$3 check=$4
  local deadline=$((SECONDS + TIMEOUT))
  while ! $check; do
    if ! pid_alive "$pidfile"; then
      say "$name exited during start-up; last log lines:"; tail -n 30 "$log" >&2 || true
      return 1
    fi
    if (( SECONDS >= deadline )); then
      say "$name not ready after ${TIMEOUT}s; last log lines:"; tail -n 30 "$log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

admin_password() {
  mkdir -p "$KAFKA_HOME"
  if [[ ! -s $ADMIN_PASSWORD_FILE ]]; then
    # A fresh random password per checkout; never in the repository, readable by its owner only.
    (umask 077; head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$ADMIN_PASSWORD_FILE")
  fi
  cat "$ADMIN_PASSWORD_FILE"
}

# The key of the audit pseudonyms (HMAC-SHA256), one per checkout like the admin password. To rotate,
# put a new key on the first line and keep the old ones below it (they are used only for lookups).
subject_key_file() {
  mkdir -p "$LOCAL"
  if [[ ! -s $SUBJECT_KEY_FILE ]]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48 >"$SUBJECT_KEY_FILE"; echo >>"$SUBJECT_KEY_FILE")
  fi
  echo "$SUBJECT_KEY_FILE"
}

# The credential the subject index requires of every lookup (a bearer token), one per checkout.
index_token_file() {
  mkdir -p "$LOCAL"
  if [[ ! -s $LOCAL/index.token ]]; then
    (umask 077; head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$LOCAL/index.token")
  fi
  echo "$LOCAL/index.token"
}

# The key that signs the audit chain's checkpoints (an Ed25519 seed, 64 hex characters), one per
# checkout like the admin password. `jointuse audit public-key` prints what verifiers need.
audit_key_file() {
  mkdir -p "$LOCAL"
  if [[ ! -s $AUDIT_KEY_FILE ]]; then
    (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$AUDIT_KEY_FILE"; echo >>"$AUDIT_KEY_FILE")
  fi
  echo "$AUDIT_KEY_FILE"
}

# The checkout's private CA, the certificate the broker and the registry present (127.0.0.1 and
# localhost), and the admin's client certificate (CN=admin, for the mTLS listener). Made once;
# `infra/local.sh tls-reset` makes them anew.
make_tls() {
  if [[ -s $TLS_DIR/ca.pem && -s $TLS_DIR/broker.p12 && -s $TLS_DIR/admin.pem ]]; then return; fi
  command -v openssl >/dev/null || die "openssl is required to make the local CA" 2
  say "making the local CA and certificates in $TLS_DIR"
  rm -rf "$TLS_DIR"; mkdir -p "$TLS_DIR"
  (
    umask 077; cd "$TLS_DIR"
    head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >keystore.password
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=jointuse local CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    issue() { # NAME SUBJECT EXTENSIONS
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -out "$1.pem" \
        -extfile <(printf '%s\n' "$3") 2>/dev/null
      rm -f "$1.csr"
    }
    issue broker "/CN=localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
    issue admin "/CN=admin" "extendedKeyUsage=clientAuth"
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -out broker.p12 \
      -passout "file:keystore.password"
  ) || die "openssl could not make the local certificates"
}

nodes() {
  if [[ -n ${JOINTUSE_KAFKA_NODES:-} ]]; then echo "$JOINTUSE_KAFKA_NODES"
  elif [[ -s $NODES_FILE ]]; then cat "$NODES_FILE"
  else echo 1; fi
}

# node N: sets NODE_PORT, NODE_MTLS_PORT, NODE_CONTROLLER_PORT, NODE_DIR, NODE_DATA, NODE_LOG, NODE_PID.
# Node 1 keeps the single node's paths; node n listens on each port + 10*(n-1).
node() {
  local n=$1 offset=$((10 * ($1 - 1)))
  NODE_PORT=$((KAFKA_PORT + offset)); NODE_MTLS_PORT=$((KAFKA_MTLS_PORT + offset))
  NODE_PLAIN_PORT=$((KAFKA_PLAIN_PORT + offset))
  NODE_CONTROLLER_PORT=$((CONTROLLER_PORT + offset))
  if (( n == 1 )); then NODE_DIR=$KAFKA_HOME; else NODE_DIR=$KAFKA_HOME/node$n; fi
  NODE_DATA=$NODE_DIR/data; NODE_LOG=$NODE_DIR/broker.log; NODE_PID=$NODE_DIR/broker.pid
}

bootstrap() { # LISTENER (port or mtls): every node's address
  local n servers=()
  for ((n = 1; n <= $(nodes); n++)); do
    node "$n"
    case $1 in
      mtls) servers+=("127.0.0.1:$NODE_MTLS_PORT") ;;
      plain) servers+=("127.0.0.1:$NODE_PLAIN_PORT") ;;
      *) servers+=("127.0.0.1:$NODE_PORT") ;;
    esac
  done
  (IFS=,; echo "${servers[*]}")
}

render_properties() { # N
  local password voters=() count rf isr n
  password=$(admin_password)
  make_tls
  count=$(nodes)
  for ((n = 1; n <= count; n++)); do node "$n"; voters+=("$n@127.0.0.1:$NODE_CONTROLLER_PORT"); done
  if (( count >= 3 )); then rf=3; isr=2; else rf=1; isr=1; fi
  node "$1"
  mkdir -p "$NODE_DIR"
  (umask 077; sed -e "s|@KAFKA_PORT@|$NODE_PORT|g" -e "s|@KAFKA_MTLS_PORT@|$NODE_MTLS_PORT|g" \
      -e "s|@KAFKA_PLAIN_PORT@|$NODE_PLAIN_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$NODE_CONTROLLER_PORT|g" -e "s|@TLS_DIR@|$TLS_DIR|g" \
      -e "s|@NODE_ID@|$1|g" -e "s|@VOTERS@|$(IFS=,; echo "${voters[*]}")|g" \
      -e "s|@REPLICATION@|$rf|g" -e "s|@MIN_ISR@|$isr|g" \
      -e "s|@KEYSTORE_PASSWORD@|$(<"$KEYSTORE_PASSWORD_FILE")|g" \
      -e "s|@DATA_DIR@|$NODE_DATA|g" -e "s|@ADMIN_PASSWORD@|$password|g" \
      "$ROOT/infra/kafka/server.properties.in" >"$NODE_DIR/server.properties")
}

# The storage is formatted for one template, one admin password and one number of nodes; when any
# changes, every node starts afresh.
format_signature() {
  { cat "$ROOT/infra/kafka/server.properties.in"; admin_password; nodes; } | sha256sum | cut -d' ' -f1
}

kafka_java() {
  java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" "$@"
}

node_ready() {
  port_open "$NODE_PORT" && port_open "$NODE_MTLS_PORT" && port_open "$NODE_PLAIN_PORT" && grep -q "Kafka Server started" "$NODE_LOG" 2>/dev/null
}

start_kafka() {
  fetch_kafka
  local count n signature cluster_id="" formatted=1
  count=$(nodes)
  [[ $count == 1 || $count == 3 ]] || die "JOINTUSE_KAFKA_NODES must be 1 or 3" 2
  echo "$count" >"$NODES_FILE"
  signature=$(format_signature)
  for ((n = 1; n <= count; n++)); do
    node "$n"
    [[ -f $NODE_DATA/meta.properties && $(cat "$NODE_DATA/.jointuse-format" 2>/dev/null) == "$signature" ]] || formatted=0
  done
  for ((n = 1; n <= count; n++)); do
    render_properties "$n"
    if (( ! formatted )) && ! pid_alive "$NODE_PID"; then
      [[ -n $cluster_id ]] || cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
      rm -rf "$NODE_DATA"
      kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$NODE_DIR/server.properties" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$(admin_password)]" >/dev/null
      echo "$signature" >"$NODE_DATA/.jointuse-format"
    fi
  done
  for ((n = 1; n <= count; n++)); do launch_node "$n"; done
  for ((n = 1; n <= count; n++)); do await_node "$n" || return 1; done
  say "kafka up: $count node(s), SASL_SSL on $(bootstrap port), client certificates on $(bootstrap mtls)"
}

launch_node() { # N
  node "$1"
  if pid_alive "$NODE_PID"; then say "kafka node $1 already up (pid $(<"$NODE_PID"))"; return; fi
  local port
  for port in "$NODE_PORT" "$NODE_MTLS_PORT" "$NODE_PLAIN_PORT" "$NODE_CONTROLLER_PORT"; do
    if port_open "$port"; then die "port $port is taken by another process (set JOINTUSE_KAFKA_PORT, _MTLS_PORT, _CONTROLLER_PORT)"; fi
  done
  [[ -f $NODE_LOG ]] && mv -f "$NODE_LOG" "$NODE_LOG.1"
  local heap=1g
  (( $(nodes) == 1 )) || heap=768m
  nohup java -Xms512m -Xmx$heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" \
    kafka.Kafka "$NODE_DIR/server.properties" >"$NODE_LOG" 2>&1 </dev/null &
  echo $! >"$NODE_PID"
  STARTED+=("kafka$1")
  NODE_STARTED_AT[$1]=$SECONDS
}

await_node() { # N
  node "$1"
  wait_until "kafka node $1" "$NODE_PID" "$NODE_LOG" node_ready || return 1
  say "kafka node $1 up on 127.0.0.1:$NODE_PORT after $((SECONDS - ${NODE_STARTED_AT[$1]:-$SECONDS}))s"
}

stop_kafka() {
  local n
  for ((n = 3; n >= 1; n--)); do
    node "$n"
    if (( n == 1 )) || [[ -f $NODE_PID ]]; then stop_one "kafka node $n" "$NODE_PID"; fi
  done
}

start_registry() {
  if pid_alive "$REGISTRY_PID"; then say "registry already up (pid $(<"$REGISTRY_PID"))"; return; fi
  fetch_registry
  if port_open "$REGISTRY_PORT"; then die "port $REGISTRY_PORT is taken by another process (set JOINTUSE_REGISTRY_PORT)"; fi
  local java_bin
  java_bin=$(registry_java)
  make_tls
  [[ -f $REGISTRY_LOG ]] && mv -f "$REGISTRY_LOG" "$REGISTRY_LOG.1"
  local started=$SECONDS
  # BACKWARD is Confluent's default; Apicurio's own default is NONE.
  # HTTPS only, with the broker's certificate (it names 127.0.0.1 and localhost).
  nohup "$java_bin" -Xmx512m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.ssl-port="$REGISTRY_PORT" \
    -Dquarkus.http.port=0 -Dquarkus.http.insecure-requests=disabled \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
    -Dquarkus.http.ssl.certificate.files="$TLS_DIR/broker.pem" \
    -Dquarkus.http.ssl.certificate.key-files="$TLS_DIR/broker.key" \
    -Dapicurio.rules.global.compatibility=BACKWARD -Dquarkus.log.level=WARN \
    -jar "$REGISTRY_HOME/quarkus-run.jar" >"$REGISTRY_LOG" 2>&1 </dev/null &
  echo $! >"$REGISTRY_PID"
  STARTED+=(registry)
  wait_until registry "$REGISTRY_PID" "$REGISTRY_LOG" registry_ready || { stop_one registry "$REGISTRY_PID"; return 1; }
  say "registry up on https://localhost:$REGISTRY_PORT/apis/ccompat/v7 after $((SECONDS - started))s"
}

stop_one() {
  local name=$1 pidfile=$2
  if ! pid_alive "$pidfile"; then say "$name already down"; return 0; fi
  local pid deadline
  pid=$(<"$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then say "$name ignored SIGTERM for 60s; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.2
  done
  rm -f "$pidfile"
  say "$name stopped"
}

# What this call started, stopped again (it failed before all was up).
stop_started() {
  local name
  for name in "${STARTED[@]}"; do
    say "stopping $name: the start did not complete"
    if [[ $name == registry ]]; then stop_one registry "$REGISTRY_PID"; else node "${name#kafka}"; stop_one "$name" "$NODE_PID"; fi
  done
}

status() {
  local rc=0
  local n
  for ((n = 1; n <= $(nodes); n++)); do
    node "$n"
    if pid_alive "$NODE_PID" && node_ready; then say "kafka node $n: up (pid $(<"$NODE_PID"), 127.0.0.1:$NODE_PORT)"
    else say "kafka node $n: down"; rc=1; fi
  done
  if pid_alive "$REGISTRY_PID" && registry_ready; then say "registry: up (pid $(<"$REGISTRY_PID"), port $REGISTRY_PORT)"; else say "registry: down"; rc=1; fi
  return $rc
}

case ${1:-} in
  registry-java) registry_java ;;
  fetch) fetch_kafka; fetch_registry ;;
  up)
    mkdir -p "$KAFKA_HOME" "$REGISTRY_HOME"
    STARTED=(); NODE_STARTED_AT=()
    trap 'stop_started' EXIT  # a start that fails leaves nothing of this call running
    start_kafka; start_registry
    trap - EXIT ;;
  down) stop_one registry "$REGISTRY_PID"; stop_kafka ;;
  kafka-up)
    mkdir -p "$KAFKA_HOME"
    STARTED=(); NODE_STARTED_AT=()
    trap 'stop_started' EXIT
    start_kafka
    trap - EXIT ;;
  kafka-down) stop_kafka ;;
  status) status ;;
  env)
    # Settings for the admin principal (super user) of the local broker: eval "$(infra/local.sh env)"
    admin_password >/dev/null
    echo "export JOINTUSE_BOOTSTRAP_SERVERS=$(bootstrap port)"
    make_tls
    echo "export JOINTUSE_SCHEMA_REGISTRY_URL=https://localhost:$REGISTRY_PORT/apis/ccompat/v7"
    echo "export JOINTUSE_SCHEMA_REGISTRY_CA_FILE=$TLS_DIR/ca.pem"
    echo "export JOINTUSE_SECURITY_PROTOCOL=SASL_SSL JOINTUSE_SASL_MECHANISM=SCRAM-SHA-512"
    echo "export JOINTUSE_SSL_CA_FILE=$TLS_DIR/ca.pem"
    # The subject index over HTTPS (the broker's certificate names 127.0.0.1), lookups with a credential.
    echo "export JOINTUSE_INDEX_URL=https://127.0.0.1:9410 JOINTUSE_INDEX_CA_FILE=$TLS_DIR/ca.pem"
    echo "export JOINTUSE_INDEX_CERT_FILE=$TLS_DIR/broker.pem JOINTUSE_INDEX_KEY_FILE=$TLS_DIR/broker.key"
    echo "export JOINTUSE_INDEX_TOKEN_FILE=$(index_token_file)"
    echo "export JOINTUSE_SASL_USERNAME=admin JOINTUSE_SASL_PASSWORD_FILE=$ADMIN_PASSWORD_FILE"
    echo "export JOINTUSE_SUBJECT_KEY_FILE=$(subject_key_file)"
    echo "export JOINTUSE_AUDIT_KEY_FILE=$(audit_key_file)" ;;
  logs)
    node 1
    for log in "$NODE_LOG" "$REGISTRY_LOG"; do
      echo "== $log"; tail -n "${LINES_SHOWN:-40}" "$log" 2>/dev/null || echo "(no log yet)"
    done ;;
  env-mtls)
    # The admin principal by its client certificate, on the mTLS listener: eval "$(infra/local.sh env-mtls)"
    "$0" env
    echo "export JOINTUSE_BOOTSTRAP_SERVERS=$(bootstrap mtls) JOINTUSE_SECURITY_PROTOCOL=SSL"
    echo "export JOINTUSE_SSL_CERT_FILE=$TLS_DIR/admin.pem JOINTUSE_SSL_KEY_FILE=$TLS_DIR/admin.key" ;;
  env-plaintext)
    # The admin principal in plain text (loopback only), to measure what TLS costs.
    "$0" env
    echo "export JOINTUSE_BOOTSTRAP_SERVERS=$(bootstrap plain) JOINTUSE_SECURITY_PROTOCOL=SASL_PLAINTEXT" ;;
  tls-reset) rm -rf "$TLS_DIR"; make_tls ;;
  node-stop)
    [[ ${2:-} =~ ^[1-3]$ ]] || die "usage: infra/local.sh node-stop N [kill]" 2
    node "$2"
    if [[ ${3:-} == kill ]]; then
      pid_alive "$NODE_PID" && kill -KILL "$(<"$NODE_PID")" && say "kafka node $2 killed (SIGKILL)"
      rm -f "$NODE_PID"
    else stop_one "kafka node $2" "$NODE_PID"; fi ;;
  node-start)
    [[ ${2:-} =~ ^[1-3]$ ]] || die "usage: infra/local.sh node-start N" 2
    STARTED=(); NODE_STARTED_AT=()
    launch_node "$2"; await_node "$2" ;;
  reset)
    stop_one registry "$REGISTRY_PID"; stop_kafka
    for ((n = 1; n <= 3; n++)); do node "$n"; rm -rf "$NODE_DATA"; done
    say "broker data deleted" ;;
  *) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
