#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after the other (never two at once: the machine has
# two cores), each for FUZZ_SECONDS (default 30), and prints per target the executions and the
# coverage libFuzzer reports at the end.
#
#   scripts/fuzz.sh                      # every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh sdp # one target, 10 minutes
#
# Needs the nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz if it is
# missing. New corpus entries go to fuzz/corpus/<target>/ (git-ignored but for the seed-*
# files), crashes to fuzz/artifacts/<target>/. A crash fails the script: minimise it
# (cargo +nightly fuzz tmin <target> <file>), copy it to tests/fixtures/fuzz-regressions/<target>/
# and `cargo test --test fuzz_regressions` replays it (with the seed-* files).
# Targets: the SIP, SDP and RTP parsers and the recording recovery (what the network and a
# crash leave), and what people hand the engine: prompt_upload (the console's audio converter),
# config (check-config's parsing and validation), accounts_csv (the accounts import),
# ack_link (acknowledgement link verification) and client_ip (X-Forwarded-For).
#
# FUZZ_SANITIZER (default none): the targets are safe Rust, where panics and overflow checks
# (debug assertions are on) find the bugs; `address` is there for unsafe code, at ~2x the cost.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
all_targets=(sip_message sip_message_text sdp rtp wav_recovery prompt_upload config accounts_csv
  ack_link client_ip)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
  echo "fuzz.sh: the $toolchain toolchain is missing: rustup toolchain install $toolchain" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz (a few minutes)"
  cargo install cargo-fuzz --locked
fi

# Extra seed directories (read, never written to) per target.
extra_seeds() {
  case "$1" in
    sip_message | sip_message_text) echo tests/fixtures/sip-torture ;;
  esac
}
# The dictionary helps the text targets; the binary ones mutate bytes.
dict_args() {
  case "$1" in
    sip_message | sip_message_text | sdp) echo "-dict=fuzz/sip.dict" ;;
    config) echo "-dict=fuzz/config.dict" ;;
  esac
}
# Memory limits. An upload is hostile: a 60 s prompt at the highest accepted rate needs well
# under 256 MB, so a larger allocation (or RSS above 512 MB) there is a finding, not noise.
limit_args() {
  case "$1" in
    prompt_upload) echo "-rss_limit_mb=512 -malloc_limit_mb=256" ;;
    *) echo "-rss_limit_mb=2048" ;;
  esac
}

# wav_recovery writes a file per input (and the recovery fsyncs it): keep that in memory.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
summary=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "== $t: ${seconds}s"
  # shellcheck disable=SC2046 # word splitting of the optional arguments is intended
  if cargo "+$toolchain" fuzz run --sanitizer "$sanitizer" "$t" "fuzz/corpus/$t" $(extra_seeds "$t") -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 $(limit_args "$t") \
    -artifact_prefix="fuzz/artifacts/$t/" $(dict_args "$t") >"$logs/$t.log" 2>&1; then
    status=ok
  else
    status="FAILED (see fuzz/artifacts/$t/)"
    failed=1
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$logs/$t.log" | head -8 || true
  fi
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -1 || true)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)"
  per_s="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)"
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$logs/$t.log" | tail -1)"
  cov="$(sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+\/[^ ]+).*/cov \1, ft \2, corpus \3/p' <<<"$done_line")"
  [ -n "$cov" ] || cov="$(grep -E 'cov: ' "$logs/$t.log" | tail -1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/cov \1, ft \2/p')"
  line="$(printf '%-17s %-8s executions %-10s %6s/s  rss %4s MB  %s' "$t" "$status" "${execs:-?}" \
    "${per_s:-?}" "${rss:-?}" "${cov:-?}")"
  echo "$line"
  summary+=("$line")
done
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
