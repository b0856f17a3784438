#!/usr/bin/env bash
# Writes the benchmark's 40 real camera photographs of 11-12 MP into
# target/bench-photos/ (00.jpg .. 39.jpg, baseline JPEG q90, 4:2:0, no EXIF,
# upright), plus SOURCES.txt with each file's origin, crop and licence.
#
# Where the pixels come from: Debian 12's lomiri-wallpapers-16.04 and
# lomiri-wallpapers-20.04 (the Ubuntu Touch wallpaper-contest photos), which
# hold the only photographs of 11 MP or more that the registries reachable
# here (Debian, PyPI, npm, crates.io) were found to carry. That is 5 distinct
# photos (4272x2848, 5312x2988, 4224x3168, 4352x2448, 6028x3391), so the 40
# files are 5 photos x several crop windows, each of them also mirrored: real
# camera content, no resampling anywhere (jpegtran crops on 16-pixel
# boundaries and flips losslessly, then djpeg|cjpeg re-encodes once at q90),
# but NOT 40 distinct scenes. Files 00-04 are the 5 distinct photos.
#
# Also installs libvips' vipsthumbnail, the anchor `make bench` measures the
# transform against (BENCH_THUMBS=1).
#
# Idempotent: returns at once when 40 or more JPEGs are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/bench-photos
WANT=40
log() { printf '[setup-photos] %s\n' "$*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_update() { # the lists lock may be held by another apt run: wait for it
  local i
  for i in $(seq 1 60); do
    $SUDO apt-get update -qq >/dev/null 2>&1 && return 0
    sleep 10
  done
  $SUDO apt-get update -qq
}
if ! command -v vipsthumbnail >/dev/null; then
  log "apt-get install libvips-tools"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 libvips-tools >/dev/null
fi

have=0
[ -d "$OUT" ] && have=$(find "$OUT" -maxdepth 1 -name '*.jpg' | wc -l)
if [ "$have" -ge "$WANT" ]; then
  log "$have photos already in $OUT; nothing to do"
  exit 0
fi
if ! command -v jpegtran >/dev/null || ! command -v djpeg >/dev/null \
   || ! command -v cjpeg >/dev/null || ! command -v rdjpgcom >/dev/null; then
  log "apt-get install libjpeg-turbo-progs"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 libjpeg-turbo-progs >/dev/null
fi

PKGS=(lomiri-wallpapers-16.04 lomiri-wallpapers-20.04)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if ! apt-cache show "${PKGS[@]}" >/dev/null 2>&1; then
  apt_update
fi
log "apt-get download ${PKGS[*]} (27 MB)"
(cd "$TMP" && apt-get download -qq -o APT::Sandbox::User=root "${PKGS[@]}" >/dev/null)
for deb in "$TMP"/*.deb; do
  dpkg-deb -x "$deb" "$TMP/x"
done
BG="$TMP/x/usr/share/backgrounds"

declare -A SIZE=(
  [sunset_by_Aitzol_Berasategi.jpg]=4272x2848
  [seeding_by_Clements_Engelhardt.jpg]=5312x2988
  [Dragonfly_by_Bolly.jpg]=4224x3168
  [Bridge_by_Sander_Klootwijk.jpg]=4352x2448
  [Kleiber_by_Lukas_Baubkus.jpg]=6028x3391
)
declare -A LICENCE=(
  [sunset_by_Aitzol_Berasategi.jpg]="CC-BY-4.0, Aitzol Berasategi 2018 (lomiri-wallpapers-16.04)"
  [seeding_by_Clements_Engelhardt.jpg]="CC0-1.0, Clemens Engelhardt 2018 (lomiri-wallpapers-16.04)"
  [Dragonfly_by_Bolly.jpg]="CC-BY-SA-4.0, \"Bolly\" 2018 (lomiri-wallpapers-16.04)"
  [Bridge_by_Sander_Klootwijk.jpg]="CC-BY-SA-4.0, Sander Klootwijk 2018 (lomiri-wallpapers-16.04)"
  [Kleiber_by_Lukas_Baubkus.jpg]="CC-BY-SA-4.0, Lukas Baubkus (lomiri-wallpapers-20.04)"
)
dims() { # WxH of a JPEG, from its SOF marker
  rdjpgcom -verbose "$1" | sed -n 's/^JPEG image is \([0-9]*\)w \* \([0-9]*\)h.*/\1x\2/p'
}
for name in "${!SIZE[@]}"; do
  [ -f "$BG/$name" ] || { log "missing $name in ${PKGS[*]}"; exit 1; }
  got=$(dims "$BG/$name")
  [ "$got" = "${SIZE[$name]}" ] || { log "$name is $got, expected ${SIZE[$name]}"; exit 1; }
