# Redrive in a container: the same scripts CI runs build it, so this file
# cannot drift from a build that is tested on every change.
#
#   docker build -t redrive .
#   docker run -d --name redrive -p 3000:3000 -v redrive-data:/var/lib/redrive \
#     -e REDRIVE_AMQP_URL=amqp://redrive:secret@rabbit-1:5672/%2f,amqp://redrive:secret@rabbit-2:5672/%2f \
#     -e REDRIVE_MANAGEMENT_URL=http://rabbit-1:15672,http://rabbit-2:15672 \
#     -e REDRIVE_MANAGEMENT_USER=redrive -e REDRIVE_MANAGEMENT_PASSWORD=secret \
#     redrive
#
# Every setting is an environment variable (README, "Configuration").

# The toolchain the project is built and tested with (rust-version in
# Cargo.toml is the oldest that builds it).
FROM rust:1.95-bookworm AS build
# Node only compresses the UI assets with brotli (scripts/build-site falls
# back to gzip without it). Debian's packages are not pinned (DL3008): the
# archive keeps only the current security release of each, so a pin breaks
# the build at the next update; the base image's tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The wasm target first, in a layer of their own
# that survives source changes.
COPY scripts/setup scripts/setup
RUN scripts/setup
COPY . .
RUN scripts/build-site \
 && cargo build --release --locked -p server --bin redrive

FROM debian:bookworm-slim
# ca-certificates for amqps:// and webhook URLs over TLS (unpinned, as above).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/redrive --shell /usr/sbin/nologin redrive \
 && mkdir -p /var/lib/redrive \
 && chown redrive /var/lib/redrive
COPY --from=build /src/target/release/redrive /usr/local/bin/redrive
COPY --from=build /src/target/site /usr/share/redrive/site
USER 10001
WORKDIR /var/lib/redrive
# The SQLite default lives on the volume; a team on PostgreSQL sets
# REDRIVE_DATABASE_URL instead. Listening on every address makes
# REDRIVE_ALLOWED_HOSTS default to any host name: set it to the names
# Redrive is reached by.
ENV REDRIVE_LISTEN=0.0.0.0:3000 \
    REDRIVE_SITE_ROOT=/usr/share/redrive/site \
    REDRIVE_DATABASE_URL=sqlite:///var/lib/redrive/redrive.db?mode=rwc \
    REDRIVE_LOG_FORMAT=json
VOLUME ["/var/lib/redrive"]
EXPOSE 3000
# `redrive healthcheck` asks this container's own /healthz (no curl needed).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/redrive", "healthcheck"]
# SIGTERM stops Redrive gracefully within REDRIVE_SHUTDOWN_GRACE (20 s);
# keep `docker stop --time` above it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/redrive"]
