#!/usr/bin/env bash
# tests/sipp/overload.sh — flood a running guard, watch it, and watch it recover.
#
# Starts `callguard serve` (this tree's build, or CALLGUARD_BIN) with a SIPp
# PBX (peer/uas_pbx.xml) behind it, and:
#
#   pre      PRE_SECS seconds idle: the baseline
#   flood    SECS seconds of RATE calls/s offered from a trusted source, fresh
#            numbers (the pass path), with peer/uac_overload.xml: a call is
#            relayed (180/183 and 200 from the PBX through the guard, ACK,
#            200 ms, BYE), or answered 503 (the overload answer; ACKed, its
#            Retry-After noted), or 403 (MIX=reject: a hard-blocked caller),
#            or another final response (counted by code); anything else fails
#            the call in SIPp
#   recover  RECOVER_SECS seconds after the flood
#
# Once a second through all three phases: one OPTIONS probe
# (peer/options_probe.xml, one SIPp call answered within PROBE_TIMEOUT s or
# "timeout"), the guard's RSS (/proc/PID/status VmRSS), and from its metrics
# endpoint go_goroutines, go_memstats_heap_inuse_bytes, the calls in progress
# (CALLS_METRIC, or the first callguard_* gauge named like calls_in_progress /
# calls_active / sessions_active; "NA" when the guard has none), the overload
# counter callguard_sip_overload_total (all reasons) and the store-down
# verdicts; also the calls SIPp has open on each side. All go to
# OUT/samples.csv:
#   t,phase,rss_mib,goroutines,heap_mib,calls_in_progress,options_ms,
#   overload_total,store_down_total,uac_open,pbx_open
# (t = seconds since the flood started; options_ms a latency or "timeout").
#
# "decision" = INVITE sent -> the first of 180, 183, 200, 503, 403 or another
# final response: the evidence that the guard decided (SIPp's -trace_rtt with
# peer/sipp_clock_shim.so preloaded, so the times are precise). The goal is a
# decision within 2 s for every INVITE; calls with no decision at all count as
# over 2 s.
#
# Normal (for "returned to normal after N s"): calls in progress 0 (the guard's
# gauge; without one, the SIPp PBX's open calls) and goroutines within
# NORMAL_PCT % (20) of the pre-flood figure, or NORMAL_MIN (10) goroutines,
# whichever is larger. N = seconds after the flood's end from which every
# later sample is normal; "not within RECOVER_SECS s" when the last one is not.
#
# Usage: tests/sipp/overload.sh            (go tool task bench-overload)
#
# Settings (environment):
#   RATE=1500              calls/s offered (twice the 750 sustained on the
#                          pass path when this was written)
#   SECS=60 RECOVER_SECS=30 PRE_SECS=5
#   MIX=reject             mix in hard-blocked callers (10,000 numbers at level
#                          6, seeded through the admin API like peer.sh),
#                          REJECT_PCT=20 % of the calls; they want 403
#   PROBE_TIMEOUT=2        seconds an OPTIONS probe waits for its 200
#   RECV_TIMEOUT=10        seconds a call waits for its next message in SIPp
#   UAC_LIMIT=15000        SIPp's cap on simultaneous calls (-l)
#   CALLS_METRIC=name      the guard's calls-in-progress gauge
#   NORMAL_PCT=20 NORMAL_MIN=10
#   CALLGUARD_BIN=path     measure this binary (default: build ./cmd/callguard)
#   CG_EXTRA_ENV="GUARD_MAX_CALLS=500 ..."   more settings for callguard
#   UAC_PORT=16160 SUT_PORT=16170 PBX_PORT=16180 (admin API on SUT_PORT+200,
#                          metrics on SUT_PORT+201)
#   WORK=/tmp/callguard-bench-sip   the shim, caller lists, seeded data dirs
#   OUT=$WORK/overload/<time>       logs, SIPp files, samples.csv, summary.txt
#
# Needs sipp, gcc, curl, go. Only processes started here are stopped, by their
# saved PIDs.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
P=$ROOT/tests/sipp/peer

