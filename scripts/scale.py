#!/usr/bin/env python3
"""`make scale`: a 1,000,000-row input recorded in the journal, then `status`.

Measures on a 2-core machine: CSV ingest time (<= 30 s), status time
(<= 2 s), peak RSS (<= 300 MB) and the journal's size; then the same rows as
a Parquet export (id INT64, url, caption; written by pyarrow from
scripts/setup-warehouse.sh) recorded with --keep-columns (<= 4 s,
<= 200 MB). Uses --dry-run, so nothing is downloaded; a throwaway s3s-fs
answers the bucket check. Prints one line per figure. SCALE_BIN measures
another binary (an A/B against an older build).
"""
import os, re, resource, shutil, subprocess, sys, tempfile, time

ROWS = int(os.environ.get("ROWS", "1000000"))
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.environ.get("SCALE_BIN") or os.path.join(root, "target", "release", "batchimg")
work = tempfile.mkdtemp(prefix="batchimg-scale-")
try:
    csv = os.path.join(work, "in.csv")
    with open(csv, "w") as f:
        f.write("url\n")
        for i in range(ROWS):
            f.write(f"https://images.example.com/photos/{i:07d}/original.jpg?w=1000&q=80\n")
    os.makedirs(os.path.join(work, "s3", "scale"))
    s3 = subprocess.Popen(
        [os.path.join(root, ".tools/bin/s3s-fs"), "--host", "127.0.0.1", "--port", "0",
         "--access-key", "k", "--secret-key", "s", os.path.join(work, "s3")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"))
    endpoint = None
    for line in s3.stdout:
        m = re.search(r"http://127\.0\.0\.1:\d+", line)
        if m:
            endpoint = m.group(0)
            break
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", S3_BUCKET="scale",
               AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_EC2_METADATA_DISABLED="true")
    state = os.path.join(work, "state")
    start = time.monotonic()
    subprocess.run([binary, "-q", "run", "--input", csv, "--output", os.path.join(work, "out.csv"),
                    "--state-dir", state, "--dry-run"], env=env, check=True)
    ingest = time.monotonic() - start
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    start = time.monotonic()
    status = subprocess.run([binary, "status", "--state-dir", state, "--json"], env=env,
                            check=True, capture_output=True, text=True)
    status_s = time.monotonic() - start
    journal_mb = os.path.getsize(os.path.join(state, "journal.redb")) / 1e6
    pending = re.search(r'"pending": (\d+)', status.stdout).group(1)
    # The same rows as a Parquet export, by an independent writer.
    parquet = os.path.join(work, "export.parquet")
    subprocess.run([os.path.join(root, ".tools/warehouse/bin/python"), "-c",
                    "import pyarrow as pa, pyarrow.parquet as pq, sys\n"
                    "n = int(sys.argv[2])\n"
                    "ids = pa.array(range(n), pa.int64())\n"
                    "urls = [f'https://images.example.com/photos/{i:07d}/original.jpg?w=1000&q=80' for i in range(n)]\n"
                    "caps = [f'photo {i}, \"quoted\", with commas' for i in range(n)]\n"
                    "pq.write_table(pa.table({'id': ids, 'url': urls, 'caption': caps}), sys.argv[1])\n",
                    parquet, str(ROWS)], check=True)
    pstate = os.path.join(work, "pstate")
    # Peak RSS from the child's own wait4, in a fresh process so the earlier
    # children's peaks do not mask it.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import resource, subprocess, sys, time\n"
         "t = time.monotonic()\n"
         "subprocess.run(sys.argv[1:], check=True)\n"
         "print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
         binary, "-q", "run", "--input", parquet, "--output", os.path.join(work, "out.parquet"),
         "--keep-columns", "--state-dir", pstate, "--dry-run"],
        env=env, check=True, capture_output=True, text=True)
    p_ingest, p_rss = probe.stdout.split()
    p_ingest, p_rss_mb = float(p_ingest), int(p_rss) / 1024
    s3.kill()
    print(f"rows                 {ROWS}")
    print(f"ingest (run --dry-run) {ingest:.1f} s  (target <= 30 s)")
    print(f"status               {status_s:.2f} s  (target <= 2 s), pending = {pending}")
    print(f"peak RSS             {rss_mb:.0f} MB  (target <= 300 MB; largest of the two processes)")
    print(f"journal size         {journal_mb:.0f} MB")
    print(f"parquet ingest       {p_ingest:.1f} s  (target <= 4 s; --keep-columns, id INT64 + caption)")
    print(f"parquet peak RSS     {p_rss_mb:.0f} MB  (target <= 200 MB)")
finally:
    shutil.rmtree(work, ignore_errors=True)
