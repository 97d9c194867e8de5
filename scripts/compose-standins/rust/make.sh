#!/usr/bin/env bash
# A stand-in for Docker Hub's rust:1-bookworm, for building the Dockerfile's real build stage
# (ASTREINTE_BUILD=cargo) where Docker Hub cannot be reached: the debian:bookworm-slim stand-in
# (scripts/compose-test.sh makes it) with the compilers and libraries of buildpack-deps that a
# Rust build uses, and this machine's Rust toolchain (rustup's, without rustup) at
# /usr/local/cargo, on the PATH as in the real image, and the host's own CA certificates
# (/usr/local/share/ca-certificates: where egress goes through a TLS-inspecting proxy, as on
# this project's machines, cargo inside the build must trust it to reach crates.io). Not run by CI: it is for the once-per-
# release check that the stage users build still builds (README "Running several nodes").
#
#   bash scripts/compose-standins/rust/make.sh        # tags rust:1-bookworm
#   DOCKER_BUILDKIT=1 /usr/bin/docker build -t astreinte:cargo .
set -euo pipefail
toolchain=${RUST_TOOLCHAIN_DIR:-$(rustc --print sysroot)}
[ -x "$toolchain/bin/cargo" ] || { echo "make.sh: no cargo in $toolchain" >&2; exit 1; }
docker image inspect debian:bookworm-slim >/dev/null 2>&1 \
  || { echo "make.sh: no debian:bookworm-slim image (run scripts/compose-test.sh first)" >&2; exit 1; }
name=astreinte-rust-standin-$$
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
extra_ca=/usr/local/share/ca-certificates
[ -d "$extra_ca" ] || extra_ca=$(mktemp -d)
docker run --name "$name" -v "$toolchain:/toolchain:ro" -v "$extra_ca:/extra-ca:ro" debian:bookworm-slim sh -ec '
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ca-certificates curl git gcc g++ make libc6-dev pkg-config libssl-dev >/dev/null
  rm -rf /var/lib/apt/lists/*
  cp -r /extra-ca/. /usr/local/share/ca-certificates/ && update-ca-certificates >/dev/null
  cp -a /toolchain /usr/local/cargo'
docker commit \
  --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  --change 'LABEL org.astreinte.stand-in=rust-toolchain' \
  "$name" rust:1-bookworm >/dev/null
docker run --rm rust:1-bookworm cargo --version
