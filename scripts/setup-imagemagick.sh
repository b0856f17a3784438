#!/usr/bin/env bash
# Makes ImageMagick 7.1.x (MagickWand) available to magick_rust, which links only
# against 7.1.x. Debian 12 ships 6.9, and Debian 13's 7.1 binaries need a newer
# glibc, so on Debian 12 we build Debian 13's source tarball; elsewhere we use
# the distribution's package. Idempotent: a machine that already has it returns
# in well under a second.
#
# With --packages it only installs the build's Debian packages (scripts/setup.sh
# runs the package installs one at a time, as apt holds one lock, and the
# build beside other work).
set -euo pipefail
PACKAGES_ONLY=0
[ "${1:-}" = --packages ] && PACKAGES_ONLY=1

IM_VERSION=7.1.1.43
IM_TARBALL="imagemagick_${IM_VERSION}+dfsg1.orig.tar.xz"
IM_SHA256=bcb4f3c78a930a608fa4889f889edbcb384974246ad9407fce1858f2c0607bfe
PREFIX=${IM_PREFIX:-/usr/local}

log() { printf '[setup-imagemagick] %s\n' "$*" >&2; }

# The build below has its coders as modules (as Debian's packages and the
# Docker image have them): a coder's delegate libraries load only when it is
# first used, so a process that converts no PNG never maps libpng, and
# start-up is not spent linking libheif's codecs (libde265's static
# initialiser alone is 25 M instructions). A build this script made before
# that choice (in $PREFIX, no coders directory) is built again; any other
# ImageMagick 7.1 is used as it is.
if pkg-config --atleast-version=7.1.1 MagickWand 2>/dev/null \
   && ! pkg-config --atleast-version=7.2 MagickWand 2>/dev/null; then
  if [ "$(pkg-config --variable=prefix MagickWand)" != "$PREFIX" ] \
     || [ -d "$(pkg-config --variable=moduledir MagickCore)/coders" ]; then
    [ "$PACKAGES_ONLY" = 1 ] || log "MagickWand $(pkg-config --modversion MagickWand) already present; nothing to do"
    exit 0
  fi
  log "MagickWand $(pkg-config --modversion MagickWand) in $PREFIX has its coders built in; building it again with modules"
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { log "need root (or sudo) to install packages"; exit 1; }
  SUDO=sudo
fi

case "$(uname -s)" in
  Darwin)
    log "macOS: installing with Homebrew"
    brew install imagemagick pkg-config
    exit 0 ;;
esac

. /etc/os-release
if [ "${ID:-}" != debian ] && [ "${ID_LIKE:-}" != debian ]; then
  log "unsupported system ${PRETTY_NAME:-unknown}: install ImageMagick 7.1 with MagickWand's pkg-config file yourself"
  exit 1
fi

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Debian 13 and later package 7.1 themselves.
if [ "${VERSION_ID%%.*}" -ge 13 ] 2>/dev/null; then
  apt_install pkg-config libclang-dev libmagickwand-7.q16-dev
  exit 0
fi

apt_install build-essential pkg-config autoconf automake libtool libclang-dev curl xz-utils ca-certificates \
  libjpeg62-turbo-dev libpng-dev libtiff-dev libwebp-dev zlib1g-dev liblcms2-dev libxml2-dev \
  libfreetype-dev libheif-dev libopenjp2-7-dev libgif-dev libltdl-dev
[ "$PACKAGES_ONLY" = 1 ] && exit 0

# The mirror apt already trusts; read at run time so no host name lives in the repo.
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || { log "cannot find the Debian mirror in apt's sources"; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log "downloading $IM_TARBALL"
curl -fsSL --retry 3 -o "$WORK/$IM_TARBALL" "$MIRROR/pool/main/i/imagemagick/$IM_TARBALL"
echo "$IM_SHA256  $WORK/$IM_TARBALL" | sha256sum -c --quiet -
tar -xf "$WORK/$IM_TARBALL" -C "$WORK"
cd "$WORK"/ImageMagick-*/ 2>/dev/null || cd "$WORK"/imagemagick-*/ 2>/dev/null || cd "$(find "$WORK" -mindepth 1 -maxdepth 1 -type d | head -1)"

log "building in $(pwd) (about 2.5 minutes on 2 cores)"
autoreconf -fi >/dev/null 2>&1
./configure --prefix="$PREFIX" --disable-static --with-quantum-depth=16 --enable-hdri \
  --with-modules --without-x --without-perl --disable-docs --without-magick-plus-plus >/dev/null
make -j"$(nproc)" >/dev/null 2>&1 || make  # rerun serially to show the error
# Installed through a staging directory with the pkg-config files copied
# last: batchimg's build, which setup.sh may start beside this one, finds
# MagickWand only once all of ImageMagick is in place.
STAGE="$WORK/stage"
make install DESTDIR="$STAGE" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; exit 1; }
mv "$STAGE$PREFIX/lib/pkgconfig" "$WORK/pkgconfig"
$SUDO mkdir -p "$PREFIX/lib/pkgconfig"
$SUDO cp -a "$STAGE$PREFIX/." "$PREFIX/"
$SUDO ldconfig
$SUDO cp -a "$WORK/pkgconfig/." "$PREFIX/lib/pkgconfig/"
log "installed $(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --modversion MagickWand) into $PREFIX"
