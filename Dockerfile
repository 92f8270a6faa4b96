# The release binary in a small image, run as a non-root user, with /healthcheck as the
# container's health check. Not built by CI (it needs base images from a registry CI cannot
# reach); see README.md, "Deploying".
#
#   docker build -t aardvark .
#   docker run -d -p 5000:5000 -v aardvark-data:/data \
#     -e AARDVARK_API_TOKENS=... -e AARDVARK_COLLECT_EVERY=6h aardvark
#   docker run --rm -v aardvark-data:/data aardvark aardvark update -a prod   # upstream's habit
#
# The data directory is upstream's /data, so a volume upstream's image used opens here; the
# binary skips a first argument `aardvark`, so upstream's `docker run IMAGE aardvark update`
# works as `docker run IMAGE update` does. tests/first_run.rs runs the binary with this
# file's ENV lines.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p aardvark --no-default-features \
 && strip target/release/aardvark

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data --create-home --uid 10001 aardvark
COPY --from=build /src/target/release/aardvark /usr/local/bin/aardvark
USER aardvark
WORKDIR /data
# SQLite in the volume unless a database URI is set anywhere (a mounted settings file,
# AARDVARK_DATABASE_URI or AARDVARK_SQLALCHEMY_DATABASE_URI): a derived default never wins.
ENV AARDVARK_DATA_DIR=/data \
    AARDVARK_LOG_FORMAT=json
VOLUME /data
EXPOSE 5000
# Another bind or HTTPS: set AARDVARK_HEALTHCHECK_URL (-k: a certificate for a name, not
# 127.0.0.1, is still checked by clients, not by this probe).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD curl -fsSk "${AARDVARK_HEALTHCHECK_URL:-http://127.0.0.1:5000/healthcheck}" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aardvark"]
CMD ["serve", "--bind", "0.0.0.0:5000"]