done

# source crop(WxH+X+Y, X and Y on 16-pixel boundaries) mirror(0|1); the first
# five rows are the five distinct photos, the rest more windows and mirrors.
PLAN="
sunset_by_Aitzol_Berasategi.jpg     4000x2848+128+0   0
seeding_by_Clements_Engelhardt.jpg  4000x2988+656+0   0
Dragonfly_by_Bolly.jpg              4000x3000+112+80  0
Bridge_by_Sander_Klootwijk.jpg      4352x2448+0+0     0
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+1008+192 0
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+0+0     0
seeding_by_Clements_Engelhardt.jpg  4000x2988+0+0     0
Dragonfly_by_Bolly.jpg              4000x3000+0+0     0
sunset_by_Aitzol_Berasategi.jpg     4000x2848+0+0     0
Bridge_by_Sander_Klootwijk.jpg      4352x2448+0+0     1
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+2016+384 0
seeding_by_Clements_Engelhardt.jpg  4000x2988+1312+0  0
Dragonfly_by_Bolly.jpg              4000x3000+224+160 0
sunset_by_Aitzol_Berasategi.jpg     4000x2848+272+0   0
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+2016+0  0
seeding_by_Clements_Engelhardt.jpg  4000x2988+432+0   0
Dragonfly_by_Bolly.jpg              4000x3000+224+0   0
sunset_by_Aitzol_Berasategi.jpg     4000x2848+128+0   1
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+0+384   0
seeding_by_Clements_Engelhardt.jpg  4000x2988+864+0   0
Dragonfly_by_Bolly.jpg              4000x3000+0+160   0
sunset_by_Aitzol_Berasategi.jpg     4000x2848+0+0     1
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+1008+192 1
seeding_by_Clements_Engelhardt.jpg  4000x2988+656+0   1
Dragonfly_by_Bolly.jpg              4000x3000+112+80  1
sunset_by_Aitzol_Berasategi.jpg     4000x2848+272+0   1
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+0+0     1
seeding_by_Clements_Engelhardt.jpg  4000x2988+0+0     1
Dragonfly_by_Bolly.jpg              4000x3000+0+0     1
sunset_by_Aitzol_Berasategi.jpg     4000x2848+64+0    0
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+2016+384 1
seeding_by_Clements_Engelhardt.jpg  4000x2988+1312+0  1
Dragonfly_by_Bolly.jpg              4000x3000+224+160 1
sunset_by_Aitzol_Berasategi.jpg     4000x2848+208+0   0
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+2016+0  1
seeding_by_Clements_Engelhardt.jpg  4000x2988+432+0   1
Dragonfly_by_Bolly.jpg              4000x3000+224+0   1
Kleiber_by_Lukas_Baubkus.jpg        4000x3000+0+384   1
seeding_by_Clements_Engelhardt.jpg  4000x2988+864+0   1
Dragonfly_by_Bolly.jpg              4000x3000+0+160   1
"

mkdir -p "$OUT"
log "writing $WANT JPEGs (q90) to $OUT"
manifest="$TMP/SOURCES.txt"
printf '# file  source  crop  mirrored  licence\n' >"$manifest"
i=0
while read -r name crop mirror; do
  [ -n "$name" ] || continue
  f=$(printf '%02d.jpg' "$i")
  jpegtran -copy none -crop "$crop" "$BG/$name" >"$TMP/crop.jpg"
  if [ "$mirror" = 1 ]; then
    jpegtran -copy none -flip horizontal -perfect "$TMP/crop.jpg" >"$TMP/flip.jpg"
    mv "$TMP/flip.jpg" "$TMP/crop.jpg"
  fi
  djpeg "$TMP/crop.jpg" | cjpeg -quality 90 >"$TMP/$f"
  want=${crop%%+*}
  got=$(dims "$TMP/$f")
  [ "$got" = "$want" ] || { log "$f came out $got, expected $want"; exit 1; }
  djpeg "$TMP/$f" >/dev/null
  mv "$TMP/$f" "$OUT/$f"
  printf '%s  %s  %s  %s  %s\n' "$f" "$name" "$crop" "$mirror" "${LICENCE[$name]}" >>"$manifest"
  i=$((i + 1))
done <<<"$PLAN"
mv "$manifest" "$OUT/SOURCES.txt"
[ "$i" -ge "$WANT" ] || { log "only $i photos planned"; exit 1; }
log "done: $i photos ($(du -sh "$OUT" | cut -f1)) in $OUT, from 5 distinct source photos"
