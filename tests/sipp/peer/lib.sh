# tests/sipp/peer/lib.sh — shared by peer.sh, overload.sh and delay.sh:
# sourced, never run. The functions read the caller's settings from globals:
#   ROOT P WORK N_BLOCK CALLGUARD_BIN SUT_PORT PBX_PORT ADMIN_PORT
#   METRICS_PORT CG_EXTRA_ENV PROFILE QUIET_PCT QUIET_WAIT
# and set SEED_PID (while seeding), UAS_PID (start_uas), CG_SEED (cg_seed),
# SHIM (build_shim). die and log are the calling script's.

HZ=$(getconf CLK_TCK)

stop_pid() {  # SIGTERM, up to 5 s, then SIGKILL: these PIDs only
  local p i
  for p in "$@"; do
    [[ -n "$p" ]] || continue
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}

sys_ticks() { awk '/^cpu /{idle=$5+$6; tot=0; for(i=2;i<=NF;i++) tot+=$i; print tot, idle}' /proc/stat; }

ports_free() {  # PORT... : die when one is taken (UDP or TCP)
  local port
  for port in "$@"; do
    [[ -z "$(ss -Hlun "sport = :$port" 2>/dev/null)$(ss -Hltn "sport = :$port" 2>/dev/null)" ]] \
      || die "port $port is taken (set UAC_PORT / SUT_PORT / PBX_PORT)"
  done
}

# build_shim: WORK/sipp_clock_shim.so from P/sipp_clock_shim.c (see there).
prepare_out() {  # NAME: OUT (default $WORK/NAME/<time>) made and absolute
  mkdir -p "$WORK" || die "cannot create $WORK"
  OUT=${OUT:-$WORK/$1/$(date +%Y%m%d-%H%M%S)}
  mkdir -p "$OUT" || die "cannot create $OUT"
  OUT=$(cd "$OUT" && pwd)
}

build_callguard() {  # CALLGUARD_BIN (default: this tree's build, in OUT) and CG_LABEL
  if [[ -z "${CALLGUARD_BIN:-}" ]]; then
    log "building callguard"
    CALLGUARD_BIN=$OUT/callguard
    go build -o "$CALLGUARD_BIN" ./cmd/callguard || die "go build failed"
  fi
  [[ -x "$CALLGUARD_BIN" ]] || die "CALLGUARD_BIN=$CALLGUARD_BIN is not an executable"
  CG_LABEL="callguard $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes')"
}

build_shim() {
  SHIM=$WORK/sipp_clock_shim.so
  if [[ ! -f "$SHIM" || "$P/sipp_clock_shim.c" -nt "$SHIM" ]]; then
    gcc -O2 -shared -fPIC -o "$SHIM" "$P/sipp_clock_shim.c" -ldl || die "cannot build the SIPp clock shim"
  fi
}

# Caller lists: pass = distinct never-seen numbers, at least $1 of them;
# reject = the N_BLOCK numbers hard-blocked at level 6. db/ holds the
# db_text tables Kamailio's htable module loads at start.
gen_data() {
  local d=$WORK/data have=0
  mkdir -p "$d" "$WORK/db"
  [[ -f "$d/callers_pass.csv" ]] && have=$(($(wc -l <"$d/callers_pass.csv") - 1))
  [[ -f "$d/callers_reject.csv" && -f "$WORK/db/bl" && $have -ge $1 ]] && return 0
  printf '%s\n' 79111000001 79111000002 79111000003 79111000004 79111000005 >"$d/whitelist.txt"
  awk -v n="$N_BLOCK" 'BEGIN{for(i=0;i<n;i++) printf "7999%07d 6\n", i}' >"$d/blocklist.txt"
  { echo SEQUENTIAL; awk -v n="$1" 'BEGIN{for(i=0;i<n;i++) printf "7900%07d;\n", i}'; } >"$d/callers_pass.csv"
  { echo SEQUENTIAL; awk '{print $1";"}' "$d/blocklist.txt"; } >"$d/callers_reject.csv"
  local hdr='key_name(str) key_type(int) value_type(int) key_value(str) expires(int)'
  printf 'table_name(str) table_version(int)\nwl:2\nbl:2\n' >"$WORK/db/version"
  { echo "$hdr"; awk '{printf "%s:0:1:1:0\n", $1}' "$d/whitelist.txt"; } >"$WORK/db/wl"
  { echo "$hdr"; awk '{printf "%s:0:1:%d:0\n", $1, $2}' "$d/blocklist.txt"; } >"$WORK/db/bl"
}

