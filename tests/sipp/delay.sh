#!/usr/bin/env bash
# tests/sipp/delay.sh — the delay a passed call gets from the guard.
#
# N calls at 1 call/s from fresh numbers through `callguard serve` (this
# tree's build, or CALLGUARD_BIN) to a SIPp PBX (peer/uas_pbx.xml), and at the
# same time N calls at 1 call/s straight to the same PBX, half a second apart,
# so whatever else the machine does touches both streams alike. Each call is
# peer/uac_pass.xml; INVITE -> 200 ("answer") comes from SIPp's -trace_rtt
# with peer/sipp_clock_shim.so preloaded (precise times, not SIPp 3.6's 4 ms
# coarse clock). WARMUP calls (default 3) go each way first and are not
# counted (the first calls of a process pay its lazy set-up).
#
# Prints INVITE -> 200 p50 / p99 / max through the guard and direct, and the
# difference of the p50s and of the p99s: the guard's delay. The p99 is the
# nearest rank: with N <= 100 it is the slowest call; raise N for a real p99.
#
# Usage: tests/sipp/delay.sh            (go tool task bench-delay)
#
# Settings (environment):
#   N=60 WARMUP=3
#   CALLGUARD_BIN=path     measure this binary (default: build ./cmd/callguard)
#   CG_EXTRA_ENV="GUARD_X=y ..."   more settings for callguard
#   UAC_PORT=16260 SUT_PORT=16270 PBX_PORT=16280 (a second UAC on
#                          UAC_PORT+1; admin API on SUT_PORT+200, metrics on
#                          SUT_PORT+201)
#   WORK=/tmp/callguard-bench-sip   the SIPp clock shim
#   OUT=$WORK/delay/<time>          logs, SIPp files, summary.txt
#
# Needs sipp, gcc, curl, go. Only processes started here are stopped, by their
# saved PIDs.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
P=$ROOT/tests/sipp/peer

N=${N:-60}
WARMUP=${WARMUP:-3}
UAC_PORT=${UAC_PORT:-16260}
SUT_PORT=${SUT_PORT:-16270}
PBX_PORT=${PBX_PORT:-16280}
ADMIN_PORT=$((SUT_PORT + 200))
METRICS_PORT=$((SUT_PORT + 201))
WORK=${WORK:-/tmp/callguard-bench-sip}
CALLEE=88001234567

die() { echo "delay.sh: $*" >&2; exit 1; }
log() { printf '== %s\n' "$*" >&2; }
# shellcheck source=peer/lib.sh
. "$P/lib.sh"

