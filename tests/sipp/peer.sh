#!/usr/bin/env bash
# tests/sipp/peer.sh — callguard and a Kamailio peer through one SIPp protocol.
#
# Drives `callguard serve` (this tree's build) and, when `kamailio` is
# installed, Kamailio configured with the same policy (peer/kamailio.cfg:
# 5 calls/hour, 20/day -> level 3; level >= 6 rejected; a whitelist; all in
# memory, nothing durable) with the same SIPp scenarios (peer/*.xml) over
# loopback, each measurement on one system and then the other, and prints one
# markdown table with both systems' figures.
#
#   reject @ RATE  10,000 distinct numbers hard-blocked at level 6, the reply
#                  must be 403 (callguard runs with GUARD_REJECT_STATUS=403);
#                  figures: INVITE -> 403 p50 / p99
#   pass @ RATE    fresh numbers, relayed to a SIPp PBX (peer/uas_pbx.xml);
#                  figures: INVITE -> 200 p50 / p99
#   max-reject, max-pass   the highest sustained rate: doubling from
#                  START_REJECT / START_PASS until a step fails, then bisection
#                  (steps of 50 calls/s) to within 5 %, bounded by
#                  SEARCH_BUDGET seconds and SEARCH_MAX_STEPS steps
#
# Sustained: every call successful, no SIPp retransmission, achieved rate
# >= 97 % of the target, p99 of the final response (the 403, or the 200) under
# MAX_P99_MS (50 ms). A search step with no failed call that fails only on p99
# or rate (or on retransmissions while other processes took more than
# MAX_OTHER_PCT % of a core) is retried RETRIES times.
#
# CPU: utime+stime of the system under test (all of Kamailio's processes) from
# /proc/<pid>/stat before and after the traffic; "CPU" is % of one core over
# the traffic's wall time, "per call" is CPU time / calls offered (10 ms ticks:
# read figures under ~20 µs as approximate). Latencies come from SIPp's
# -trace_rtt with peer/sipp_clock_shim.so preloaded: SIPp 3.6 stamps with
# CLOCK_MONOTONIC_COARSE (4 ms ticks here), the shim gives it the precise clock.
#
# For callguard a data directory seeded through the admin API (the 10,000
# blocks and the whitelist) is made once per binary and copied for every trial.
#
# Usage: tests/sipp/peer.sh [all|fixed|max]          (default all)
#
# Settings (environment):
#   SUTS="kamailio callguard"   systems to measure (kamailio is skipped, saying
#                          so, when it is not installed)
#   RATES="500 2000"       fixed rates, calls/s;   DURATION=10 s each
#   SEARCH_DURATION=5      seconds of traffic per search step
#   SEARCH_BUDGET=40       seconds after which a search starts no new step
#                          (once it has made 3 steps)
#   SEARCH_MAX_STEPS=8     RETRIES=1
#   START_REJECT=4000 START_PASS=1000   first step of each search
#   MAX_P99_MS=50          MAX_OTHER_PCT=25
#   QUIET_PCT=20 QUIET_WAIT=2   before a trial, wait up to QUIET_WAIT s until
#                          the machine is under QUIET_PCT % of a core busy
#                          (0: do not wait); raise it on a machine others share
#   CHILDREN=1             Kamailio UDP workers;  SHM_MB=1024;  MEM=tlsf
#   CALLGUARD_BIN=path     measure this binary (default: build ./cmd/callguard)
#   CG_EXTRA_ENV="GUARD_X=y ..."   more settings for callguard
#   PROFILE=1              with callguard: serve with GUARD_PPROF=1 and save a
#                          CPU profile of each trial's traffic as DIR/cpu.pprof
#                          and the heap at its end as DIR/heap.pprof
#   UAC_PORT=16060 SUT_PORT=16070 PBX_PORT=16080   (callguard's admin API on
#                          SUT_PORT+200, its metrics on SUT_PORT+201)
#   WORK=/tmp/callguard-bench-sip   caller lists, the shim, seeded data dirs
#   OUT=$WORK/runs/<time>  logs, SIPp statistics, results.txt, table.md
#
# Default total: about 5-7 minutes with Kamailio, 3-4 without. Needs sipp
# (apt-get install -y sip-tester), gcc, curl, go; kamailio for the peer
# (apt-get install -y kamailio). Only processes started here are stopped, by
# their saved PIDs.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
P=$ROOT/tests/sipp/peer

