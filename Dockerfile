# Multi-stage build: compile in the Rust image, run in a small Debian one as
# a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/tenderflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/tenderflow --create-home tenderflow
COPY --from=build /src/target/release/tenderflow /usr/local/bin/tenderflow
USER tenderflow
WORKDIR /var/lib/tenderflow
ENTRYPOINT ["tenderflow"]
CMD ["run"]
