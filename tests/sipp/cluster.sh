#!/usr/bin/env bash
# tests/sipp/cluster.sh — decisions/s and latency through 1, 2 and 3 guard
# nodes on one PostgreSQL store with etcd membership, and one node on the
# embedded store for comparison, in the same run.
#
# Starts its own etcd (/usr/bin/etcd, temp data dir) and its own PostgreSQL
# (initdb + postgres in OUT/pg, fsync and synchronous_commit on, run as the
# user postgres when root), both on free loopback ports, and stops them at
# exit. For each N in NODES it starts N `callguard serve` (this tree's build,
# or CALLGUARD_BIN) with fresh data dirs, GUARD_POSTGRES_URL on that server,
# GUARD_CLUSTER_PROVIDER=etcd, each relaying to one SIPp PBX
# (peer/uas_pbx.xml), and for each rate R in RATES and each path in PATHS
# offers R calls/s for DURATION s, split over the nodes: one SIPp UAC per
# node at R/N calls/s, each with its own numbers.
#
#   reject   N_BLOCK numbers hard-blocked at level 6 (seeded once through
#            node 1's admin API into PostgreSQL; for the embedded node the
#            data dir peer.sh seeds), answered 403; INVITE -> 403
#   pass     fresh numbers (new ones in every trial), relayed to the PBX;
#            INVITE -> 200 (peer/uac_pass.xml's "answer")
#
# A caller's grain lives on one node (disthash), so with N nodes about
# (N-1)/N of the calls are decided by a grain on another node, over actor
# remoting. Per trial: achieved rate (merged SIPp -trace_rtt stamps, precise
# with peer/sipp_clock_shim.so), calls ok / failed, p50 / p99 of the final
# response, and CPU (utime+stime from /proc, % of one core over the traffic's
# wall time) of the guards together, of PostgreSQL (postmaster and its
# backends) and of etcd; "µs/call" is the three together per call offered.
# "Machine busy" is /proc/stat's non-idle time over the trial, % of one
# core (2 cores = 200 %): SIPp and anything else running count there.
# "sustained" = every call ok, achieved >= 97 % of offered, p99 < MAX_P99_MS.
#
# Usage: tests/sipp/cluster.sh          (go tool task bench-cluster)
#
# Settings (environment):
#   NODES="1 2 3"          cluster sizes, on PostgreSQL + etcd
#   EMBEDDED=1             also one node on the embedded store (0: no)
#   RATES="100 250 500"   offered calls/s;  DURATION=8 s per trial
#   PATHS="reject pass"    MAX_P99_MS=50    N_BLOCK=10000
#   WARMUP=2               seconds of pass calls at 50 calls/s after each
#                          cluster starts, not counted (0: none)
#   PROFILE=1              serve with GUARD_PPROF=1 and save node 1's CPU
#                          profile of each trial as DIR/cpu.pprof
#   CG_EXTRA_ENV="GUARD_X=y ..."   more settings for every node
#   CALLGUARD_BIN=path     measure this binary (default: build ./cmd/callguard)
#   BASE_PORT=16400        UAC i on BASE+i, SIP i on BASE+10+i, PBX BASE+20,
#                          admin BASE+30+i, metrics BASE+40+i, remoting
#                          BASE+50+i, etcd BASE+60/61, PostgreSQL BASE+62
#   WORK=/tmp/callguard-bench-sip   caller lists, the shim, seeded data dirs
#   OUT=$WORK/cluster/<time>        logs, SIPp files, results.txt, table.md
#
# Default total: about 5 minutes (more when a trial overloads the machine:
# it waits for its calls to time out). Needs sipp, gcc, curl, go, etcd
# (apt-get install -y etcd-server), PostgreSQL 15 (apt-get install -y
# postgresql).
# Only processes started here are stopped, by their saved PIDs.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
P=$ROOT/tests/sipp/peer

NODES=${NODES:-"1 2 3"}
EMBEDDED=${EMBEDDED:-1}
RATES=${RATES:-"100 250 500"}
DURATION=${DURATION:-8}
PATHS=${PATHS:-"reject pass"}
WARMUP=${WARMUP:-2}
MAX_P99_MS=${MAX_P99_MS:-50}
N_BLOCK=${N_BLOCK:-10000}
BASE_PORT=${BASE_PORT:-16400}
WORK=${WORK:-/tmp/callguard-bench-sip}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
CALLEE=88001234567
PBX_PORT=$((BASE_PORT + 20))
ETCD_PORT=$((BASE_PORT + 60))
PG_PORT=$((BASE_PORT + 62))
QUIET_PCT=0 QUIET_WAIT=0

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { printf '== %s\n' "$*" >&2; }
# shellcheck source=peer/lib.sh
. "$P/lib.sh"

