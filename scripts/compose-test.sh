#!/usr/bin/env bash
# The compose test (issue #22): runs docker-compose.yml as an operator would, on this machine.
#
#   bash scripts/compose-test.sh        (as root: it may start dockerd and install packages)
#
# 1. Starts dockerd if none answers (Debian's docker.io; installed with docker-compose,
#    debootstrap and sip-tester when missing).
# 2. Makes local stand-ins for the public images the files name, when the tag is absent (Docker
#    Hub cannot be reached from here; README "Running several nodes" says how each is made):
#    debian:bookworm-slim (debootstrap + docker import), postgres:15 and axllent/mailpit
#    (scripts/compose-standins/). An existing tag is used as it is (cached).
# 3. Builds astreinte:local from the Dockerfile with the binary cargo built here
#    (--build-arg ASTREINTE_BUILD=prebuilt) and Kamailio's image with docker-compose.
# 4. docker-compose up -d with the shipped docker-compose.yml, plus an override that mounts
#    copies of deploy/compose/node-*.toml with what an operator adds: [media] public_address
#    (this host's address, for RTP through the published ports), an on-call person and the
#    line closed (after hours). Then: every service healthy; the image alone healthy with its
#    own config; SIPp calls through the published SIP port reach both nodes; RTP both ways
#    through the published RTP ports (scripts/compose-caller.py); an S1 voicemail gives one
#    ticket, one e-mail with the WAV in Mailpit, and the console shows it to an admin; node-a
#    killed: new calls go to node-b, the page is not sent again; node-b stopped with a call
#    up: the call ends normally (drain), then the container stops; down -v leaves nothing.
# Whatever happens, the trap takes everything down and stops the dockerd it started.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
t0=$(date +%s)

say() { printf 'compose-test [%3ss]: %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  die "run as root (it starts dockerd, runs debootstrap and docker): sudo bash scripts/compose-test.sh"
fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v sipp >/dev/null 2>&1 || need_pkgs+=(sip-tester)
command -v objcopy >/dev/null 2>&1 || need_pkgs+=(binutils)
command -v ss >/dev/null 2>&1 || need_pkgs+=(iproute2)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
command -v python3 >/dev/null 2>&1 || die "python3 is missing"
command -v cargo >/dev/null 2>&1 || die "cargo is missing (install Rust with rustup)"

work=$(mktemp -d /tmp/astreinte-compose.XXXXXX)
chmod 0755 "$work"
project=astreinte-compose-test
compose=(docker-compose -p "$project" -f "$repo/docker-compose.yml" -f "$work/override.yml")
dockerd_pid=""
standalone=""
sipp_pids=()

cleanup() {
  local status=$?
  set +e
  for p in "${sipp_pids[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$dockerd_pid" ] || docker info >/dev/null 2>&1; then
    if [ "$status" != 0 ] && [ -f "$work/override.yml" ]; then
      say "state at the failure:"
      "${compose[@]}" ps >&2
      "${compose[@]}" logs --no-color --tail 60 >&2 2>&1
    fi
    [ -n "$standalone" ] && docker rm -f "$standalone" >/dev/null 2>&1
    if [ -f "$work/override.yml" ]; then
      "${compose[@]}" down -v --remove-orphans --timeout 5 >/dev/null 2>&1
      left=$(docker ps -q --filter "label=com.docker.compose.project=$project")
      [ -z "$left" ] || say "containers left running: $left"
    fi
  fi
  rm -f "$repo/deploy/docker/prebuilt/astreinte"
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    if [ "$status" != 0 ]; then tail -n 20 "$work/dockerd.log" >&2; fi
  fi
  rm -rf "$work"
  if [ "$status" = 0 ]; then say "passed"; else say "failed (exit $status)"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits for a condition (a command) for at most $2 seconds; $1 says what is waited for.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local deadline=$(($(date +%s) + secs))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then die "gave up after ${secs}s waiting for $what"; fi
    sleep 1
  done
}

# ---- the published ports are free --------------------------------------------------------
busy=$( (ss -Hlnu; ss -Hlnt) | awk '{print $4}' | sed 's/.*://' |
  awk '$1==5060 || $1==8081 || $1==8082 || $1==8025 || ($1>=20000 && $1<=20199)' | sort -u | tr '\n' ' ')