MODE=${1:-all}
SUTS=${SUTS:-"kamailio callguard"}
RATES=${RATES:-"500 2000"}
DURATION=${DURATION:-10}
SEARCH_DURATION=${SEARCH_DURATION:-5}
SEARCH_BUDGET=${SEARCH_BUDGET:-40}
SEARCH_MAX_STEPS=${SEARCH_MAX_STEPS:-8}
RETRIES=${RETRIES:-1}
START_REJECT=${START_REJECT:-4000}
START_PASS=${START_PASS:-1000}
MAX_P99_MS=${MAX_P99_MS:-50}
MAX_OTHER_PCT=${MAX_OTHER_PCT:-25}
QUIET_PCT=${QUIET_PCT:-20}
QUIET_WAIT=${QUIET_WAIT:-2}
CHILDREN=${CHILDREN:-1}
SHM_MB=${SHM_MB:-1024}
MEM=${MEM:-tlsf}
UAC_PORT=${UAC_PORT:-16060}
SUT_PORT=${SUT_PORT:-16070}
PBX_PORT=${PBX_PORT:-16080}
ADMIN_PORT=$((SUT_PORT + 200))
METRICS_PORT=$((SUT_PORT + 201))
WORK=${WORK:-/tmp/callguard-bench-sip}
CALLEE=88001234567
N_BLOCK=10000

die() { echo "peer.sh: $*" >&2; exit 1; }
log() { printf '== %s\n' "$*" >&2; }
# shellcheck source=peer/lib.sh
. "$P/lib.sh"

case "$MODE" in all|fixed|max) ;; *) sed -n '2,58p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;; esac
for v in DURATION SEARCH_DURATION SEARCH_BUDGET SEARCH_MAX_STEPS RETRIES START_REJECT START_PASS MAX_P99_MS CHILDREN; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v=${!v}: want a whole number"
done
for r in $RATES; do [[ "$r" =~ ^[0-9]+$ && "$r" -gt 0 ]] || die "RATES: $r is not a positive rate"; done
for b in sipp gcc curl awk ss sha256sum; do command -v $b >/dev/null || die "$b not found (apt-get install -y sip-tester gcc curl iproute2)"; done

want=()
for s in $SUTS; do
  case "$s" in
    kamailio)
      if command -v kamailio >/dev/null && command -v kamcmd >/dev/null; then want+=(kamailio)
      else echo "peer.sh: kamailio is not installed: the Kamailio column is skipped (apt-get install -y kamailio to measure the peer side by side)" >&2; fi ;;
    callguard) want+=(callguard) ;;
    *) die "SUTS: unknown system $s (kamailio, callguard)" ;;
  esac
