# Multi-stage build: compile in the Rust image, run in a small Debian one as
# a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/pipeline.rs \
    && cargo build --release --locked && rm -rf src benches
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/tenderflow

FROM debian:bookworm-slim
# curl is for the health checks only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/tenderflow --create-home tenderflow \
    && mkdir -p /data/store /data/definitions /data/projector \
    && chown -R tenderflow:tenderflow /data
COPY --from=build /src/target/release/tenderflow /usr/local/bin/tenderflow
USER tenderflow
WORKDIR /var/lib/tenderflow
# A fresh named volume takes the ownership of the folder it is mounted on,
# so the stages can write to /data/store.
VOLUME ["/data/store"]
ENV TENDERFLOW__STORE__ROOT=/data/store \
    TENDERFLOW__PROJECTOR__DB_PATH=/data/projector/projector.sqlite3
ENTRYPOINT ["tenderflow"]
CMD ["run"]
