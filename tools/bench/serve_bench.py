#!/usr/bin/env python3
"""Benchmark `safesd serve` on the bundled model (not a test; run it on a quiet machine).

  tools/bench/serve_bench.py [--bin build/safesd] [--steps 20] [--requests 16] [--rss-requests 1000]

Prints: the CLI's time per image (`safesd generate`, a process per image, model loading
included); requests/s and p50/p99 latency at 1, 2, 4, 8 concurrent clients; the server
overhead per request (client latency at 1 client minus the worker's mean generation time from
/metrics: HTTP, JSON, PNG, base64 and the queue hand-off); peak RSS; and RSS every 100
requests over --rss-requests one-step requests (flat = no leak). Loopback only; the server
is started with --port 0 and stopped with SIGTERM.
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../build/safesd"))
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--requests", type=int, default=16, help="requests per concurrency level")
ap.add_argument("--rss-requests", type=int, default=1000)
ap.add_argument("--cli-runs", type=int, default=5)
a = ap.parse_args()
tmp = tempfile.mkdtemp(prefix="safesd-bench-")
PROMPT = "cat face, noto emoji"

# the CLI, one process per image
times = []
for i in range(a.cli_runs):
    t0 = time.time()
    subprocess.run([a.bin, "generate", "-q", "-p", PROMPT, "--steps", str(a.steps), "-s", str(i),
                    "-o", os.path.join(tmp, "cli.png")], check=True, stdout=subprocess.DEVNULL)
    times.append(time.time() - t0)
cli = statistics.median(times)

port_file = os.path.join(tmp, "port")
srv = subprocess.Popen([a.bin, "serve", "-q", "--port", "0", "--port-file", port_file, "--access-log", "off",
                        "--queue", "64", "--max-images", "64"])
try:
    t_end = time.time() + 120
    while not (os.path.exists(port_file) and os.path.getsize(port_file)):
        if srv.poll() is not None or time.time() > t_end:
            sys.exit("the server did not start")
        time.sleep(0.05)
    port = int(open(port_file).read())

    def post(body):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request("POST", "/sdapi/v1/txt2img", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    def metric(name):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/metrics")
        t = c.getresponse().read().decode()
        c.close()
        m = re.search(r"^%s (\S+)$" % re.escape(name), t, re.M)
        return float(m.group(1)) if m else 0.0

    post({"prompt": PROMPT, "steps": a.steps, "seed": 0})  # warm-up
    print("safesd serve benchmark: bundled model, %d steps, %d requests per level" % (a.steps, a.requests))
    print("CLI (`safesd generate`, one process per image, model load included): %.3f s per image (median of %d)"
          % (cli, a.cli_runs))
    print("%8s %10s %10s %10s %10s" % ("clients", "req/s", "p50 ms", "p99 ms", "errors"))
    overhead = None
    for n in [1, 2, 4, 8]:
        lat, bad = [], []
        lock = threading.Lock()
        g0, j0 = metric("safesd_generation_seconds_total"), metric("safesd_jobs_total")

        def client(k):
            for i in range(k, a.requests, n):
                t0 = time.time()
                st = post({"prompt": PROMPT, "steps": a.steps, "seed": i})
                with lock:
                    (lat if st == 200 else bad).append(time.time() - t0)
        t0 = time.time()
        ts = [threading.Thread(target=client, args=(k,)) for k in range(n)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        wall = time.time() - t0
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3
        print("%8d %10.2f %10.1f %10.1f %10d" % (n, len(lat) / wall, p(0.5), p(0.99), len(bad)))
        if n == 1:
            gen = (metric("safesd_generation_seconds_total") - g0) / max(1, metric("safesd_jobs_total") - j0)
            overhead = (statistics.mean(lat) - gen) * 1e3
            print("         worker time per job %.1f ms; server overhead per request %.2f ms (target <= 5 ms)"
                  % (gen * 1e3, overhead))
    print("RSS over %d one-step requests (MiB, every 100):" % a.rss_requests)
    samples = []
    for i in range(a.rss_requests):
        post({"prompt": PROMPT, "steps": 1, "seed": i})
        if i % 100 == 0 or i == a.rss_requests - 1:
            samples.append(metric("process_resident_memory_bytes") / 2**20)
    print("  " + " ".join("%.1f" % v for v in samples))
    print("  first %.1f, last %.1f, growth %.1f MiB" % (samples[0], samples[-1], samples[-1] - samples[0]))
    hwm = re.search(r"VmHWM:\s+(\d+)", open("/proc/%d/status" % srv.pid).read())
    print("peak RSS of the server: %.1f MiB" % (int(hwm.group(1)) / 1024 if hwm else float("nan")))
finally:
    srv.send_signal(signal.SIGTERM)
    srv.wait(60)