if [ -n "$busy" ]; then
  # Our own project's leftovers from an interrupted run are taken down below, once docker runs.
  say "ports in use now: $busy(taken down below if they are a previous run's containers)"
fi

# ---- dockerd ------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  wait_for "dockerd to answer" 60 docker info >/dev/null 2>&1
fi
# BuildKit, so the Dockerfile's unused build stage is skipped: the CLI's buildx, or Debian's
# docker.io client (20.10), which speaks to the daemon's own BuildKit.
export DOCKER_BUILDKIT=1
if docker buildx version >/dev/null 2>&1; then
  build=(docker build)
elif [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.10'; then
  build=(/usr/bin/docker build)
else
  die "docker build needs BuildKit: install docker-buildx (or use Debian's docker.io client)"
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# ---- stand-ins for the public images ------------------------------------------------------
if have_image debian:bookworm-slim; then
  say "debian:bookworm-slim: present"
else
  say "debian:bookworm-slim: making a stand-in (debootstrap --variant=minbase bookworm)"
  debootstrap --variant=minbase bookworm "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  }
  tar -C "$work/rootfs" -c . | docker import \
    --change 'LABEL org.astreinte.stand-in=debootstrap' --change 'CMD ["bash"]' \
    - debian:bookworm-slim >/dev/null
  rm -rf "$work/rootfs"
fi
# A stand-in is rebuilt when its files changed (their hash is its label); a real image (no
# label) is used as it is.
for standin in postgres:15=postgres axllent/mailpit=mailpit; do
  tag=${standin%%=*}
  dir=scripts/compose-standins/${standin#*=}
  hash=$(cat "$dir"/* | sha256sum | cut -c1-16)
  label=$(docker image inspect -f '{{index .Config.Labels "org.astreinte.stand-in"}}' "$tag" 2>/dev/null || echo absent)
  if [ "$label" = "$hash" ] || { [ "$label" != absent ] && [ -z "$label" ]; }; then
    say "$tag: present"
  else
    say "$tag: building a stand-in from $dir"
    "${build[@]}" -q --label "org.astreinte.stand-in=$hash" -t "$tag" "$dir" >/dev/null
  fi
done

# ---- the project's images -----------------------------------------------------------------
say "building the binary (cargo build --bin astreinte)"
cargo build --locked --bin astreinte 2>&1 | tail -n 3 >&2
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p deploy/docker/prebuilt
objcopy --strip-debug "$target_dir/debug/astreinte" deploy/docker/prebuilt/astreinte
say "building astreinte:local (Dockerfile, ASTREINTE_BUILD=prebuilt)"
"${build[@]}" -q --build-arg ASTREINTE_BUILD=prebuilt -t astreinte:local . >/dev/null
rm -f deploy/docker/prebuilt/astreinte
say "building astreinte-kamailio:local (deploy/kamailio/Dockerfile)"
DOCKER_BUILDKIT=0 docker-compose -p "$project" build -q kamailio >/dev/null

# ---- what an operator adds to the node configs --------------------------------------------
host_ip=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("192.0.2.1", 9)); print(s.getsockname()[0])')
case "$host_ip" in 127.*|"") die "this host has no address but loopback ($host_ip): callers need one" ;; esac
say "this host's address (callers reach the published ports here): $host_ip"
for node in node-a node-b; do
  python3 - "$repo/deploy/compose/$node.toml" "$work/$node.toml" "$host_ip" <<'EOF'
import sys
src, dst, host = sys.argv[1:]
text = open(src).read()
marker = "[media]\n"
if marker not in text:
    sys.exit(f"{src}: no [media] section")
text = text.replace(marker, marker + f'public_address = "{host}"\n', 1)
text += '''
# Added by scripts/compose-test.sh: the line is closed (after hours) and one person is on call.
[schedule.open]

[schedule.maintenance]

[[paging.people]]
id = "tech1"
name = "Martin Roy"
email = "tech1@example.net"
language = "en"

[[paging.rotations]]
id = "oncall"
people = ["tech1"]

[paging.ladder]
levels = [["oncall"]]
repeat_every = "0s"
'''
open(dst, "w").write(text)
EOF
  chmod 0644 "$work/$node.toml"
done
# The nodes' ulimits (nofile 65536, rtprio 10) need a dockerd that may raise limits
# (CAP_SYS_RESOURCE). One without it (rootless Docker, or this project's sandboxed machines)
# can only give what it has itself: the override then asks for that, and says so.
ulimits=""
dpid=$(pgrep -xo dockerd || true)
if [ -n "$dpid" ] && ! (( (0x$(awk '/^CapEff/ {print $2}' "/proc/$dpid/status") >> 24) & 1 )); then
  nofile=$(awk '/^Max open files/ {print $5}' "/proc/$dpid/limits")
  rtprio=$(awk '/^Max realtime priority/ {print $5}' "/proc/$dpid/limits")
  say "dockerd lacks CAP_SYS_RESOURCE: the nodes get nofile $nofile and rtprio $rtprio (its own limits), not the file's 65536 and 10"
  ulimits="    ulimits:
      nofile: $nofile
      rtprio: $rtprio"
fi
cat >"$work/override.yml" <<EOF
services:
  node-a:
    volumes:
      - $work/node-a.toml:/etc/astreinte/astreinte.toml:ro
$ulimits
  node-b:
    volumes:
      - $work/node-b.toml:/etc/astreinte/astreinte.toml:ro
$ulimits
EOF
"${compose[@]}" down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
busy=$( (ss -Hlnu; ss -Hlnt) | awk '{print $4}' | sed 's/.*://' |
  awk '$1==5060 || $1==8081 || $1==8082 || $1==8025 || ($1>=20000 && $1<=20199)' | sort -u | tr '\n' ' ')
[ -z "$busy" ] || die "the compose file's published ports are in use: $busy(see ss -lnptu)"

# ---- the image alone, with its own config -------------------------------------------------
say "the image alone: no capability, its own config, health check"
standalone=$(docker run -d astreinte:local)
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null; }
image_healthy() {
  local s
  s=$(health_of "$standalone")
  [ "$s" = healthy ] && return 0
  [ "$s" = unhealthy ] || [ "$s" = exited ] && die "the image alone is $s: $(docker logs --tail 20 "$standalone" 2>&1)"
  return 1
}
# ---- compose up ---------------------------------------------------------------------------
say "docker-compose up -d"
"${compose[@]}" up -d --no-build 2>&1 | sed 's/^/  /' >&2
services=(postgres node-a node-b kamailio mailpit)
cid() { "${compose[@]}" ps -q "$1"; }
all_healthy() {
  local s st
  for s in "${services[@]}"; do
    st=$(health_of "$(cid "$s")")
    [ "$st" = healthy ] || return 1
  done
}
wait_for "every service to be healthy" 180 all_healthy
say "every service is healthy: ${services[*]}"
wait_for "the image alone to be healthy" 90 image_healthy
docker rm -f "$standalone" >/dev/null
standalone=""
say "the image alone, with no capability and its own config, is healthy"

# io_uring where the seccomp profile allows it, epoll where it does not: the image with
# [media] io_uring = "always" (threads without real-time priority use the ring too), under
# Docker's default profile and under one that refuses the io_uring calls.
printf '[media]\nio_uring = "always"\n[http]\nlisten = "127.0.0.1:8080"\n' >"$work/uring.toml"
printf '%s\n' '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["io_uring_setup", "io_uring_enter", "io_uring_register"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}' >"$work/no-uring.json"
chmod 0644 "$work/uring.toml" "$work/no-uring.json"
media_io_of() { # $@: docker run options; prints the engine's media I/O line and its gauges
  local line="" gauges
  standalone=$(docker run -d "$@" -v "$work/uring.toml:/etc/astreinte/astreinte.toml:ro" astreinte:local)
  for _ in $(seq 1 30); do
    line=$(docker logs "$standalone" 2>&1 | grep -o 'media I/O:.*' || true)
    [ -n "$line" ] && break
    sleep 1
  done
  [ -n "$line" ] || die "the image did not log its media I/O backend: $(docker logs --tail 20 "$standalone" 2>&1)"
  wait_for "the image's /metrics" 30 docker exec "$standalone" curl -fsS -o /dev/null http://127.0.0.1:8080/metrics
  gauges=$(docker exec "$standalone" curl -fsS http://127.0.0.1:8080/metrics | grep '^astreinte_media_io' | sort | tr '\n' ' ')
  docker rm -f "$standalone" >/dev/null
  standalone=""
  echo "$line | $gauges"
}
io=$(media_io_of)
say "default seccomp profile: $io"
case "$io" in
  *"io_uring on all"*'backend="epoll"} 0'*) ;;
  *"kernel refused io_uring"*'backend="io_uring"} 0'*) ;;
  *) die "with io_uring = \"always\" and Docker's default profile: $io" ;;
esac
io=$(media_io_of --security-opt "seccomp=$work/no-uring.json")
say "a profile refusing io_uring: $io"
case "$io" in
  *"epoll on all"*"kernel refused io_uring"*'backend="io_uring"} 0'*) ;;
  *) die "a seccomp profile refusing io_uring should leave epoll: $io" ;;
esac

exec_node() { "${compose[@]}" exec -T -e ASTREINTE_LOG=warn "$1" "${@:2}"; }
node_cli() { exec_node "$1" astreinte "${@:2}" --config /etc/astreinte/astreinte.toml; }
for n in node-a node-b; do
  log=$("${compose[@]}" logs --no-color "$n")
  io=$(grep -c 'media I/O:' <<<"$log" || true)
  [ "$io" = 1 ] || die "$n logged its media I/O backend $io times, not once"
  fifo=$(grep -c 'SCHED_FIFO was refused' <<<"$log" || true)
  [ "$fifo" -le 1 ] || die "$n warned $fifo times about SCHED_FIFO"
  metrics=$(exec_node "$n" curl -fsS http://127.0.0.1:8080/metrics)
  grep -E '^astreinte_media_io\{backend="(epoll|io_uring)"\} [1-9]' <<<"$metrics" >/dev/null ||
    die "$n: no astreinte_media_io gauge in /metrics"
  say "$n: $(grep -o 'media I/O:.*' <<<"$log" | head -n 1 | cut -c1-150); $(grep -E '^astreinte_media_io' <<<"$metrics" | tr '\n' ' ')"
done

# ---- SIPp calls through the published SIP port --------------------------------------------
# Runs SIPp's uac_hold.xml in the background: $1 calls at $2 per second, each held 3 s; its
# traces in $work/$3.
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("'"$host_ip"'", 0)); print(s.getsockname()[1])'; }
sipp_calls() {
  local calls=$1 rate=$2 dir=$work/$3
  mkdir -p "$dir"
  (cd "$dir" && exec sipp "$host_ip:5060" -sf "$repo/tests/sipp/uac_hold.xml" -s 611 -i "$host_ip" \
    -p "$(free_port)" -mp "$(free_port)" -r "$rate" -rp 1000 -m "$calls" -l 50 -timeout 120s \
    -nostdin -trace_logs -trace_err >/dev/null 2>&1) &
  sipp_pids+=($!)
}
established() { cat "$work/$1"/*_logs.log 2>/dev/null | awk '$1=="ESTABLISHED" {print $2}' | sort -u; }
done_calls() { cat "$work/$1"/*_logs.log 2>/dev/null | awk '$1=="DONE" {print $2}' | sort -u; }
count_lines() { if [ -z "$1" ]; then echo 0; else wc -l <<<"$1"; fi; }
taken_by() { # the calls of the list $2 that node $1's log names
  local log
  log=$("${compose[@]}" logs --no-color "$1")
  while read -r id; do [ -n "$id" ] && grep -qF "$id" <<<"$log" && echo "$id"; done <<<"$2"
}
sipp_finished() { [ "$(count_lines "$(done_calls "$1")")" -ge "$2" ]; }

say "SIPp: 10 calls through $host_ip:5060 (Kamailio)"
sipp_calls 10 5 spread
wait_for "10 SIPp calls to end normally" 90 sipp_finished spread 10
ids=$(established spread)
on_a=$(count_lines "$(taken_by node-a "$ids")")
on_b=$(count_lines "$(taken_by node-b "$ids")")
say "SIPp: $(count_lines "$ids") calls established and ended; node-a took $on_a, node-b $on_b"
[ "$on_a" -ge 1 ] && [ "$on_b" -ge 1 ] || die "the calls did not reach both nodes (a: $on_a, b: $on_b)"
[ $((on_a + on_b)) = 10 ] || die "each call should be taken by one node: a $on_a + b $on_b != 10"

# ---- RTP both ways, through the published RTP ports ---------------------------------------
# (Logs are read whole before grep: grep -q would cut the pipe, which pipefail calls a failure.)
node_log() { "${compose[@]}" logs --no-color "$1"; }
logged_stats() {
  local log
  log=$(node_log "$1")
  grep -F "$2" <<<"$log" | grep 'media closed' >/dev/null
}
caller_cmd() { python3 "$repo/scripts/compose-caller.py" "$1" --host "$host_ip" --proxy "$host_ip:5060" "${@:2}"; }
caller=(caller_cmd)
seen_a=""
seen_b=""
for _ in 1 2 3 4; do
  out=$("${caller[@]}" listen) || die "the RTP call failed"
  rtp=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["node_rtp"], d["heard_ms"], d["call_id"])' "$out")
  read -r node_rtp heard call_id <<<"$rtp"
  port=${node_rtp##*:}
  [ "$heard" -ge 300 ] || die "call $call_id: heard only ${heard} ms from the node"
  if [ "$port" -lt 20100 ]; then n="node-a"; seen_a=1; else n="node-b"; seen_b=1; fi
  # The node's statistics for the call: what it received from us through the published port.
  wait_for "$n to log the statistics of $call_id" 20 logged_stats "$n" "$call_id"
  stats=$(node_log "$n" | grep -F "$call_id" | grep 'media closed' | tail -n 1)
  received=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' <<<"$stats")
  [ "${received:-0}" -gt 10 ] || die "$n received ${received:-no} RTP packets from the caller: $stats"
  say "RTP both ways with $n through $node_rtp: heard ${heard} ms, the node received $received packets"
  [ -n "$seen_a" ] && [ -n "$seen_b" ] && break
done
[ -n "$seen_a" ] && [ -n "$seen_b" ] || die "RTP calls did not reach both nodes"

# ---- an after-hours S1 voicemail: one ticket, one e-mail, the console -----------------------
say "S1 voicemail through the published port"
"${caller[@]}" voicemail --speech "$repo/prompts/en/greeting.wav" >"$work/voicemail.json" ||
  die "the voicemail call failed"
tickets_json() { node_cli node-b tickets list --json 2>/dev/null; }
one_ticket() { [ "$(tickets_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ]; }
wait_for "one ticket" 30 one_ticket
number=$(tickets_json | python3 -c 'import json,sys; t=json.load(sys.stdin)[0]; print(t["number"])')
say "ticket $number"
mail_count() { python3 - <<'EOF'
import json, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:8025/api/v1/messages", timeout=5))["total"])
EOF
}
one_mail() { [ "$(mail_count)" -ge 1 ]; }
wait_for "the e-mail page in Mailpit" 60 one_mail
node_cli node-a tickets voicemail "$number" --out - >"$work/voicemail.wav"
python3 - "$number" "$work/voicemail.wav" <<'EOF' || die "the e-mail page is not right"
import hashlib, json, sys, urllib.request
number, wav = sys.argv[1], open(sys.argv[2], "rb").read()
api = "http://127.0.0.1:8025/api/v1"
msgs = json.load(urllib.request.urlopen(f"{api}/messages", timeout=5))["messages"]
assert len(msgs) == 1, f"{len(msgs)} e-mails, not one"
m = json.load(urllib.request.urlopen(f"{api}/message/{msgs[0]['ID']}", timeout=5))
digits = number.replace(" ", "")
assert digits in m["Subject"].replace(" ", ""), f"subject {m['Subject']!r} lacks {number}"
wavs = [a for a in m["Attachments"] if a["ContentType"] == "audio/wav"]
assert len(wavs) == 1, f"attachments: {m['Attachments']}"
got = urllib.request.urlopen(f"{api}/message/{m['ID']}/part/{wavs[0]['PartID']}", timeout=5).read()
assert got[:4] == b"RIFF" and got == wav, "the attached WAV is not the ticket's voicemail"
print(f"e-mail {m['Subject']!r} to {m['To'][0]['Address']}, {len(got)} bytes of WAV")
EOF
say "one e-mail in Mailpit with the voicemail's WAV"
admin_pw="compose test passphrase $RANDOM$RANDOM"
exec_node node-a sh -c "printf '%s\n' '$admin_pw' | astreinte users add ada --role admin --config /etc/astreinte/astreinte.toml" >/dev/null
python3 - "$number" "$admin_pw" <<'EOF' || die "the console does not show the ticket"
import json, sys, urllib.request
number, pw = sys.argv[1:]
base = "http://127.0.0.1:8081"
req = urllib.request.Request(f"{base}/api/login", data=json.dumps({"name": "ada", "password": pw}).encode(),
                             headers={"Content-Type": "application/json"}, method="POST")
res = urllib.request.urlopen(req, timeout=10)
cookie = res.headers.get("Set-Cookie", "").split(";", 1)[0]
assert cookie, "no session cookie"
get = lambda p: urllib.request.urlopen(urllib.request.Request(base + p, headers={"Cookie": cookie}), timeout=10)
tickets = json.load(get("/api/tickets"))
items = tickets if isinstance(tickets, list) else tickets.get("tickets", [])
assert any(t.get("number") == number for t in items), f"ticket {number} not in {items}"
wav = get(f"/api/tickets/{number.replace(' ', '')}/voicemail").read()
assert wav[:4] == b"RIFF", "the console's player gets no WAV"
print(f"console: admin ada sees ticket {number} and its voicemail ({len(wav)} bytes)")
EOF
say "the console on 127.0.0.1:8081 shows the ticket to an admin"

# ---- node-a killed: new calls go to node-b, the page is neither lost nor doubled ------------
say "docker-compose kill node-a"
"${compose[@]}" kill node-a >/dev/null 2>&1
sipp_calls 6 2 after-kill
wait_for "6 SIPp calls after the kill" 90 sipp_finished after-kill 6
ids=$(established after-kill)
on_b=$(count_lines "$(taken_by node-b "$ids")")
[ "$on_b" = 6 ] || die "after node-a died, node-b took $on_b of 6 calls"
jobs_sent=$(mail_count)
[ "$jobs_sent" = 1 ] || die "$jobs_sent e-mails after node-a died, not one"
jobs=$(exec_node postgres psql -U astreinte -d astreinte -tA -c \
  "SELECT channel || ':' || state FROM page_jobs ORDER BY id" | tr '\n' ' ')
[ "$jobs" = "email:done " ] || die "page jobs after node-a died: $jobs (want one e-mail, done)"
say "node-b took all 6 new calls; still exactly one e-mail page"

# ---- node-b stopped with a call up: the call ends normally, then the container stops --------
say "a 6 s call on node-b, and docker-compose stop node-b during it"
# Calls alternate between the nodes; node-a is dead, so this one is node-b's.
"${caller[@]}" hold --seconds 6 --answered "$work/drain.answered" >"$work/drain.json" 2>"$work/drain.err" &
drain_call=$!
wait_for "the call to be answered" 20 test -s "$work/drain.answered"
"${compose[@]}" stop node-b >/dev/null 2>&1 &
stop_pid=$!
wait "$drain_call" || die "the call during the drain failed: $(cat "$work/drain.err")"
grep -q '"bye": "SIP/2.0 200' "$work/drain.json" || die "the call's BYE during the drain: $(cat "$work/drain.json")"
wait_for "node-b to stop after its call" 60 sh -c "! kill -0 $stop_pid 2>/dev/null"
state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(cid node-b)")
[ "$state" = "exited 0" ] || die "node-b after the drain: $state"
log=$(node_log node-b)
grep 'draining: no new calls' <<<"$log" | grep 'calls=1' >/dev/null || die "node-b did not drain with the call up"
grep 'drained: no call in progress' <<<"$log" >/dev/null || die "node-b did not finish its drain"
say "the call ended normally, then node-b exited 0"

# ---- down -v --------------------------------------------------------------------------------
say "docker-compose down -v"
"${compose[@]}" down -v --remove-orphans --timeout 10 >/dev/null 2>&1
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
[ -z "$left" ] || die "containers left after down -v: $left"
vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$project")
[ -z "$vols" ] || die "volumes left after down -v: $vols"
say "nothing left running"