[[ $# -eq 0 ]] || { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
for v in N WARMUP; do [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v=${!v}: want a whole number"; done
((N > 0)) || die "N must be positive"
for b in sipp gcc curl awk ss; do command -v $b >/dev/null || die "$b not found (apt-get install -y sip-tester gcc curl iproute2)"; done
ports_free "$UAC_PORT" "$((UAC_PORT + 1))" "$SUT_PORT" "$PBX_PORT" "$ADMIN_PORT" "$METRICS_PORT"

prepare_out delay
ulimit -c 0

build_callguard
build_shim

SUT_PID=""; UAS_PID=""; SEED_PID=""; UAC_PIDS=()
stop_all() {
  local p
  for p in "${UAC_PIDS[@]}"; do stop_pid "$p"; done; UAC_PIDS=()
  stop_pid "$UAS_PID"; UAS_PID=""
  stop_pid "$SUT_PID"; SUT_PID=""
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

# fresh numbers, one list for the warm-up and one for the measured calls (the
# direct stream reads the same list; the PBX does not care)
{ echo SEQUENTIAL; awk -v n="$WARMUP" 'BEGIN{for(i=0;i<n;i++) printf "7901%07d;\n", i}'; } >"$OUT/warmup.csv"
{ echo SEQUENTIAL; awk -v n="$N" -v o="$WARMUP" 'BEGIN{for(i=0;i<n;i++) printf "7901%07d;\n", o+i}'; } >"$OUT/measure.csv"

mkdir -p "$OUT/data"
# shellcheck disable=SC2046
env $(cg_env "$OUT/data") "$CALLGUARD_BIN" serve >"$OUT/callguard.log" 2>&1 &
SUT_PID=$!
cg_wait_ready "$SUT_PID" "$OUT/callguard.log"
start_uas "$OUT"

uac() {  # NAME TARGET PORT RATE CALLS CSV -> OUT/NAME/, in the background (UAC_PIDS)
  local d=$OUT/$1
  mkdir -p "$d"
  (
    cd "$d" || exit 99
    LD_PRELOAD="$SHIM" sipp "$2" -sf "$P/uac_pass.xml" -inf "$6" \
      -s "$CALLEE" -i 127.0.0.1 -p "$3" -r "$4" -m "$5" -nostdin -timer_resol 1 -recv_timeout 8000 \
      -timeout $(($5 / $4 + 30))s -trace_stat -stf "$d/stat.csv" -trace_rtt -rtt_freq 1 \
      -trace_err -error_file "$d/errors.log" >"$d/stdout" 2>&1
    echo $? >"$d/rc"
  ) &
  UAC_PIDS+=($!)
}
run_pair() {  # TAG CALLS RATE
  log "$1: $2 calls each way at $3 call(s)/s"
  uac "$1-guard" "127.0.0.1:$SUT_PORT" "$UAC_PORT" "$3" "$2" "$OUT/$1.csv"
  sleep 0.5
  uac "$1-direct" "127.0.0.1:$PBX_PORT" "$((UAC_PORT + 1))" "$3" "$2" "$OUT/$1.csv"
  wait "${UAC_PIDS[@]}"; UAC_PIDS=()
}
((WARMUP > 0)) && run_pair warmup "$WARMUP" 5
run_pair measure "$N" 1

stats() {  # NAME -> "ok failed p50 p99 max"
  local d=$OUT/$1 rtt ok failed p50 p99 mx
  read -r ok failed < <(awk -F';' 'NR==1{for(i=1;i<=NF;i++) h[$i]=i; next} {last=$0}
    END{split(last, v, ";"); printf "%d %d\n", v[h["SuccessfulCall(C)"]], v[h["FailedCall(C)"]]}' "$d/stat.csv" 2>/dev/null || echo "0 0")
  rtt=$(ls "$d"/*_rtt.csv 2>/dev/null | head -1)
  awk -F';' 'NR>1 && $3=="answer"{print $2}' "$rtt" 2>/dev/null | sort -g >"$d/answer.ms"
  read -r p50 p99 < <(pctl "$d/answer.ms")
  mx=$(tail -1 "$d/answer.ms"); echo "$ok $failed $p50 $p99 ${mx:-NA}"
}
read -r gok gfail gp50 gp99 gmax < <(stats measure-guard)
read -r dok dfail dp50 dp99 dmax < <(stats measure-direct)
{
  echo "delay of a passed call: $CG_LABEL, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "INVITE -> 200, $N calls at 1 call/s each way (after $WARMUP warm-up calls):"
  printf '  through the guard: p50 %s ms, p99 %s ms, max %s ms (%s ok, %s failed)\n' "$gp50" "$gp99" "$gmax" "$gok" "$gfail"
  printf '  direct to the PBX: p50 %s ms, p99 %s ms, max %s ms (%s ok, %s failed)\n' "$dp50" "$dp99" "$dmax" "$dok" "$dfail"
  awk -v a="$gp50" -v b="$dp50" -v c="$gp99" -v d="$dp99" 'BEGIN{
    if (a == "NA" || b == "NA") print "  the guard adds: NA"
    else printf "  the guard adds: %.3f ms at p50, %.3f ms at p99\n", a - b, c - d }'
  echo "  files: $OUT"
} | tee "$OUT/summary.txt"