RATE=${RATE:-1500}
SECS=${SECS:-60}
RECOVER_SECS=${RECOVER_SECS:-30}
PRE_SECS=${PRE_SECS:-5}
MIX=${MIX:-}
REJECT_PCT=${REJECT_PCT:-20}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-2}
RECV_TIMEOUT=${RECV_TIMEOUT:-10}
UAC_LIMIT=${UAC_LIMIT:-15000}
CALLS_METRIC=${CALLS_METRIC:-}
NORMAL_PCT=${NORMAL_PCT:-20}
NORMAL_MIN=${NORMAL_MIN:-10}
UAC_PORT=${UAC_PORT:-16160}
SUT_PORT=${SUT_PORT:-16170}
PBX_PORT=${PBX_PORT:-16180}
ADMIN_PORT=$((SUT_PORT + 200))
METRICS_PORT=$((SUT_PORT + 201))
WORK=${WORK:-/tmp/callguard-bench-sip}
CALLEE=88001234567
N_BLOCK=10000
QUIET_PCT=0 QUIET_WAIT=0

die() { echo "overload.sh: $*" >&2; exit 1; }
log() { printf '== %s\n' "$*" >&2; }
# shellcheck source=peer/lib.sh
. "$P/lib.sh"

[[ $# -eq 0 ]] || { sed -n '2,59p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
for v in RATE SECS RECOVER_SECS PRE_SECS REJECT_PCT PROBE_TIMEOUT RECV_TIMEOUT UAC_LIMIT NORMAL_PCT NORMAL_MIN; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v=${!v}: want a whole number"
done
((RATE > 0 && SECS > 0 && PROBE_TIMEOUT > 0)) || die "RATE, SECS and PROBE_TIMEOUT must be positive"
case "$MIX" in "" | none) MIX="" ;; reject) ((REJECT_PCT <= 100)) || die "REJECT_PCT=$REJECT_PCT: want 0-100" ;; *) die "MIX=$MIX: want reject or nothing" ;; esac
for b in sipp gcc curl awk ss sha256sum; do command -v $b >/dev/null || die "$b not found (apt-get install -y sip-tester gcc curl iproute2)"; done
ports_free "$UAC_PORT" "$SUT_PORT" "$PBX_PORT" "$ADMIN_PORT" "$METRICS_PORT"

prepare_out overload
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -c 0

build_callguard
build_shim

# ---- process bookkeeping -----------------------------------------------------------
SUT_PID=""; UAS_PID=""; UAC_SHELL=""; SEED_PID=""; PROBE_PIDS=()
stop_all() {
  local p
  [[ -n "$UAC_SHELL" && -f "$OUT/uac/uac.pid" ]] && stop_pid "$(cat "$OUT/uac/uac.pid")"
  [[ -n "$UAC_SHELL" ]] && wait "$UAC_SHELL" 2>/dev/null; UAC_SHELL=""
  for p in "${PROBE_PIDS[@]}"; do stop_pid "$p"; done; PROBE_PIDS=()
  stop_pid "$UAS_PID"; UAS_PID=""
  stop_pid "$SEED_PID"; SEED_PID=""
  stop_pid "$SUT_PID"; SUT_PID=""
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

# ---- data: fresh numbers (7900xxxxxxx), REJECT_PCT % of them blocked ones with MIX --
CALLS=$((RATE * SECS))
mkdir -p "$OUT/uac" "$OUT/probe"
if [[ -n "$MIX" ]]; then
  gen_data 100000
  cg_seed
  cp -a "$CG_SEED" "$OUT/data"
else
  mkdir -p "$OUT/data"
  REJECT_PCT=0
fi
awk -v n="$CALLS" -v pct="$REJECT_PCT" -v nb="$N_BLOCK" 'BEGIN{
  print "SEQUENTIAL"; f = 0; b = 0
  for (i = 0; i < n; i++) {
    if (int((i + 1) * pct / 100) > int(i * pct / 100)) printf "7999%07d;\n", (b++) % nb
    else printf "7900%07d;\n", f++
  } }' >"$OUT/callers.csv"

