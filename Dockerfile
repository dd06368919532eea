# Build stage: the C parts (SQLite, libpq, OpenSSL) are compiled from source by
# their -sys crates, so the builder needs only the Rust toolchain plus perl/make.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# --no-default-features: the server without the `demo` feature, so no provider
# simulator (`serve --demo`, `unicontacts sim`) is compiled into the image.
RUN cargo build --release --locked --no-default-features --bin unicontacts

# Runtime stage: the binary links no database or TLS library of the system.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/unicontacts --create-home unicontacts
COPY --from=build /src/target/release/unicontacts /usr/local/bin/unicontacts
USER unicontacts
WORKDIR /var/lib/unicontacts
ENV UNICONTACTS_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/unicontacts"]
CMD ["serve"]
