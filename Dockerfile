# Multi-stage build of the redrive binary and its UI assets.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-unknown-unknown \
 && cargo install wasm-bindgen-cli --version 0.2.130
COPY . .
RUN scripts/build-site && cargo build --release -p server --bin redrive

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/redrive redrive \
 && mkdir -p /var/lib/redrive && chown redrive /var/lib/redrive
COPY --from=build /src/target/release/redrive /usr/local/bin/redrive
COPY --from=build /src/target/site /usr/share/redrive/site
USER redrive
WORKDIR /var/lib/redrive
ENV REDRIVE_LISTEN=0.0.0.0:3000 \
    REDRIVE_SITE_ROOT=/usr/share/redrive/site \
    REDRIVE_DATABASE_URL=sqlite:///var/lib/redrive/redrive.db?mode=rwc
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/redrive"]