# ---- start -----------------------------------------------------------------------------
# shellcheck disable=SC2046
env $(cg_env "$OUT/data") "$CALLGUARD_BIN" serve >"$OUT/callguard.log" 2>&1 &
SUT_PID=$!
cg_wait_ready "$SUT_PID" "$OUT/callguard.log"
# shellcheck disable=SC2046
SETTINGS=$(env $(cg_env "$OUT/data") "$CALLGUARD_BIN" config 2>/dev/null |
  awk '$1 ~ /^GUARD_(MAX_CALLS|RETRY_AFTER|DECIDE_TIMEOUT|STORE_DOWN|PBX_TIMEOUT)$/ {printf "%s%s=%s", sep, substr($1, 7), $2; sep = " "}')
start_uas "$OUT" -trace_stat -stf "$OUT/uas_stat.csv" -fd 1

# ---- sampling ---------------------------------------------------------------------------
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
open_calls() {  # SIPp statistics file -> its CurrentCall now, or NA
  awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="CurrentCall") c=i; next} {v=$c} END{print (c && v != "") ? v : "NA"}' "$1" 2>/dev/null || echo NA
}
metrics_now() {  # -> "goroutines heap_mib calls_in_progress overload_total store_down calls_metric"
  curl -s --max-time 0.8 "$METRICS_URL" 2>/dev/null | awk -v want="$CALLS_METRIC" '
    /^#/ {next}
    { name = $1; sub(/\{.*/, "", name); v = $NF }
    name == "go_goroutines" {g = v}
    name == "go_memstats_heap_inuse_bytes" {h = v}
    name == "callguard_sip_overload_total" {o += v; ho = 1}
    name == "callguard_calls_total" && $1 ~ /verdict="store-down"/ {sd = v}
    (want != "" && name == want) || (want == "" && name ~ /^callguard_.*(calls_in_progress|calls_active|active_calls|sessions_active|active_sessions)$/) {
      if (cm == "" || cm == name) { cm = name; c += v } }
    END {
      printf "%s %s %s %s %s %s\n", (g == "" ? "NA" : g), (h == "" ? "NA" : sprintf("%.1f", h / 1048576)),
        (cm == "" ? "NA" : c), (ho ? o : "NA"), (sd == "" ? "NA" : sd), (cm == "" ? "-" : cm) }'
}
probe() {  # K: one OPTIONS in the background -> OUT/probe/K/{rc,*_rtt.csv}
  local d=$OUT/probe/$1
  mkdir -p "$d"
  (
    cd "$d" || exit 99
    LD_PRELOAD="$SHIM" sipp "127.0.0.1:$SUT_PORT" -sf "$P/options_probe.xml" -i 127.0.0.1 -m 1 -nostdin \
      -recv_timeout "${PROBE_TIMEOUT}000" -timeout "$((PROBE_TIMEOUT + 2))s" -timer_resol 1 \
      -trace_rtt -rtt_freq 1 -trace_err -error_file "$d/err.log" >"$d/screen" 2>&1
    echo $? >"$d/rc"
  ) &
  PROBE_PIDS+=($!)
}
start_uac() {
  (
    cd "$OUT/uac" || exit 99
    LD_PRELOAD="$SHIM" sipp "127.0.0.1:$SUT_PORT" -sf "$P/uac_overload.xml" \
      -inf "$OUT/callers.csv" -s "$CALLEE" -i 127.0.0.1 -p "$UAC_PORT" \
      -r "$RATE" -rp 1000 -m "$CALLS" -l "$UAC_LIMIT" -nostdin \
      -timer_resol 1 -buff_size 4194304 -recv_timeout "${RECV_TIMEOUT}000" -timeout $((SECS + RECOVER_SECS + 5))s \
      -trace_stat -stf "$OUT/uac/stat.csv" -fd 1 -trace_rtt -rtt_freq 1 \
      -trace_logs -log_file "$OUT/uac/outcomes.log" \
      -trace_err -error_file "$OUT/uac/errors.log" >"$OUT/uac/stdout" 2>&1 &
    echo $! >"$OUT/uac/uac.pid"
    wait $!
    echo $? >"$OUT/uac/rc"
  ) &
  UAC_SHELL=$!
}
rss_mib() { awk '/^VmRSS:/{printf "%.1f", $2 / 1024; f = 1} END{if(!f) print "NA"}' "/proc/$SUT_PID/status" 2>/dev/null || echo NA; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

log "$CG_LABEL ($SETTINGS): $RATE calls/s for $SECS s$([[ -n $MIX ]] && echo ", $REJECT_PCT % hard-blocked callers"), then $RECOVER_SECS s to recover; out: $OUT"
: >"$OUT/samples.raw"
T0=$(date +%s.%N)   # sample k is taken at T0 + k; the flood starts at sample PRE_SECS
total=$((PRE_SECS + SECS + RECOVER_SECS))
CPU_FLOOD0=0; CPU_FLOOD1=0; METRIC_NAME=-
for ((k = 0; k <= total; k++)); do
  now=$(date +%s.%N)
  wait_s=$(awk -v a="$T0" -v k="$k" -v n="$now" 'BEGIN{d = a + k - n; print (d > 0 ? d : 0)}')
  sleep "$wait_s"
  t=$((k - PRE_SECS))
  if ((t < 0)); then phase=pre; elif ((t < SECS)); then phase=flood; else phase=recover; fi
  if ((t == 0)); then start_uac; CPU_FLOOD0=$(cpu_ticks "$SUT_PID"); fi
  ((t == SECS)) && CPU_FLOOD1=$(cpu_ticks "$SUT_PID")
  kill -0 "$SUT_PID" 2>/dev/null || { log "callguard exited at t=$t s (see $OUT/callguard.log)"; break; }
  probe "$k"
  read -r g h c o sd name < <(metrics_now)
  [[ "$name" != - ]] && METRIC_NAME=$name
  echo "$k $t $phase $(rss_mib) $g $h $c $o $sd $(open_calls "$OUT/uac/stat.csv") $(open_calls "$OUT/uas_stat.csv")" >>"$OUT/samples.raw"
  ((k % 10 == 0)) && log "t=$t s $phase: rss $(rss_mib) MiB, goroutines $g, calls in progress $c, overload $o"
done
FINAL_METRICS=$(curl -s --max-time 2 "$METRICS_URL")
echo "$FINAL_METRICS" >"$OUT/metrics.final.txt"
UAC_LEFT=no
if [[ -n "$UAC_SHELL" ]] && kill -0 "$UAC_SHELL" 2>/dev/null; then UAC_LEFT=yes; fi
sleep $((PROBE_TIMEOUT + 1))
stop_all

# ---- results -----------------------------------------------------------------------------
# options per sample: latency ms, "timeout", or "error" (an answer other than 200)
for d in "$OUT"/probe/*/; do
  k=$(basename "$d")
  rtt=$(ls "$d"/*_rtt.csv 2>/dev/null | head -1)
  ms=$([[ -n "$rtt" ]] && awk -F';' 'NR>1 && $3=="options"{printf "%.1f", $2; exit}' "$rtt")
  if [[ -n "$ms" ]]; then echo "$k $ms"
  elif grep -qi unexpected "$d/err.log" 2>/dev/null; then echo "$k error"
  else echo "$k timeout"; fi
done | sort -n >"$OUT/probe.txt"
{
  echo "t,phase,rss_mib,goroutines,heap_mib,calls_in_progress,options_ms,overload_total,store_down_total,uac_open,pbx_open"
  awk 'NR==FNR{o[$1]=$2; next} {printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", $2,$3,$4,$5,$6,$7,($1 in o ? o[$1] : "NA"),$8,$9,$10,$11}' \
    "$OUT/probe.txt" "$OUT/samples.raw"
} >"$OUT/samples.csv"

# outcomes (SIPp's log), SIPp's counters, unexpected answers (its error log)
read -r relayed o503 o503ra o403 other < <(awk '$1=="O"{
    if ($2=="relayed") r++; else if ($2=="503") { s++; if ($3 != "ra=") ra++ } else if ($2=="403") f++; else if ($2=="other") o++ }
    END{printf "%d %d %d %d %d\n", r, s, ra, f, o}' "$OUT/uac/outcomes.log" 2>/dev/null || echo "0 0 0 0 0")
other_codes=$(awk '$1=="O" && $2=="other"{c[$3]++} END{for(k in c) printf "%s%s×%d", (n++ ? ", " : ""), k, c[k]}' "$OUT/uac/outcomes.log" 2>/dev/null)
why503=$(awk '$1=="O" && $2=="503"{w=$0; sub(/^O 503 ra=[0-9]* */, "", w); if (w == "") w = "no Reason"; c[$3 " " w]++}
  END{for(k in c) printf "%s%s: %d", (n++ ? "; " : ""), k, c[k]}' "$OUT/uac/outcomes.log" 2>/dev/null)
