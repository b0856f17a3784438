#!/usr/bin/env bash
# `make run`: the whole journey on this machine. Serves inputs/ over a loopback
# HTTP server, starts a throwaway local S3 server (s3s-fs), runs batchimg on
# every image in inputs/, prints the output CSV and stops what it started.
# The stored objects stay in outputs/s3/ for inspection until the next demo.
#
# With S3_BUCKET and AWS credentials in the environment (and no
# AWS_ENDPOINT_URL), runs INPUT (a CSV of your URLs) against your bucket instead.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BATCHIMG_BIN:-target/release/batchimg}
OUT=outputs
mkdir -p "$OUT"

if [ -n "${S3_BUCKET:-}" ] && [ -z "${AWS_ENDPOINT_URL:-}${AWS_ENDPOINT_URL_S3:-}" ]; then
  INPUT=${INPUT:?set INPUT=my.csv to choose the URLs to process in bucket $S3_BUCKET}
  echo "== batchimg: $INPUT -> s3://$S3_BUCKET" >&2
  status=0
  "$BIN" run --input "$INPUT" --output "$OUT/output.csv" --output-failed "$OUT/failed.csv" --fresh || status=$?
  cat "$OUT/output.csv"
  exit $status
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_for_line() { # file pattern: print the first match, waiting up to 10 s
  for _ in $(seq 100); do
    if grep -Eo "$2" "$1" 2>/dev/null | head -1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2; return 1
}

# Images over loopback HTTP, on a free port.
python3 -u -m http.server 0 --bind 127.0.0.1 --directory inputs >"$OUT/http.log" 2>&1 &
pids+=($!)
HTTP_PORT=$(wait_for_line "$OUT/http.log" 'port [0-9]+' | grep -Eo '[0-9]+')

# A fresh local S3 store with one bucket.
rm -rf "$OUT/s3" && mkdir -p "$OUT/s3/batchimg"
RUST_LOG=info .tools/bin/s3s-fs --host 127.0.0.1 --port 0 \
  --access-key batchimg --secret-key batchimg-secret "$OUT/s3" >"$OUT/s3.log" 2>&1 &
pids+=($!)
S3_ADDR=$(wait_for_line "$OUT/s3.log" 'http://127\.0\.0\.1:[0-9]+')

export AWS_ENDPOINT_URL=$S3_ADDR AWS_REGION=us-east-1 S3_BUCKET=batchimg \
       AWS_ACCESS_KEY_ID=batchimg AWS_SECRET_ACCESS_KEY=batchimg-secret \
       BATCHIMG_ALLOW_PRIVATE_NETWORKS=1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ROLE_ARN

{
  echo url
  for f in inputs/*.jpg inputs/*.png inputs/*.gif; do
    echo "http://127.0.0.1:$HTTP_PORT/$(basename "$f")"
  done
} >"$OUT/demo-input.csv"

echo "== batchimg run --input $OUT/demo-input.csv --output $OUT/output.csv" >&2
"$BIN" run --input "$OUT/demo-input.csv" --output "$OUT/output.csv" \
  --output-failed "$OUT/failed.csv" --state-dir "$OUT/state" --fresh
echo "== $OUT/output.csv" >&2
cat "$OUT/output.csv"
echo "== the grayscale objects are in $OUT/s3/batchimg/" >&2