done
((${#want[@]} > 0)) || die "nothing to measure"
SUTS="${want[*]}"

ports_free "$UAC_PORT" "$SUT_PORT" "$PBX_PORT" "$ADMIN_PORT" "$METRICS_PORT"

prepare_out runs
RESULTS=$OUT/results.txt
: >"$RESULTS"
START_TS=$(date +%s)

# ---- one-time preparation ------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -c 0
NOFILE=$(ulimit -n)

if [[ " $SUTS " == *" callguard "* ]]; then
  build_callguard
fi
if [[ " $SUTS " == *" kamailio "* ]]; then
  KAM_LABEL="Kamailio $(kamailio -v 2>/dev/null | sed -n 's/^version: kamailio \([^ ]*\).*/\1/p' | head -1), $CHILDREN worker$( ((CHILDREN > 1)) && echo s), in memory"
fi

build_shim

# Caller lists (gen_data, peer/lib.sh): enough fresh numbers for the longest trial.
need_pass=100000
for r in $RATES; do ((r * DURATION > need_pass)) && need_pass=$((r * DURATION)); done
gen_data "$need_pass"

# ---- process bookkeeping ---------------------------------------------------------
SUT_PID=""; SUT_KIDS=(); UAS_PID=""; UAC_SHELL=""; UAC_DIR=""; SEED_PID=""; CTL_PATH=""

stop_all() {
  local k i
  [[ -n "$UAC_SHELL" && -f "$UAC_DIR/uac.pid" ]] && stop_pid "$(cat "$UAC_DIR/uac.pid")"
  [[ -n "$UAC_SHELL" ]] && wait "$UAC_SHELL" 2>/dev/null; UAC_SHELL=""
  stop_pid "$UAS_PID"; UAS_PID=""
  stop_pid "$SEED_PID"; SEED_PID=""
  if [[ -n "$SUT_PID" ]]; then stop_pid "$SUT_PID"; SUT_PID=""; fi
  for k in "${SUT_KIDS[@]}"; do   # Kamailio's main process takes its children down; make sure
    for i in $(seq 30); do kill -0 "$k" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null
  done
  SUT_KIDS=()
  [[ -n "$CTL_PATH" ]] && rm -f "$CTL_PATH"
  CTL_PATH=""
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

children_of() {
  cat /proc/[0-9]*/stat 2>/dev/null | sed 's/^\([0-9]*\) (.*) /\1 /' | awk -v pp="$1" '$3 == pp {print $1}'
}
cpu_ticks() {  # utime+stime, clock ticks, summed over PIDs
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# ---- the systems under test ---------------------------------------------------------
CTL_SEQ=0
start_kamailio() {  # DIR
  local d=$1 i ctl
  mkdir -p "$WORK/.ctl"; CTL_SEQ=$((CTL_SEQ + 1))
  CTL_PATH="$WORK/.ctl/$$-$CTL_SEQ.sock"; ctl="unix:$CTL_PATH"   # sun_path: < 104 bytes
  local mem=(); [[ "$MEM" == default ]] || mem=(-x "$MEM")
  kamailio -f "$P/kamailio.cfg" -w "$d" -DD -E -m "$SHM_MB" -M 16 -n "$CHILDREN" "${mem[@]}" \
    -P "$d/kamailio.pid" \
    -A "LISTEN=udp:127.0.0.1:$SUT_PORT" -A "PBX=\"sip:127.0.0.1:$PBX_PORT\"" \
    -A "DBURL=\"text://$WORK/db\"" -A "CTL_SOCK=\"$ctl\"" -A "OPEN_FILES=$NOFILE" \
    >"$d/kamailio.log" 2>&1 &
  SUT_PID=$!
  for i in $(seq 100); do
    kamcmd -s "$ctl" core.uptime >/dev/null 2>&1 && break
    kill -0 "$SUT_PID" 2>/dev/null || { tail -20 "$d/kamailio.log" >&2; die "kamailio exited at start"; }
    sleep 0.1
  done
  kamcmd -s "$ctl" core.uptime >/dev/null 2>&1 || die "kamailio not ready (see $d/kamailio.log)"
  ss -Hlunp "sport = :$SUT_PORT" 2>/dev/null | grep -q "pid=$SUT_PID," || die "kamailio does not own udp :$SUT_PORT"
  mapfile -t SUT_KIDS < <(children_of "$SUT_PID")
  [[ "$(kamcmd -s "$ctl" htable.stats 2>/dev/null | awk '/name: bl/{f=1} f&&/all:/{print $2; exit}')" -gt 0 ]] \
    || die "htable bl is empty: the db_text load failed (see $d/kamailio.log)"
}

start_callguard() {  # DIR
  local d=$1
  rm -rf "$d/data"; cp -a "$CG_SEED" "$d/data"
  # shellcheck disable=SC2046
  env $(cg_env "$d/data") "$CALLGUARD_BIN" serve >"$d/callguard.log" 2>&1 &
  SUT_PID=$!
  cg_wait_ready "$SUT_PID" "$d/callguard.log"
  SUT_KIDS=()
}

# ---- one trial: SUT MODE RATE SECONDS DIR -> DIR/summary.txt, one line of key=value ----
trial() {
  local sut=$1 mode=$2 rate=$3 secs=$4 d=$5 calls=$(($3 * $4)) scen csv
  mkdir -p "$d"
  case "$mode" in
    reject) scen=uac_reject.xml; csv=callers_reject.csv ;;
    pass) scen=uac_pass.xml; csv=callers_pass.csv ;;
  esac
  wait_quiet
  if [[ "$sut" == callguard ]]; then start_callguard "$d"; else start_kamailio "$d"; fi
  local uas=0
  [[ "$mode" == pass ]] && { start_uas "$d"; uas=1; }
  sleep 0.5
  local pids=("$SUT_PID" "${SUT_KIDS[@]}") k0 k1 u0 u1 s0 s1 t0 t1 rc=0
  UAC_DIR=$d
  k0=$(cpu_ticks "${pids[@]}"); u0=$(cpu_ticks $UAS_PID); s0=$(sys_ticks)
  t0=$(date +%s.%N)
  local prof=""
  if [[ "${PROFILE:-0}" == 1 && "$sut" == callguard ]]; then
    curl -s -o "$d/cpu.pprof" "http://127.0.0.1:$METRICS_PORT/debug/pprof/profile?seconds=$secs" &
    prof=$!
  fi
  # The UAC runs in a subshell whose `times` gives the UAC's own CPU time.
  rm -f "$d/uac.pid" "$d/uac.rc" "$d/uac.times"
  (
    cd "$d" || exit 99
    LD_PRELOAD="$SHIM" sipp "127.0.0.1:$SUT_PORT" -sf "$P/$scen" \
      -inf "$WORK/data/$csv" -s "$CALLEE" -i 127.0.0.1 -p "$UAC_PORT" \
      -r "$rate" -rp 1000 -m "$calls" -l 15000 -nostdin \
      -timer_resol 1 -buff_size 4194304 -recv_timeout 8000 -timeout $((secs + 10))s \
      -trace_stat -stf "$d/uac_stat.csv" -fd 1 -trace_rtt -rtt_freq 1 \
      -trace_err -error_file "$d/uac_errors.log" >"$d/uac.stdout" 2>&1 &
    echo $! >"$d/uac.pid"
    wait $!
    echo $? >"$d/uac.rc"
    times >"$d/uac.times"
  ) &
  UAC_SHELL=$!
  wait "$UAC_SHELL"; UAC_SHELL=""
  rc=$(cat "$d/uac.rc" 2>/dev/null || echo 255)
  t1=$(date +%s.%N)
  k1=$(cpu_ticks "${pids[@]}"); u1=$(cpu_ticks $UAS_PID); s1=$(sys_ticks)
  if [[ -n "$prof" ]]; then
    wait "$prof"
    curl -s -o "$d/heap.pprof" "http://127.0.0.1:$METRICS_PORT/debug/pprof/heap"
  fi
  stop_all
  local uac_s  # children's user + system time, like "0m1.230s 0m0.410s"
  uac_s=$(awk 'NR==2{split($1,a,"m"); split($2,b,"m"); sub("s","",a[2]); sub("s","",b[2]); printf "%.2f", a[1]*60+a[2]+b[1]*60+b[2]}' "$d/uac.times" 2>/dev/null)

  local stat
  stat=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) h[$i]=i; next} {last=$0}
      END{ split(last, v, ";");
        printf "created=%d ok=%d failed=%d retrans=%d unexpected=%d timeouts=%d",
          v[h["OutgoingCall(C)"]], v[h["SuccessfulCall(C)"]], v[h["FailedCall(C)"]],
          v[h["Retransmissions(C)"]], v[h["FailedUnexpectedMessage(C)"]], v[h["FailedTimeoutOnRecv(C)"]] }' \
    "$d/uac_stat.csv" 2>/dev/null)
  [[ -n "$stat" ]] || stat="created=0 ok=0 failed=0 retrans=0 unexpected=0 timeouts=0"
  local rtt lat="first_p50_ms=NA first_p99_ms=NA answer_p50_ms=NA answer_p99_ms=NA achieved_cps=NA"
  rtt=$(ls "$d"/*_rtt.csv 2>/dev/null | head -1)
  if [[ -n "$rtt" ]]; then
    awk -F';' 'NR>1 && $3=="first"{print $2}' "$rtt" | sort -g >"$d/first.ms"
    awk -F';' 'NR>1 && $3=="answer"{print $2}' "$rtt" | sort -g >"$d/answer.ms"
    local key=first p50f p99f p50a p99a ach
    [[ -s "$d/answer.ms" ]] && key=answer   # every passed call has an "answer"; a 100/180 may be absent
    ach=$(awk -F';' -v k="$key" 'NR>1 && $3==k{n++; if(n==1) a=$1; b=$1} END{ if(n>1 && b>a) printf "%.1f", (n-1)*1000/(b-a); else print "NA"}' "$rtt")
    read -r p50f p99f < <(pctl "$d/first.ms")
    read -r p50a p99a < <(pctl "$d/answer.ms")
    lat="first_p50_ms=$p50f first_p99_ms=$p99f answer_p50_ms=$p50a answer_p99_ms=$p99a achieved_cps=$ach"
    gzip -f "$rtt" "$d/first.ms" "$d/answer.ms"
  fi
  local cpu
  cpu=$(awk -v hz="$HZ" -v a="$t0" -v b="$t1" -v k0="$k0" -v k1="$k1" -v u0="$u0" -v u1="$u1" \
      -v s0="$s0" -v s1="$s1" -v calls="$calls" -v uas="$uas" -v uac="${uac_s:-0}" 'BEGIN{
      w=b-a; split(s0,x," "); split(s1,y," "); busy=((y[1]-x[1])-(y[2]-x[2]))/hz;
      sut=(k1-k0)/hz; uasc=(u1-u0)/hz;
      # other: processes not ours (and kernel softirq work for our packets)
      printf "wall_s=%.1f cpu_sut_pct=%.0f cpu_us_per_call=%.1f cpu_uac_pct=%.0f cpu_uas_pct=%s cpu_other_pct=%.0f",
        w, 100*sut/w, (calls>0 ? sut*1e6/calls : 0), 100*uac/w, (uas ? sprintf("%.0f", 100*uasc/w) : "NA"),
        100*(busy-sut-uasc-uac)/w }')
  local line="sut=$sut mode=$mode target_cps=$rate calls=$calls $lat $stat $cpu uac_rc=$rc"
  local sust
  sust=$(echo "$line" | awk -v rate="$rate" -v calls="$calls" -v maxp99="$MAX_P99_MS" '{
      for(i=1;i<=NF;i++){split($i,kv,"="); f[kv[1]]=kv[2]}
      p99 = (f["answer_p99_ms"]!="NA") ? f["answer_p99_ms"] : f["first_p99_ms"];
      ok = (f["ok"]==calls && f["failed"]==0 && f["retrans"]==0 && f["achieved_cps"]!="NA" &&
            f["achieved_cps"] >= 0.97*rate && p99!="NA" && p99+0 < maxp99);
      print ok ? "yes" : "no" }')
  echo "$line sustained=$sust" >"$d/summary.txt"
  find "$d" -maxdepth 1 -type f \( -name '*errors.log' -o -name '*.stdout' -o -name '*.screen' -o -name '*.log' \) -size +1M -exec gzip -f {} +
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

# ---- the measurements -----------------------------------------------------------------
fixed() {  # SUT MODE RATE
  local d=$OUT/$1-$2-$3 line
  log "$1: $2 @ $3 calls/s for ${DURATION}s"
  trial "$1" "$2" "$3" "$DURATION" "$d"
  line=$(cat "$d/summary.txt")
  echo "meas=$2@$3 $line" >>"$RESULTS"
  log "   $(field first_p50_ms "$line")/$(field first_p99_ms "$line") ms first, $(field answer_p50_ms "$line")/$(field answer_p99_ms "$line") ms answer, ok $(field ok "$line") of $(field calls "$line"), CPU $(field cpu_sut_pct "$line") % ($(field cpu_us_per_call "$line") µs/call), sustained=$(field sustained "$line")"
}

search() {  # SUT MODE: doubling then bisection, bounded in steps and time
  local sut=$1 m=$2 rate lo=0 hi=0 step=0 try t0 d line best="" stop=converged
  rate=$([[ $m == reject ]] && echo "$START_REJECT" || echo "$START_PASS")
  t0=$(date +%s)
  log "$sut: max-$m search (${SEARCH_DURATION}s per step, budget ${SEARCH_BUDGET}s)"
  while :; do
    step=$((step + 1))
    for ((try = 0; try <= RETRIES; try++)); do
      d=$OUT/$sut-max-$m/step$step-$rate$( ((try)) && echo "-retry$try")
      trial "$sut" "$m" "$rate" "$SEARCH_DURATION" "$d"
      line=$(cat "$d/summary.txt")
      echo "step$step try$try $line" >>"$OUT/$sut-max-$m/search.log"
      log "   step$step rate=$rate sustained=$(field sustained "$line") (ok $(field ok "$line")/$(field calls "$line"), retrans $(field retrans "$line"), p99 $(field answer_p99_ms "$line")/$(field first_p99_ms "$line") ms, reached $(field achieved_cps "$line"))"
      [[ "$line" == *sustained=no* ]] || break
      # retry only what one stall of a shared VM explains: no failed call, and
      # no retransmission either unless other work took over MAX_OTHER_PCT
      [[ "$(field failed "$line")" == 0 && ( "$(field retrans "$line")" == 0 ||
        "$(field cpu_other_pct "$line")" -gt "$MAX_OTHER_PCT" ) ]] || break
      (($(date +%s) - t0 < SEARCH_BUDGET)) || break
    done
    if [[ "$line" == *sustained=yes* ]]; then
      lo=$rate; best=$line
      if ((hi == 0)); then rate=$((rate * 2)); else rate=$(((lo + hi) / 2)); fi
    else
      hi=$rate; rate=$(((lo + hi) / 2))
    fi
    rate=$(((rate + 49) / 50 * 50))
    ((hi > 0 && hi - lo <= (lo / 20 > 50 ? lo / 20 : 50))) && break
    ((lo == 0 && rate < 50)) && break
    ((rate <= lo || (hi > 0 && rate >= hi))) && break
    ((step >= SEARCH_MAX_STEPS)) && { stop=steps; break; }
    ((step >= 3 && $(date +%s) - t0 >= SEARCH_BUDGET)) && { stop=budget; break; }
  done
  echo "meas=max-$m sut=$sut max_sustained_cps=$lo first_failing_cps=$hi steps=$step stop=$stop search_s=$(($(date +%s) - t0)) best_cpu_us_per_call=$(field cpu_us_per_call "$best")" >>"$RESULTS"
  log "   $sut max-$m: $lo calls/s sustained, $hi not (stop: $stop)"
}

if [[ " $SUTS " == *" callguard "* ]]; then cg_seed; fi
log "systems: $SUTS; results in $OUT"
if [[ "$MODE" == all || "$MODE" == fixed ]]; then
  for m in reject pass; do
    for r in $RATES; do
      for s in $SUTS; do fixed "$s" "$m" "$r"; done
    done
  done
fi
if [[ "$MODE" == all || "$MODE" == max ]]; then
  for m in reject pass; do
    for s in $SUTS; do search "$s" "$m"; done
  done
fi

# ---- the table -----------------------------------------------------------------------
awk -v suts="$SUTS" -v kam="${KAM_LABEL:-}" -v cg="${CG_LABEL:-}" -v rates="$RATES" -v dur="$DURATION" \
    -v sdur="$SEARCH_DURATION" -v when="$(date -u +%Y-%m-%d)" -v ncpu="$(nproc)" -v maxp99="$MAX_P99_MS" '
function num(x,   s, neg) {  # 12345 -> 12,345
  x = sprintf("%d", x); neg = (x ~ /^-/); if (neg) x = substr(x, 2)
  s = ""; while (length(x) > 3) { s = "," substr(x, length(x) - 2) s; x = substr(x, 1, length(x) - 3) }
  return (neg ? "-" : "") x s
}
function ms(x) { if (x == "NA" || x == "") return "–"; x += 0; return x < 1 ? sprintf("%.2f", x) : (x < 10 ? sprintf("%.1f", x) : num(x + 0.5)) }
function us(x) { x += 0; return x < 10 ? sprintf("%.1f", x) : num(x + 0.5) }
{
  delete f
  for (i = 1; i <= NF; i++) { n = index($i, "="); f[substr($i, 1, n - 1)] = substr($i, n + 1) }
  k = f["sut"] SUBSEP f["meas"]
  if (f["meas"] ~ /^max-/) {
    c = num(f["max_sustained_cps"]) " calls/s"
    if (f["max_sustained_cps"] == 0) c = "below " num(f["first_failing_cps"]) " calls/s (no step sustained)"
    else if (f["first_failing_cps"] > 0) c = c " (" num(f["first_failing_cps"]) " not)"
    else c = "≥ " c " (no step failed)"
    if (f["stop"] != "converged") c = c ", search stopped by its " f["stop"] " bound"
    cell[k] = c
  } else {
    key = (f["mode"] == "pass") ? "answer" : "first"
    c = ms(f[key "_p50_ms"]) " / " ms(f[key "_p99_ms"]) " ms, " f["cpu_sut_pct"] " %, " us(f["cpu_us_per_call"]) " µs/call"
    if (f["failed"] > 0 || f["ok"] < f["calls"]) c = c "; " num(f["failed"]) " of " num(f["calls"]) " failed"
    if (f["retrans"] > 0) c = c "; " num(f["retrans"]) " retrans."
    if (f["achieved_cps"] != "NA" && f["achieved_cps"] < 0.97 * f["target_cps"]) c = c "; reached " num(f["achieved_cps"]) "/s"
    if (f["sustained"] != "yes") c = c " ✗"
    cell[k] = c
    rest = f["cpu_other_pct"] + 0; if (nrest == 0 || rest < rmin) rmin = rest; if (nrest == 0 || rest > rmax) rmax = rest; nrest++
  }
}
END {
  ns = split(suts, s, " "); nr = split(rates, r, " ")
  hdr = "| SIPp, loopback, " ncpu " cores (" when ") |"; sep = "|---|"
  for (i = 1; i <= ns; i++) { hdr = hdr " " (s[i] == "kamailio" ? kam : cg) " |"; sep = sep "---|" }
  print hdr; print sep
  for (mi = 1; mi <= 2; mi++) {
    m = (mi == 1) ? "reject" : "pass"
    for (j = 1; j <= nr; j++) {
      lbl = m " @ " num(r[j]) " calls/s"
      if (j == 1) lbl = lbl (m == "reject" ? ": INVITE→403" : ": INVITE→200") " p50 / p99, CPU, CPU per call"
      line = "| " lbl " |"; have = 0
      for (i = 1; i <= ns; i++) { c = cell[s[i] SUBSEP m "@" r[j]]; if (c != "") have = 1; line = line " " (c == "" ? "–" : c) " |" }
      if (have) print line
    }
  }
  for (mi = 1; mi <= 2; mi++) {
    m = (mi == 1) ? "reject" : "pass"
    line = "| " m ": max sustained |"; have = 0
    for (i = 1; i <= ns; i++) { c = cell[s[i] SUBSEP "max-" m]; if (c != "") have = 1; line = line " " (c == "" ? "–" : c) " |" }
    if (have) print line
  }
  print ""
  printf "Fixed rates: %d s each; search steps: %d s. Sustained = every call successful, no retransmission, ≥ 97 %% of the rate reached, p99 of the final response < %d ms (✗: not sustained). CPU = %% of one core, and CPU time per offered call, of the system under test.", dur, sdur, maxp99
  if (nrest) printf " Other work on this shared machine used %d–%d %% of a core during the fixed-rate trials (besides SIPp).", rmin, rmax
  print ""
}' "$RESULTS" >"$OUT/table.md"
echo
cat "$OUT/table.md"
echo
log "total $(($(date +%s) - START_TS)) s; logs, SIPp statistics and results.txt in $OUT"
