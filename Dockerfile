# astreinte: one engine node. Build: docker build -t astreinte .
# Run it with its config mounted, and CAP_SYS_NICE in the container's bounding set (the binary
# carries it as a file capability, for SCHED_FIFO media threads; without it in the bounding
# set the kernel refuses to start the binary at all):
#   docker run --cap-add SYS_NICE -v $PWD/my.toml:/etc/astreinte/astreinte.toml:ro \
#     -p 5060:5060/udp -p 5060:5060/tcp -p 8080:8080 -p 20000-20999:20000-20999/udp astreinte
# docker-compose.yml runs two nodes behind Kamailio with PostgreSQL.

# ---- build ------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# Prompts, migrations, the default config and the triage rules are compiled into the binary
# (build.rs, sqlx::migrate!, include_str!): the runtime stage needs none of these files.
COPY . .
RUN cargo build --release --locked --bin astreinte \
 && install -D -m 0755 target/release/astreinte /out/astreinte

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim
# espeak-ng and sox: incident announcements (`announce set`, the console) are spoken by
# espeak-ng and converted by sox. curl: the health check. ca-certificates: SMTP over TLS,
# webhooks. libcap2-bin only for setcap below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates espeak-ng sox curl libcap2-bin \
 && useradd --system --user-group --home-dir /var/lib/astreinte --shell /usr/sbin/nologin astreinte \
 && install -d -o astreinte -g astreinte -m 0750 /var/lib/astreinte /var/lib/astreinte/data \
      /var/lib/astreinte/recordings \
 && install -d -m 0755 /etc/astreinte

COPY --from=build /out/astreinte /usr/local/bin/astreinte
# Real-time priority for the media threads without running as root.
RUN setcap cap_sys_nice+ep /usr/local/bin/astreinte \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/*

# The reference configuration (loopback only: mount your own over it, as the compose file
# does; `docker run … astreinte check-config --config /etc/astreinte/astreinte.toml` checks it).
COPY config/astreinte.toml config/triage-rules.toml /etc/astreinte/

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
