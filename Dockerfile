# syntax=docker/dockerfile:1
# Container image for running batchimg as a batch job (Kubernetes Indexed Job,
# AWS Batch array job; see deploy/). Two stages: a Rust builder with the
# ImageMagick 7 headers and libclang (magick_rust runs bindgen), and a slim
# Debian 13 runtime holding only the binary and the MagickWand 7 Q16 library.
# Debian 13 is the first Debian release that packages ImageMagick 7.1.

# Pinned to the Rust minor the project is developed with; override with
# --build-arg RUST_VERSION=1 to float on the newest stable.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-trixie AS builder
# Versions are not pinned (DL3008): Debian stable point releases and security
# updates replace the exact versions, so a pin would break the build within weeks.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagickwand-7.q16-dev libwebp-dev libclang-dev pkg-config cmake nasm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The commit `batchimg --version` names: .git is not in the build context, so
# pass it, e.g. --build-arg BATCHIMG_COMMIT=$(git rev-parse --short=12 HEAD);
# without it the version says "unknown".
ARG BATCHIMG_COMMIT=""
ENV BATCHIMG_COMMIT=${BATCHIMG_COMMIT}
COPY Cargo.toml Cargo.lock build.rs ./
# The workspace: the domain crate is a member the binary depends on.
COPY crates/ crates/
COPY src/ src/
# Cargo.toml declares the `pipeline` bench target; cargo refuses a manifest
# whose declared targets are missing, even when building only the binary.
COPY benches/ benches/
COPY scripts/split-debug.sh scripts/
# The image ships the binary without its debug info; batchimg.debug stays in
# this stage (`docker build --target builder`) for reading a backtrace.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin batchimg \
 && install -m 0755 target/release/batchimg /usr/local/bin/batchimg \
 && scripts/split-debug.sh /usr/local/bin/batchimg

FROM debian:trixie-slim
# Same reason as above for not pinning versions (DL3008).
# libmagickwand-7.q16-10 pulls libmagickcore-7.q16-10 (the PNG, JPEG, GIF,
# WebP, TIFF and BMP coders) and imagemagick-7-common; recommends (Ghostscript,
# fonts) are left out because batchimg disables every delegate anyway.
# libwebp7 is the transform's WebP encoder (linked directly too); libheif's
# decoder plugins are only recommended by libheif1, so they are named: they
# read HEIC (libde265) and AVIF (dav1d).
#
# /etc/ImageMagick-7/policy.xml is deleted on purpose: batchimg installs its own,
# stricter security policy in-process and then verifies it; if ImageMagick has
# already loaded a system policy.xml, batchimg refuses to start rather than run
# under rules it did not set. Removing the file leaves batchimg's policy as the
# only one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagickwand-7.q16-10 libwebp7 \
      libheif-plugin-libde265 libheif-plugin-dav1d ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/ImageMagick-7/policy.xml \
 && useradd --no-log-init --uid 10001 --user-group --home-dir /work --no-create-home \
      --shell /usr/sbin/nologin batchimg \
 && install -d -o 10001 -g 10001 /work
COPY --from=builder /usr/local/bin/batchimg /usr/local/bin/batchimg
# Fails the build if a shared library is missing from the runtime image.
RUN ["batchimg", "--version"]
# Numeric so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["batchimg"]
CMD ["--help"]
