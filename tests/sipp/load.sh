#!/usr/bin/env bash
# tests/sipp/load.sh — callguard's SIP load benchmark (issue 4, "Measure").
#
# Everything runs on 127.0.0.1 and every step is bounded in calls and time.
#
#   1. Build callguard and start `callguard serve` on a fresh data directory,
#      SIP on $SIP_PORT, its PBX a SIPp UAS (uas_pbx.xml) on $PBX_PORT.
#      (With TARGET=host:port set, use that running guard instead: then
#      $BLOCKED must already be hard-blocked there and its PBX must answer.)
#   2. Hard-block one caller ($BLOCKED, level 7) with `callguard block`.
#   3. reject: SIPp uac_reject.xml at each rate of $RATES for $STEP_SECONDS;
#      the highest rate with no failed call, and the rate SIPp actually
#      reached, is the reject path's capacity. One SIPp UAC tops out near
#      19,000 calls/s on these machines, so rates above $SPLIT_ABOVE are
#      split over two UACs.
#   4. pass: SIPp uac_pass.xml at $PASS_RATE calls/s for $PASS_SECONDS,
#      fresh caller numbers, through the guard to the SIPp PBX.
#   5. latency: p50/p99 of INVITE-to-final-response at $LATENCY_RATE
#      calls/s on both paths, by the Go client siptest.LoadRun
#      (BenchmarkRejectPathLatency, BenchmarkPassPathLatency in tests/).
#      SIPp 3.6 (Debian's sip-tester) stamps its response times with
#      CLOCK_MONOTONIC_COARSE, which ticks every 4 ms here, so its rtd
#      figures read 0, 4 or 8 ms on loopback: quote the Go client's.
#
# Usage: tests/sipp/load.sh [all|reject|pass|latency]      (default all)
#
# Settings (environment):
#   RATES="500 1000 2000 5000 10000 15000 20000"  reject-path steps, calls/s
#   STEP_SECONDS=10        length of each reject step
#   PASS_RATE=500          pass-path rate;    PASS_SECONDS=20
#   LATENCY_RATE=500       Go client's rate;  LATENCY_SECONDS=10
#   SPLIT_ABOVE=15000      above this rate, two SIPp UACs share the load
#   SIP_PORT=15060 PBX_PORT=15070 ADMIN_PORT=15080
#   TARGET=127.0.0.1:5060  use a running guard (skips 1 and 2)
#   BLOCKED=+79990003344   the hard-blocked caller
#   OUT=<dir>              where logs and SIPp statistics go (default: a temp dir)
#   KEEP=1                 leave the guard and the SIPp PBX running at the end
#
# Needs: go, sipp (apt-get install -y sip-tester). Takes about
# (#RATES x STEP_SECONDS + PASS_SECONDS + 2 x LATENCY_SECONDS) seconds plus
# setup, and both cores: run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SIPP_DIR=$ROOT/tests/sipp

MODE=${1:-all}
RATES=${RATES:-"500 1000 2000 5000 10000 15000 20000"}
STEP_SECONDS=${STEP_SECONDS:-10}
PASS_RATE=${PASS_RATE:-500}
PASS_SECONDS=${PASS_SECONDS:-20}
LATENCY_RATE=${LATENCY_RATE:-500}
LATENCY_SECONDS=${LATENCY_SECONDS:-10}
SPLIT_ABOVE=${SPLIT_ABOVE:-15000}
SIP_PORT=${SIP_PORT:-15060}
PBX_PORT=${PBX_PORT:-15070}
ADMIN_PORT=${ADMIN_PORT:-15080}
BLOCKED=${BLOCKED:-+79990003344}
CALLEE=88001234567
OUT=${OUT:-$(mktemp -d /tmp/callguard-load.XXXXXX)}
mkdir -p "$OUT"

case $MODE in all|reject|pass|latency) ;; *) echo "usage: $0 [all|reject|pass|latency]" >&2; exit 2 ;; esac
command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 1; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