CG_TOKEN=sip-peer-benchmark-token-0123456789
cg_env() {  # DATADIR -> assignments for env
  echo GUARD_DATA_DIR="$1" GUARD_SIP_LISTEN=127.0.0.1:$SUT_PORT GUARD_PBX_URI=sip:pbx@127.0.0.1:$PBX_PORT \
    GUARD_TRUSTED_PEERS=127.0.0.1/32 GUARD_REJECT_STATUS=403 GUARD_LIMIT_HOUR=5 GUARD_LIMIT_DAY=20 \
    GUARD_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT GUARD_ADMIN_TOKEN=$CG_TOKEN \
    GUARD_METRICS_LISTEN=127.0.0.1:$METRICS_PORT GUARD_LOG_LEVEL=warn GUARD_RTP_PORTS=40000-49999 GUARD_ATTACK_RATE=0 \
    ${CG_EXTRA_ENV:-} $([[ "${PROFILE:-0}" == 1 ]] && echo GUARD_PPROF=1)
}
cg_wait_ready() {  # PID LOG
  local i
  for i in $(seq 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$METRICS_PORT/readyz" &&
      ss -Hlunp "sport = :$SUT_PORT" 2>/dev/null | grep -q "pid=$1," && return 0
    kill -0 "$1" 2>/dev/null || { tail -20 "$2" >&2; die "callguard exited at start"; }
    sleep 0.1
  done
  tail -20 "$2" >&2; die "callguard not ready (see $2)"
}
# The seeded data directory, made once per binary: the N_BLOCK numbers blocked
# at level 6 and the whitelist, through the admin API.
CG_SEED=""
cg_seed() {
  local seed api t0 codes
  seed=$WORK/seed-$(sha256sum "$CALLGUARD_BIN" | cut -c1-12)
  if [[ ! -f "$seed/.done" ]]; then
    log "seeding a callguard data directory: $N_BLOCK blocks at level 6 through the admin API"
    t0=$(date +%s)
    rm -rf "$seed"; mkdir -p "$seed/data"
    # shellcheck disable=SC2046
    env $(cg_env "$seed/data") "$CALLGUARD_BIN" serve >"$seed/serve.log" 2>&1 &
    SEED_PID=$!
    cg_wait_ready "$SEED_PID" "$seed/serve.log"
    api="http://127.0.0.1:$ADMIN_PORT"
    awk -v api="$api" '{printf "url = \"%s/v1/blocks/%s\"\noutput = \"/dev/null\"\n", api, $1}' "$WORK/data/blocklist.txt" >"$seed/urls.cfg"
    codes=$(curl -sS --no-progress-meter --parallel --parallel-max 16 -X PUT -H "Authorization: Bearer $CG_TOKEN" \
      -H 'Content-Type: application/json' --data '{"level":6,"reason":"SIP benchmark reject list","by":"peer.sh"}' \
      -w '%{http_code}\n' -K "$seed/urls.cfg" | sort | uniq -c | tr -s ' ')
    [[ "$codes" =~ ^\ ?$N_BLOCK\ 20[0-9]$ ]] || die "seeding blocks: HTTP status counts: $codes (see $seed/serve.log)"
    while read -r n; do
      curl -sf -o /dev/null -X POST -H "Authorization: Bearer $CG_TOKEN" -H 'Content-Type: application/json' \
        --data "{\"number\":\"$n\",\"reason\":\"SIP benchmark whitelist\",\"by\":\"peer.sh\"}" "$api/v1/whitelist" ||
        die "seeding the whitelist failed (see $seed/serve.log)"
    done <"$WORK/data/whitelist.txt"
    curl -sf -H "Authorization: Bearer $CG_TOKEN" "$api/v1/callers/7999$(printf '%07d' $((N_BLOCK - 1)))" | grep -q '"level": *6' ||
      die "the last seeded number is not blocked at level 6 (see $seed/serve.log)"
    stop_pid "$SEED_PID"; SEED_PID=""
    touch "$seed/.done"
    log "seeded in $(($(date +%s) - t0)) s"
  fi
  CG_SEED=$seed/data
}

start_uas() {  # DIR [more sipp options]: the SIPp PBX on PBX_PORT -> UAS_PID
  local d=$1 i
  shift
  LD_PRELOAD="$SHIM" sipp -sf "$P/uas_pbx.xml" -i 127.0.0.1 -p "$PBX_PORT" \
    -nostdin -buff_size 4194304 -timer_resol 1 -trace_err -error_file "$d/uas_errors.log" "$@" \
    >"$d/uas.screen" 2>&1 &
  UAS_PID=$!
  for i in $(seq 50); do
    ss -Hlunp "sport = :$PBX_PORT" 2>/dev/null | grep -q "pid=$UAS_PID," && return 0
    kill -0 "$UAS_PID" 2>/dev/null || die "SIPp UAS exited at start (see $d/uas.screen)"
    sleep 0.1
  done
  die "SIPp UAS did not bind :$PBX_PORT"
}

wait_quiet() {  # up to QUIET_WAIT s until the machine is under QUIET_PCT % of a core busy
  local waited=0 a b busy
  ((QUIET_WAIT > 0)) || return 0
  while :; do
    a=$(sys_ticks); sleep 1; b=$(sys_ticks)
    busy=$(awk -v a="$a" -v b="$b" -v hz="$HZ" 'BEGIN{split(a,x," "); split(b,y," "); printf "%d", 100*((y[1]-x[1])-(y[2]-x[2]))/hz}')
    ((busy <= QUIET_PCT || waited >= QUIET_WAIT)) && break
    sleep 1; waited=$((waited + 2))
  done
}

pctl() {  # sorted values -> "p50 p99" (nearest rank) or "NA NA"
  awk '{v[NR]=$1} END{ if(NR==0){print "NA NA"; exit}
    i50=int(NR*0.50); if(i50<NR*0.50) i50++; i99=int(NR*0.99); if(i99<NR*0.99) i99++;
    if(i50<1) i50=1; if(i99<1) i99=1; printf "%.3f %.3f\n", v[i50], v[i99] }' "$1"
}
