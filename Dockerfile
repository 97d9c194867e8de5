# astreinte: one engine node. Build: docker build -t astreinte .
# Run it with its config mounted (the image's own config serves HTTP on port 8080 of the
# container, for the health check, and SIP on loopback only):
#   docker run -v $PWD/my.toml:/etc/astreinte/astreinte.toml:ro \
#     -p 5060:5060/udp -p 5060:5060/tcp -p 8080:8080 -p 20000-20999:20000-20999/udp astreinte
# No capability is needed. The media threads ask for real-time priority (SCHED_FIFO) and, when
# refused, log one warning and run on the normal scheduler; to grant it, give the container
# RLIMIT_RTPRIO (`--ulimit rtprio=10`) and, on hosts whose kernel reserves real-time time per
# cgroup, a real-time budget (`--cpu-rt-runtime`, with dockerd's `--cpu-rt-runtime`).
# docker-compose.yml runs two nodes behind Kamailio with PostgreSQL.

# Which stage makes the binary: `cargo` (the default: built from these sources in the Rust
# image) or `prebuilt` (a binary built beforehand for Debian bookworm, placed at
# deploy/docker/prebuilt/astreinte; scripts/compose-test.sh does this with the binary its
# tests built: `docker build --build-arg ASTREINTE_BUILD=prebuilt`). Needs BuildKit
# (DOCKER_BUILDKIT=1, the default since Docker 23) to skip the stage it does not use.
ARG ASTREINTE_BUILD=cargo

# ---- build: cargo -----------------------------------------------------------------------
FROM rust:1-bookworm AS build-cargo
WORKDIR /src
# Prompts, migrations, the default config and the triage rules are compiled into the binary
# (build.rs, sqlx::migrate!, include_str!): the runtime stage needs none of these files.
COPY . .
RUN rm -rf deploy/docker/prebuilt \
 && cargo build --release --locked --bin astreinte \
 && install -D -m 0755 target/release/astreinte /out/astreinte

# ---- build: prebuilt --------------------------------------------------------------------
FROM debian:bookworm-slim AS build-prebuilt
COPY deploy/docker/prebuilt/ /prebuilt/
RUN test -x /prebuilt/astreinte \
      || { echo "ASTREINTE_BUILD=prebuilt: put the binary at deploy/docker/prebuilt/astreinte" >&2; exit 1; } \
 && install -D -m 0755 /prebuilt/astreinte /out/astreinte

FROM build-${ASTREINTE_BUILD} AS build

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim
# espeak-ng and sox: incident announcements (`announce set`, the console) are spoken by
# espeak-ng and converted by sox. curl: the health check. ca-certificates: SMTP over TLS,
# webhooks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates espeak-ng sox curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /var/lib/astreinte --shell /usr/sbin/nologin astreinte \
 && install -d -o astreinte -g astreinte -m 0750 /var/lib/astreinte /var/lib/astreinte/data \
      /var/lib/astreinte/recordings \
 && install -d -m 0755 /etc/astreinte

# No file capability: a binary carrying one does not start at all where the capability is
# not in the container's bounding set. Real-time priority is asked for at run time instead.
COPY --from=build /out/astreinte /usr/local/bin/astreinte

# The image's configuration: config/astreinte.toml's defaults (SIP on loopback, SQLite under
# /var/lib/astreinte) with HTTP on port 8080 of the container, where the health check asks
# (deploy/docker/astreinte.toml). Mount your own over it, as the compose file does;
# `docker run … astreinte check-config --config /etc/astreinte/astreinte.toml` checks it.
COPY deploy/docker/astreinte.toml config/triage-rules.toml /etc/astreinte/

USER astreinte
# Relative paths of the config (data/astreinte.db, data/recordings, prompts) are under here.
WORKDIR /var/lib/astreinte

# SIP (UDP and TCP), HTTP (console, acknowledgement links, /readyz, /metrics), RTP.
EXPOSE 5060/udp 5060/tcp 8080/tcp 20000-20999/udp

# Ready = the store, SIP and media are up (503 otherwise). Needs [http] listen on port 8080
# of 127.0.0.1 or 0.0.0.0; another port: set ASTREINTE_HEALTH_URL.
ENV ASTREINTE_HEALTH_URL=http://127.0.0.1:8080/readyz
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null "$ASTREINTE_HEALTH_URL" || exit 1

# SIGTERM: the node drains (OPTIONS answered 503 so the proxy sends no new calls, calls in
# progress finish up to [sip] drain_secs) and exits; give it that long (compose:
# stop_grace_period, docker stop -t).
STOPSIGNAL SIGTERM
ENTRYPOINT ["astreinte"]
CMD ["serve", "--config", "/etc/astreinte/astreinte.toml"]