log() { printf '== %s\n' "$*"; }

# sipp_up ADDR: does something answer OPTIONS there?
sipp_up() {
  sipp "$1" -sf "$SIPP_DIR/options.xml" -i 127.0.0.1 -m 1 -timeout 2s -timeout_error -nostdin \
    >/dev/null 2>&1
}

# stat FILE COLUMN: the last value of a column of a SIPp statistics file.
stat() {
  awk -F';' -v col="$2" 'NR==1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
                         END { if (c) print $c; else print "?" }' "$1"
}

if [ -z "${TARGET:-}" ]; then
  TARGET=127.0.0.1:$SIP_PORT
  log "building callguard"
  go build -o "$OUT/callguard" ./cmd/callguard

  log "SIPp PBX (uas_pbx.xml) on 127.0.0.1:$PBX_PORT"
  sipp -sf "$SIPP_DIR/uas_pbx.xml" -i 127.0.0.1 -p "$PBX_PORT" -mp $((PBX_PORT + 100)) -aa -nostdin \
    -trace_stat -stf "$OUT/pbx-stats.csv" -fd 5 -timeout 3600s >"$OUT/pbx.out" 2>&1 &
  PBX_PID=$!
  [ "${KEEP:-}" = 1 ] || PIDS+=("$PBX_PID")

  log "callguard serve: SIP $TARGET, PBX sip:pbx@127.0.0.1:$PBX_PORT, log $OUT/guard.log"
  GUARD_DATA_DIR="$OUT/data" GUARD_SIP_LISTEN="$TARGET" GUARD_TRUSTED_PEERS=127.0.0.1/32 GUARD_ATTACK_RATE=0 \
    GUARD_PBX_URI="sip:pbx@127.0.0.1:$PBX_PORT" GUARD_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
    GUARD_LOG_LEVEL=warn "$OUT/callguard" serve >"$OUT/guard.log" 2>&1 &
  GUARD_PID=$!
  [ "${KEEP:-}" = 1 ] || PIDS+=("$GUARD_PID")
  for _ in $(seq 1 50); do
    sipp_up "$TARGET" && break
    kill -0 "$GUARD_PID" 2>/dev/null || { echo "callguard exited:" >&2; tail -20 "$OUT/guard.log" >&2; exit 1; }
    sleep 0.2
  done
  sipp_up "$TARGET" || { echo "callguard does not answer SIP OPTIONS at $TARGET (does serve listen for SIP yet?)" >&2; exit 1; }

  log "hard-blocking $BLOCKED"
  GUARD_DATA_DIR="$OUT/data" GUARD_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT" \
    "$OUT/callguard" block "$BLOCKED" --level 7 --reason "load benchmark" --by load.sh
else
  log "using the running guard at $TARGET ($BLOCKED must be hard-blocked there)"
  sipp_up "$TARGET" || { echo "nothing answers SIP OPTIONS at $TARGET" >&2; exit 1; }
fi

# uac NAME SCENARIO RATE SECONDS INF [extra sipp args...]: run one SIPp UAC
# against the guard, bounded in calls (RATE x SECONDS) and time; prints
# "successful failed rate" from its statistics and returns SIPp's exit code.
uac() {
  local name=$1 scenario=$2 rate=$3 seconds=$4 inf=$5
  shift 5
  local calls=$((rate * seconds))
  local rc=0
  sipp "$TARGET" -sf "$SIPP_DIR/$scenario" -inf "$inf" -s "$CALLEE" -i 127.0.0.1 \
    -r "$rate" -m "$calls" -l $((rate * 4 + 100)) -nostdin \
    -timeout $((seconds * 3 + 30))s -timeout_error \
    -trace_stat -stf "$OUT/$name-stats.csv" -fd 1 \
    -trace_err -error_file "$OUT/$name-errors.log" \
    -max_recv_loops 10000 -max_sched_loops 10000 "$@" >"$OUT/$name.out" 2>&1 || rc=$?
  echo "$(stat "$OUT/$name-stats.csv" 'SuccessfulCall(C)') $(stat "$OUT/$name-stats.csv" 'FailedCall(C)') $(stat "$OUT/$name-stats.csv" 'CallRate(C)')"
  return $rc
}