[[ $# -eq 0 ]] || { sed -n '2,56p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
for v in DURATION WARMUP MAX_P99_MS N_BLOCK BASE_PORT EMBEDDED; do [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v=${!v}: want a whole number"; done
for n in $NODES; do [[ "$n" =~ ^[1-9]$ ]] || die "NODES: $n: want 1-9"; done
for r in $RATES; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || die "RATES: $r: want a positive whole number"; done
for m in $PATHS; do [[ "$m" == reject || "$m" == pass ]] || die "PATHS: $m: want reject or pass"; done
for b in sipp gcc curl awk ss sha256sum setpriv "$ETCD_BIN" "$PG_BIN/initdb" "$PG_BIN/postgres"; do
  command -v "$b" >/dev/null || die "$b not found (apt-get install -y sip-tester gcc curl iproute2 etcd-server postgresql)"
done
maxn=1; for n in $NODES; do ((n > maxn)) && maxn=$n; done
node_port() { echo $((BASE_PORT + $1 + $2)); }  # OFFSET I
for ((i = 1; i <= maxn; i++)); do
  ports_free "$(node_port 0 $i)" "$(node_port 10 $i)" "$(node_port 30 $i)" "$(node_port 40 $i)" "$(node_port 50 $i)"
done
ports_free "$PBX_PORT" "$ETCD_PORT" "$((ETCD_PORT + 1))" "$PG_PORT"

prepare_out cluster
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -c 0
build_callguard
build_shim
gen_data 10   # the blocklist (N_BLOCK numbers); pass numbers are made per trial

# ---- process bookkeeping ---------------------------------------------------------------
NODE_PIDS=(); UAS_PID=""; SEED_PID=""; UAC_PIDS=(); ETCD_PID=""; PG_PID=""
stop_nodes() {
  local p
  for p in "${UAC_PIDS[@]}"; do stop_pid "$p"; done; UAC_PIDS=()
  stop_pid "$UAS_PID"; UAS_PID=""
  for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done; NODE_PIDS=()
}
stop_all() {
  stop_nodes
  stop_pid "$SEED_PID"; SEED_PID=""
  stop_pid "$ETCD_PID"; ETCD_PID=""
  # postgres: SIGINT is its fast shutdown; it ends its own backends
  [[ -n "$PG_PID" ]] && kill -INT "$PG_PID" 2>/dev/null && stop_pid "$PG_PID"; PG_PID=""
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

# ---- etcd and PostgreSQL -----------------------------------------------------------------
start_etcd() {
  local i url=http://127.0.0.1:$ETCD_PORT peer=http://127.0.0.1:$((ETCD_PORT + 1))
  mkdir -p "$OUT/etcd"
  "$ETCD_BIN" --name bench --data-dir "$OUT/etcd/data" --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "bench=$peer" \
    --listen-metrics-urls "" --log-level warn >"$OUT/etcd/etcd.log" 2>&1 &
  ETCD_PID=$!
  for i in $(seq 100); do
    curl -sf "$url/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    kill -0 "$ETCD_PID" 2>/dev/null || { tail -20 "$OUT/etcd/etcd.log" >&2; die "etcd exited at start"; }
    sleep 0.1
  done
  die "etcd not healthy (see $OUT/etcd/etcd.log)"
}
start_pg() {
  local d=$OUT/pg i as=()
  mkdir -p "$d"
  if [[ $(id -u) == 0 ]]; then
    chown -R postgres: "$d" || die "cannot chown $d to postgres"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
  "${as[@]}" "$PG_BIN/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 >"$d/initdb.log" 2>&1 ||
    { tail -20 "$d/initdb.log" >&2; die "initdb failed"; }
  "${as[@]}" "$PG_BIN/postgres" -D "$d/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$d" -c fsync=on -c synchronous_commit=on -c max_connections=200 \
    -c shared_buffers=128MB -c log_min_messages=warning >"$d/postgres.log" 2>&1 &
  PG_PID=$!
  for i in $(seq 100); do
    [[ -n "$(ss -Hltnp "sport = :$PG_PORT" 2>/dev/null | grep "pid=$PG_PID,")" ]] && { sleep 0.3; return 0; }
    kill -0 "$PG_PID" 2>/dev/null || { tail -20 "$d/postgres.log" >&2; die "postgres exited at start"; }
    sleep 0.1
  done
  die "postgres not listening on :$PG_PORT (see $d/postgres.log)"
}
pg_ticks() {  # PostgreSQL's CPU so far: the postmaster, its live children, and (cutime+cstime) the children it reaped
  local t v p
  t=$(awk '{print $14+$15+$16+$17}' "/proc/$PG_PID/stat" 2>/dev/null) || t=0
  for p in $(cat /proc/[0-9]*/stat 2>/dev/null | sed 's/^\([0-9]*\) (.*) /\1 /' | awk -v pp="$PG_PID" '$3 == pp {print $1}'); do
    v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "${t:-0}"
}
cpu_ticks() {  # PID... -> utime+stime, clock ticks
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# ---- nodes -------------------------------------------------------------------------------
# set_node I: the globals cg_env reads, for node I
set_node() { SUT_PORT=$(node_port 10 "$1"); ADMIN_PORT=$(node_port 30 "$1"); METRICS_PORT=$(node_port 40 "$1"); }
start_nodes() {  # STORE(pg|embedded) N DIR
  local store=$1 n=$2 d=$3 i extra
  for ((i = 1; i <= n; i++)); do
    set_node "$i"
    mkdir -p "$d/node$i"
    if [[ "$store" == pg ]]; then
      extra="GUARD_POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable GUARD_CLUSTER_PROVIDER=etcd"
      extra+=" GUARD_ETCD_ENDPOINTS=http://127.0.0.1:$ETCD_PORT GUARD_CLUSTER_NAME=bench$RUN_ID"
      extra+=" GUARD_CLUSTER_LISTEN=127.0.0.1:$(node_port 50 "$i") GUARD_CLUSTER_ADVERTISED_HOST=127.0.0.1"
    else
      extra=""
      cp -a "$CG_SEED" "$d/node$i/data"
    fi
    # shellcheck disable=SC2046
    env $(cg_env "$d/node$i/data") $extra "$CALLGUARD_BIN" serve >"$d/node$i/callguard.log" 2>&1 &
    NODE_PIDS+=($!)
  done
  for ((i = 1; i <= n; i++)); do set_node "$i"; cg_wait_ready "${NODE_PIDS[$((i - 1))]}" "$d/node$i/callguard.log"; done
}
RUN_ID=0
PG_SEEDED=0
seed_pg() {  # through node 1 (running): the N_BLOCK blocks, once per run
  local api codes t0 last i
  ((PG_SEEDED)) && return 0
  set_node 1; api="http://127.0.0.1:$ADMIN_PORT"; t0=$(date +%s)
  log "seeding PostgreSQL: $N_BLOCK blocks at level 6 through node 1's admin API"
  awk -v api="$api" '{printf "url = \"%s/v1/blocks/%s\"\noutput = \"/dev/null\"\n", api, $1}' "$WORK/data/blocklist.txt" >"$OUT/seed_urls.cfg"
  codes=$(curl -sS --no-progress-meter --parallel --parallel-max 16 -X PUT -H "Authorization: Bearer $CG_TOKEN" \
    -H 'Content-Type: application/json' --data '{"level":6,"reason":"SIP benchmark reject list","by":"cluster.sh"}' \
    -w '%{http_code}\n' -K "$OUT/seed_urls.cfg" | sort | uniq -c | tr -s ' ')
  [[ "$codes" =~ ^\ ?$N_BLOCK\ 20[0-9]$ ]] || die "seeding blocks: HTTP status counts: $codes"
  last=7999$(printf '%07d' $((N_BLOCK - 1)))
  for i in $(seq 100); do
    curl -sf -H "Authorization: Bearer $CG_TOKEN" "$api/v1/callers/$last" | grep -q '"level": *6' && break
    sleep 0.1
  done
  log "seeded in $(($(date +%s) - t0)) s"
  PG_SEEDED=1
}

# ---- one trial ---------------------------------------------------------------------------
TRIAL=0
trial() {  # LABEL N PATH RATE DIR -> a line in RESULTS
  local label=$1 n=$2 path=$3 rate=$4 d=$5 i calls_i scen key
  local calls=$((rate * DURATION))
  calls_i=$((calls / n)); calls=$((calls_i * n))
  TRIAL=$((TRIAL + 1))
  mkdir -p "$d"
  case "$path" in reject) scen=uac_reject.xml key=first ;; pass) scen=uac_pass.xml key=answer ;; esac
  # numbers: node i's UAC gets every n-th one (pass: fresh, 78TTxxxxxxx with T the trial)
  for ((i = 1; i <= n; i++)); do
    if [[ "$path" == pass ]]; then
      awk -v c="$calls_i" -v t="$TRIAL" -v i="$i" -v n="$n" 'BEGIN{print "SEQUENTIAL"; for(k=0;k<c;k++) printf "78%02d%07d;\n", t % 100, k*n+i}' >"$d/callers$i.csv"
    else
      awk -v nb="$N_BLOCK" -v i="$i" -v n="$n" 'BEGIN{print "SEQUENTIAL"; for(k=i-1;k<nb;k+=n) printf "7999%07d;\n", k}' >"$d/callers$i.csv"
    fi
  done
  local prof="" gk0 gk1 pk0=0 pk1=0 ek0 ek1 uk0 uk1 s0 s1 t0 t1
  if [[ "${PROFILE:-0}" == 1 ]]; then
    set_node 1
    curl -s -o "$d/cpu.pprof" "http://127.0.0.1:$METRICS_PORT/debug/pprof/profile?seconds=$DURATION" &
    prof=$!
  fi
  gk0=$(cpu_ticks "${NODE_PIDS[@]}"); [[ -n "$PG_PID" ]] && pk0=$(pg_ticks); ek0=$(cpu_ticks $ETCD_PID); uk0=$(cpu_ticks $UAS_PID); s0=$(sys_ticks)
  t0=$(date +%s.%N)
  for ((i = 1; i <= n; i++)); do
    set_node "$i"
    mkdir -p "$d/uac$i"
    (
      cd "$d/uac$i" || exit 99
      # -r RATE -rp N s: RATE calls per N seconds = RATE/N calls/s from this UAC
      LD_PRELOAD="$SHIM" exec sipp "127.0.0.1:$SUT_PORT" -sf "$P/$scen" -inf "$d/callers$i.csv" -s "$CALLEE" \
        -i 127.0.0.1 -p "$(node_port 0 "$i")" -r "$rate" -rp $((n * 1000)) -m "$calls_i" -l 15000 -nostdin \
        -timer_resol 1 -buff_size 4194304 -recv_timeout 8000 -timeout $((DURATION + 15))s \
        -trace_stat -stf "$d/uac$i/stat.csv" -fd 1 -trace_rtt -rtt_freq 1 \
        -trace_err -error_file "$d/uac$i/errors.log" >"$d/uac$i/stdout" 2>&1
    ) &
    UAC_PIDS+=($!)
  done
  wait "${UAC_PIDS[@]}"; UAC_PIDS=()
  t1=$(date +%s.%N)
  gk1=$(cpu_ticks "${NODE_PIDS[@]}"); [[ -n "$PG_PID" ]] && pk1=$(pg_ticks)
  ek1=$(cpu_ticks $ETCD_PID); uk1=$(cpu_ticks $UAS_PID); s1=$(sys_ticks)
  [[ -n "$prof" ]] && wait "$prof"
  local ok failed retrans lost=0 p
  for p in "${NODE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || lost=$((lost + 1)); done
  read -r ok failed retrans < <(for ((i = 1; i <= n; i++)); do
      awk -F';' 'NR==1{for(j=1;j<=NF;j++) h[$j]=j; next} {last=$0}
        END{split(last, v, ";"); print v[h["SuccessfulCall(C)"]]+0, v[h["FailedCall(C)"]]+0, v[h["Retransmissions(C)"]]+0}' "$d/uac$i/stat.csv" 2>/dev/null
    done | awk '{a+=$1; b+=$2; c+=$3} END{print a+0, b+0, c+0}')
  cat "$d"/uac*/*_rtt.csv 2>/dev/null | awk -F';' -v k="$key" '$3==k{print $1, $2}' >"$d/rtt.txt"
  awk '{print $2}' "$d/rtt.txt" | sort -g >"$d/lat.ms"
  local p50 p99 ach
  read -r p50 p99 < <(pctl "$d/lat.ms")
  # achieved: calls answered per second between the first and the last stamp
  # (response time subtracted: when the INVITEs went out)
  ach=$(awk '{s=$1-$2; if(NR==1||s<a) a=s; if(NR==1||s>b) b=s} END{ if(NR>1 && b>a) printf "%.0f", (NR-1)*1000/(b-a); else print "NA"}' "$d/rtt.txt")
  gzip -f "$d/rtt.txt" "$d/lat.ms" "$d"/uac*/*_rtt.csv 2>/dev/null
  local line
  line=$(awk -v hz="$HZ" -v a="$t0" -v b="$t1" -v g="$((gk1 - gk0))" -v p="$((pk1 - pk0))" -v e="$((ek1 - ek0))" -v u="$((uk1 - uk0))" \
    -v calls="$calls" -v ok="$ok" -v failed="$failed" -v retrans="$retrans" -v p50="$p50" -v p99="$p99" -v ach="$ach" \
    -v lost="$lost" -v s0="$s0" -v s1="$s1" -v rate="$rate" -v maxp99="$MAX_P99_MS" -v label="$label" -v n="$n" -v path="$path" 'BEGIN{
      w = b - a; split(s0, x, " "); split(s1, y, " "); busy = ((y[1] - x[1]) - (y[2] - x[2])) / hz
      sus = (lost == 0 && ok == calls && failed == 0 && ach != "NA" && ach >= 0.97 * rate && p99 != "NA" && p99 < maxp99) ? "yes" : "no"
      printf "store=%s nodes=%d path=%s offered=%d calls=%d achieved=%s ok=%d failed=%d retrans=%d p50_ms=%s p99_ms=%s wall_s=%.1f cpu_guards_pct=%.0f cpu_pg_pct=%.0f cpu_etcd_pct=%.0f cpu_pbx_pct=%.0f us_per_call=%.0f busy_pct=%.0f nodes_lost=%d sustained=%s\n",
        label, n, path, rate, calls, ach, ok, failed, retrans, p50, p99, w, 100*g/hz/w, 100*p/hz/w, 100*e/hz/w, 100*u/hz/w,
        (calls > 0 ? (g + p + e) / hz * 1e6 / calls : 0), 100*busy/w, lost, sus }')
  echo "$line" >>"$RESULTS"
  log "   $line"
}

# ---- the run -----------------------------------------------------------------------------
RESULTS=$OUT/results.txt; : >"$RESULTS"
log "$CG_LABEL, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); out: $OUT"
run_config() {  # STORE N
  local store=$1 n=$2 d=$OUT/$1-$2 rate path p
  RUN_ID=$((RUN_ID + 1))
  log "$store, $n node(s)"
  start_nodes "$store" "$n" "$d"
  [[ "$store" == pg ]] && [[ " $PATHS " == *" reject "* ]] && seed_pg
  start_uas "$d"
  sleep 1
  if ((WARMUP > 0)); then  # lazy set-up of each process and of remoting, not counted
    local keep=$RESULTS keepd=$DURATION
    RESULTS=/dev/null DURATION=$WARMUP
    trial "$store" "$n" pass 50 "$d/warmup" >/dev/null 2>&1
    RESULTS=$keep DURATION=$keepd
  fi
  for rate in $RATES; do
    for path in $PATHS; do
      trial "$store" "$n" "$path" "$rate" "$d/$path-$rate"; sleep 1
      # a node that exited (e.g. its etcd lease expired while it was starved:
      # it leaves by design) leaves the rest of this size meaningless
      for p in "${NODE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || { log "a node exited (see $d/node*/callguard.log): skipping the rest of $n node(s)"; break 3; }; done
    done
  done
  stop_nodes
}
if ((EMBEDDED)); then
  set_node 1
  gen_data 10
  cg_seed
  run_config embedded 1
fi
start_etcd
start_pg
for n in $NODES; do run_config pg "$n"; done
stop_all

# ---- the table ---------------------------------------------------------------------------
{
  echo "| Store, nodes | Path | Offered calls/s | Achieved | OK / calls | p50 / p99 ms | CPU % of a core: guards / PostgreSQL / etcd | µs CPU per call | Machine busy % | Sustained |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  awk '{ for(i=1;i<=NF;i++){split($i,kv,"="); f[kv[1]]=kv[2]}
    st = (f["store"] == "pg") ? "PostgreSQL + etcd, " f["nodes"] : "embedded, 1"
    cpu = (f["store"] == "pg") ? f["cpu_guards_pct"] " / " f["cpu_pg_pct"] " / " f["cpu_etcd_pct"] : f["cpu_guards_pct"] " / – / –"
    printf "| %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s | %s |\n", st, f["path"], f["offered"], f["achieved"], f["ok"], f["calls"],
      f["p50_ms"], f["p99_ms"], cpu, f["us_per_call"], f["busy_pct"], f["sustained"] (f["nodes_lost"] > 0 ? " (" f["nodes_lost"] " node exited)" : "") }' "$RESULTS"
} >"$OUT/table.md"
{
  echo "cluster run: $CG_LABEL, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $DURATION s per trial; reject = INVITE->403, pass = INVITE->200 through the guard from the PBX"
  cat "$OUT/table.md"
  echo "files: $OUT"
} | tee "$OUT/summary.txt"