shed=$(awk '/^callguard_sip_overload_total\{/{r=$1; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf "%s%s %d", (n++ ? ", " : ""), r, $2}' "$OUT/metrics.final.txt")
unexp_codes=$(grep -o "unexpected message.*received '*SIP/2.0 [0-9][0-9][0-9]" "$OUT/uac/errors.log" 2>/dev/null | awk '{c[$NF]++} END{for(k in c) printf "%s%s×%d", (n++ ? ", " : ""), k, c[k]}')
read -r created ok failed retrans unexpected timeouts maxretrans < <(awk -F';' 'NR==1{for(i=1;i<=NF;i++) h[$i]=i; next} {last=$0}
    END{ split(last, v, ";"); printf "%d %d %d %d %d %d %d\n", v[h["OutgoingCall(C)"]], v[h["SuccessfulCall(C)"]], v[h["FailedCall(C)"]],
      v[h["Retransmissions(C)"]], v[h["FailedUnexpectedMessage(C)"]], v[h["FailedTimeoutOnRecv(C)"]], v[h["FailedMaxUDPRetrans(C)"]] }' \
  "$OUT/uac/stat.csv" 2>/dev/null || echo "0 0 0 0 0 0 0")
RTT=$(ls "$OUT"/uac/*_rtt.csv 2>/dev/null | head -1)
decided=0 ach=NA dp50=NA dp99=NA dmax=NA over2=0
if [[ -n "$RTT" ]]; then
  awk -F';' 'NR>1 && $3=="decision"{print $2}' "$RTT" | sort -g >"$OUT/decision.ms"
  decided=$(wc -l <"$OUT/decision.ms")
  read -r dp50 dp99 < <(pctl "$OUT/decision.ms")
  dmax=$(tail -1 "$OUT/decision.ms"); dmax=${dmax:-NA}
  over2=$(awk '$1 > 2000' "$OUT/decision.ms" | wc -l)
  # achieved rate: INVITEs sent (response time subtracted from the response's stamp)
  ach=$(awk -F';' 'NR>1 && $3=="decision"{s=$1-$2; if(n==0||s<a) a=s; if(n==0||s>b) b=s; n++}
    END{ if(n>1 && b>a) printf "%.0f", (n-1)*1000/(b-a); else print "NA"}' "$RTT")
  gzip -f "$RTT" "$OUT/decision.ms"
fi
cpu_pct=$(awk -v a="$CPU_FLOOD0" -v b="$CPU_FLOOD1" -v hz="$HZ" -v s="$SECS" 'BEGIN{ if (b > a) printf "%.0f", 100*(b-a)/hz/s; else print "NA" }')
[[ -f "$OUT/uac/outcomes.log" ]] && gzip -f "$OUT/uac/outcomes.log"
find "$OUT" -maxdepth 2 -type f \( -name '*errors.log' -o -name 'stdout' -o -name '*.screen' -o -name '*.log' \) -size +1M -exec gzip -f {} +

{
  echo "overload run: $CG_LABEL, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "guard: $SETTINGS"
  echo "offered: $RATE calls/s for $SECS s = $CALLS calls$([[ -n $MIX ]] && echo " ($REJECT_PCT % from hard-blocked numbers)"); SIPp created $created, achieved ${ach} calls/s"
  echo "answered: relayed $relayed, 503 $o503 (with Retry-After $o503ra), 403 $o403, other final $other${other_codes:+ ($other_codes)}"
  echo "503s by Retry-After and Reason: ${why503:-none}"
  echo "guard's overload counter (callguard_sip_overload_total) at the end: ${shed:-NA}"
  echo "SIPp: $ok successful, $failed failed (timeouts $timeouts, unexpected $unexpected${unexp_codes:+: $unexp_codes}, max UDP retrans $maxretrans), $retrans retransmissions$([[ $UAC_LEFT == yes ]] && echo "; still running at the end, stopped")"
  echo "decision (INVITE -> 180/183/200/503/final): $decided of $CALLS decided, p50 $dp50 ms, p99 $dp99 ms, max $dmax ms; over 2 s: $over2 decided + $((CALLS - decided)) never = $((over2 + CALLS - decided)) of $CALLS"
  echo "guard CPU during the flood: $cpu_pct % of a core"
  awk -F, -v secs="$SECS" -v pct="$NORMAL_PCT" -v nmin="$NORMAL_MIN" -v rec="$RECOVER_SECS" -v metric="$METRIC_NAME" '
    NR==1 {next}
    { t=$1; ph=$2; rss[t]=$3; g[t]=$4; c[t]=$6; pbx[t]=$11; ts[++n]=t; phs[t]=ph
      if (ph != "pre") { tot[ph]++; if ($7 ~ /^[0-9.]+$/) { ans[ph]++; if ($7+0 > mx[ph]) mx[ph] = $7+0 } }
      if (ph == "pre") { rss0 = $3; g0 = $4 }
      if (ph == "flood") { if ($3+0 > prss) prss = $3+0; if ($4+0 > pg) pg = $4+0 } }
    function at(a, t) { return (t in a) ? a[t] : "NA" }
    END {
      printf "OPTIONS answered: %d of %d during the flood (slowest %.1f ms), %d of %d after\n", ans["flood"], tot["flood"], mx["flood"], ans["recover"], tot["recover"]
      printf "RSS MiB: before %s, peak during %.1f, after 5 s %s, 10 s %s, 30 s %s\n", rss0, prss, at(rss, secs+5), at(rss, secs+10), at(rss, secs+30)
      printf "goroutines: before %s, peak during %d, after 5 s %s, 10 s %s, 30 s %s\n", g0, pg, at(g, secs+5), at(g, secs+10), at(g, secs+30)
      lim = g0 * (1 + pct / 100); if (lim < g0 + nmin) lim = g0 + nmin
      since = ""; for (i = 1; i <= n; i++) { t = ts[i]; if (t < secs) continue
        calls = (metric != "-") ? c[t] : pbx[t]
        okay = (calls == "0" && g[t] != "NA" && g[t] + 0 <= lim)
        if (okay && since == "") since = t; if (!okay) since = "" }
      what = (metric != "-") ? metric : "the SIPp PBX'"'"'s open calls (the guard has no calls-in-progress gauge)"
      if (since != "") printf "returned to normal after %d s (calls in progress 0 by %s, goroutines <= %d)\n", since - secs, what, lim
      else printf "returned to normal: not within %d s (calls in progress 0 by %s, goroutines <= %d)\n", rec, what, lim
    }' "$OUT/samples.csv"
  echo "samples: $OUT/samples.csv"
} | tee "$OUT/summary.txt"