if [ "$MODE" = all ] || [ "$MODE" = reject ]; then
  printf 'SEQUENTIAL\n%s;\n' "$BLOCKED" >"$OUT/reject.csv"
  log "reject path: SIPp uac_reject.xml, ${STEP_SECONDS}s per step"
  printf '%8s %8s %10s %8s %10s\n' rate/s uacs successful failed reached/s
  best=0
  for rate in $RATES; do
    uacs=1
    [ "$rate" -gt "$SPLIT_ABOVE" ] && uacs=2
    per=$((rate / uacs))
    ok=0; failed=0; reached=0; rcs=0
    results=()
    for u in $(seq 1 "$uacs"); do
      ( uac "reject-$rate-$u" uac_reject.xml "$per" "$STEP_SECONDS" "$OUT/reject.csv" \
          -p $((SIP_PORT + 200 + u)) -mp $((SIP_PORT + 300 + 10 * u)) >"$OUT/reject-$rate-$u.result" ) &
      results+=($!)
    done
    for pid in "${results[@]}"; do wait "$pid" || rcs=$((rcs + 1)); done
    for u in $(seq 1 "$uacs"); do
      read -r s f r <"$OUT/reject-$rate-$u.result"
      ok=$((ok + ${s/\?/0})); failed=$((failed + ${f/\?/0}))
      reached=$(awk -v a="$reached" -v b="${r/\?/0}" 'BEGIN { printf "%.0f", a + b }')
    done
    printf '%8s %8s %10s %8s %10s\n' "$rate" "$uacs" "$ok" "$failed" "$reached"
    if [ "$failed" -ne 0 ] || [ "$rcs" -ne 0 ]; then
      echo "   failures at $rate calls/s (SIPp logs: $OUT/reject-$rate-*); stopping the ramp"
      break
    fi
    best=$rate
  done
  log "reject path: highest rate with no failed call: $best calls/s"
fi

if [ "$MODE" = all ] || [ "$MODE" = pass ]; then
  calls=$((PASS_RATE * PASS_SECONDS))
  { echo SEQUENTIAL; for i in $(seq 1 "$calls"); do printf '+7997%07d;\n' "$i"; done; } >"$OUT/pass.csv"
  log "pass path: SIPp uac_pass.xml at $PASS_RATE calls/s for ${PASS_SECONDS}s ($calls fresh callers), SIPp as the PBX"
  rc=0
  uac pass uac_pass.xml "$PASS_RATE" "$PASS_SECONDS" "$OUT/pass.csv" -d 100 \
    -p $((SIP_PORT + 400)) -mp $((SIP_PORT + 402)) >"$OUT/pass.result" || rc=$?
  read -r s f r <"$OUT/pass.result"
  echo "   successful $s, failed $f, reached $r calls/s, SIPp exit $rc (logs: $OUT/pass*)"
fi

if [ "$MODE" = all ] || [ "$MODE" = latency ]; then
  log "latency at $LATENCY_RATE calls/s, ${LATENCY_SECONDS}s per path (Go client, monotonic clock)"
  CALLGUARD_SIP_TARGET=$TARGET CALLGUARD_BLOCKED=$BLOCKED CALLGUARD_LOAD_RATE=$LATENCY_RATE \
    go test -count=1 -run '^$' -bench 'RejectPathLatency|PassPathLatency' \
    -benchtime "$((LATENCY_RATE * LATENCY_SECONDS))x" ./tests/ | tee "$OUT/latency.txt"
fi

log "logs and statistics in $OUT"
if [ "${KEEP:-}" = 1 ] && [ -n "${GUARD_PID:-}" ]; then
  echo "left running: callguard pid $GUARD_PID (SIP $TARGET), SIPp PBX pid $PBX_PID"
fi
exit 0
