"""Checks of `safesd serve` with Python's standard library (driven by test_serve.sh and
test_serve_load.sh; docs/server.md). Every server runs on 127.0.0.1 with --port 0 (the port
it got is read from --port-file), under `timeout`, and is killed on exit.

  serve_check.py SAFESD_BIN TMPDIR routes|shutdown|load
"""
import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

BIN, TMP, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(TMP, exist_ok=True)
KEY = "test-key-123"
fails = 0
passes = 0
servers = []


def ok(cond, what):
    global fails, passes
    if cond:
        passes += 1
    else:
        fails += 1
        print("FAIL:", what, flush=True)
    return cond


def die_with_parent():
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Server:
    def __init__(self, name, *args, key=KEY):
        self.name = name
        self.portfile = os.path.join(TMP, name + ".port")
        self.log = os.path.join(TMP, name + ".log")
        self.key = key
        if os.path.exists(self.portfile):
            os.unlink(self.portfile)
        cmd = [BIN, "serve", "--port", "0", "--port-file", self.portfile,
               "--access-log", self.log, "-q"] + (["--api-key", key] if key else []) + list(args)
        self.stderr = open(os.path.join(TMP, name + ".stderr"), "w")
        # the server dies with this script (PR_SET_PDEATHSIG), whatever ends it
        self.proc = subprocess.Popen(cmd, stderr=self.stderr, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent)
        servers.append(self)
        t_end = time.time() + 60
        while time.time() < t_end and not (os.path.exists(self.portfile) and os.path.getsize(self.portfile)):
            if self.proc.poll() is not None:
                raise SystemExit("FAIL: server %s exited at start (%s)" % (name, open(self.stderr.name).read()))
            time.sleep(0.05)
        self.port = int(open(self.portfile).read())

    def req(self, method, path, body=None, headers=None, auth=True, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if auth and self.key:
            h["Authorization"] = "Bearer " + self.key
        h.update(headers or {})
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, dict(r.getheaders()), out

    def post(self, path, obj, **kw):
        st, h, b = self.req("POST", path, obj, **kw)
        try:
            j = json.loads(b)
        except ValueError:
            j = None
        return st, h, j

    def metric(self, name):
        st, _, b = self.req("GET", "/metrics")
        m = re.search(r"^%s (\S+)$" % re.escape(name), b.decode(), re.M)
        return float(m.group(1)) if m else None

    def stop(self, sig=signal.SIGTERM, wait=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def cleanup():
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def start_request(srv, path, obj):
    """Send a request on a raw socket and return the socket (the answer is read later, or
    the socket closed to walk away)."""
    data = json.dumps(obj).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (path.encode(), KEY.encode(), len(data)) + data)
    return s


def read_response(s):
    """A whole HTTP/1.1 response (status, body) from a raw socket, or None if it was torn."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ")[1])
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    if not m:
        return None
    n = int(m.group(1))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            return None
        body += chunk
    return status, body[:n]


def cli_png(name, prompt, *args):
    out = os.path.join(TMP, name + ".png")
    subprocess.run([BIN, "generate", "-q", "-p", prompt, "-o", out] + list(args), check=True, stdout=subprocess.DEVNULL)
    return open(out, "rb").read()


def wait_idle(srv, t=30):
    t_end = time.time() + t
    while time.time() < t_end:
        if srv.metric("safesd_jobs_running") == 0 and srv.metric("safesd_queue_depth") == 0:
            return True
        time.sleep(0.1)
    return False


# ---- routes: every route, valid and invalid; per-request safety; the floor; 429; cancel ----

def routes():
    s = Server("routes", "--queue", "1", "--max-steps", "1000", "--min-safety", "low", "--timeout", "60",
               "--image-check", "clip-zeroshot")
    A, O = "/sdapi/v1/txt2img", "/v1/images/generations"
    # GET routes
    st, _, b = s.req("GET", "/health", auth=False)
    ok(st == 200 and json.loads(b)["status"] == "ok", "GET /health %d %s" % (st, b[:200]))
    st, _, b = s.req("GET", "/sdapi/v1/samplers")
    names = [x["name"] for x in json.loads(b)] if st == 200 else []
    ok({"DDIM", "PLMS", "Euler", "Euler a", "DPM++ 2M"} <= set(names), "samplers: %s" % names)
    st, _, b = s.req("GET", "/sdapi/v1/sd-models")
    ok(st == 200 and json.loads(b)[0]["model_name"] == "safesd-emoji", "sd-models: %s" % b[:200])
    st, _, b = s.req("GET", "/sdapi/v1/options")
    ok(st == 200 and json.loads(b)["safesd_min_safety"] == "low", "options: %s" % b[:200])
    st, _, b = s.req("GET", "/sdapi/v1/progress")
    ok(st == 200 and json.loads(b)["state"]["job_count"] == 0, "progress idle: %s" % b[:200])
    st, h, b = s.req("GET", "/metrics")
    ok(st == 200 and "safesd_queue_capacity 1" in b.decode() and h.get("Content-Type", "").startswith("text/plain"),
       "metrics")
    # method, route, auth, size errors
    st, h, _ = s.req("GET", A)
    ok(st == 405 and h.get("Allow") == "POST", "GET txt2img: %d %s" % (st, h))
    ok(s.req("POST", "/health")[0] == 405, "POST /health")
    ok(s.req("GET", "/nope")[0] == 404, "unknown route")
    st, h, _ = s.req("GET", "/sdapi/v1/samplers", auth=False)
    ok(st == 401 and h.get("WWW-Authenticate") == "Bearer", "no key: %d" % st)
    ok(s.req("GET", "/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401, "wrong key")
    st, _, b = s.req("POST", O, {"prompt": "x"}, auth=False)
    ok(st == 401 and json.loads(b)["error"]["type"] == "authentication_error", "OpenAI 401 shape: %s" % b)
    # a body over --max-body is refused from its Content-Length, before it is read
    sk = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    sk.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n{" %
               (A.encode(), KEY.encode(), 2 << 20))
    r = read_response(sk)
    sk.close()
    ok(r is not None and r[0] == 413 and b"max-body" in r[1], "body over --max-body: %s" % str(r))
    # strict validation: 400 naming the field
    bad = [
        (A, b"{not json", None), (A, b"[1, 2]", None), (A, {"prompt": "x", "bogus": 1}, "bogus"),
        (A, {"prompt": "x", "steps": "20"}, "steps"), (A, {"prompt": "x", "steps": 0}, "steps"),
        (A, {"prompt": "x", "steps": 1001}, "steps"), (A, {"prompt": "x", "width": 60}, "width"),
        (A, {"prompt": "x", "width": 4096}, "width"), (A, {"prompt": 5}, "prompt"),
        (A, {"prompt": "x", "cfg_scale": -1}, "cfg_scale"), (A, {"prompt": "x", "sampler_name": "Heun"}, "sampler_name"),
        (A, {"prompt": "x", "batch_size": 8, "n_iter": 8}, "n_iter"), (A, {"prompt": "x", "enable_hr": True}, "enable_hr"),
        (A, {"prompt": "x", "seed": -2}, "seed"), (A, {"prompt": "x", "safety": "high"}, "safety"),
        (A, {"prompt": "x", "safety": {"level": "extreme"}}, "safety.level"),
        (A, {"prompt": "x", "safety": {"lambda": 1}}, "safety"),
        (A, {"prompt": "x", "safety": {"weight": 2}}, "safety.weight"),
        (O, {"n": 1}, "prompt"), (O, {"prompt": ""}, "prompt"), (O, {"prompt": "x", "n": 0}, "n"),
        (O, {"prompt": "x", "size": "big"}, "size"), (O, {"prompt": "x", "size": "100x100"}, "size"),
        (O, {"prompt": "x", "response_format": "url"}, "response_format"), (O, {"prompt": "x", "foo": 1}, "foo"),
        (A, {"prompt": "x", "prompt_syntax": "sd"}, "prompt_syntax"), (O, {"prompt": "x", "prompt_syntax": 1}, "prompt_syntax"),
    ]
    jobs0 = s.metric("safesd_jobs_total")
    for path, body, field in bad:
        st, _, b = s.req("POST", path, body)
        try:
            j = json.loads(b)
        except ValueError:
            j = {}
        if path == O:
            e = j.get("error", {})
            good = st == 400 and {"message", "type", "param", "code"} <= set(e) and e.get("param") == field
            good = good and e.get("type") == "invalid_request_error"
        else:
            good = st == 400 and "detail" in j and j.get("field") == field
        ok(good, "bad request %s %s: %d %s" % (path, str(body)[:60], st, b[:200]))
    # request text quoted in messages stays one printable line of UTF-8: a long unknown name of
    # two-byte characters, cut by the message limits, is a 400 (a character cut in half made
    # the error body unencodable: a 500), and control characters are shown as '?'
    for path in (A, O):
        for key, shown in (("\u00e9" * 60, "\u00e9" * 8), ("a\x1b[31m\nX", "a?[31m?X")):
            st, _, b = s.req("POST", path, {"prompt": "x", key: 1})
            try:
                j = json.loads(b)
            except ValueError:
                j = {}
            msg = j.get("error", {}).get("message", "") if path == O else j.get("detail", "")
            fld = j.get("error", {}).get("param", "") if path == O else j.get("field", "")
            clean = all(ord(c) >= 0x20 and not 0x7f <= ord(c) <= 0x9f for c in msg + fld)
            ok(st == 400 and clean and shown in msg and fld.startswith(shown),
               "unknown field %r on %s: %d %s" % (key[:12], path, st, b[:160]))
    # the floor (--min-safety low): off, a smaller weight, a longer context phase are refused
    for sf, field in [({"level": "off"}, "safety.level"), ({"weight": 0.1}, "safety.weight"),
                      ({"context_steps": 0.9}, "safety.context_steps"), ({"level": "low", "weight": 0.2}, "safety.weight")]:
        st, _, j = s.post(A, {"prompt": "dagger, noto emoji", "steps": 4, "seed": 1, "safety": sf})
        ok(st == 400 and j.get("field") == field and "min-safety" in j.get("detail", ""),
           "floor %s: %d %s" % (sf, st, j))
        st, _, j = s.post(O, {"prompt": "dagger, noto emoji", "steps": 4, "seed": 1, "safety": sf})
        ok(st == 400 and j["error"]["param"] == field, "floor on the OpenAI route %s: %d %s" % (sf, st, j))
    ok(s.metric("safesd_jobs_total") == jobs0, "a refused request reached the worker")

    # per-request safety vs the CLI's bytes
    common = ["-s", "7", "--steps", "8", "--cfg-scale", "7.5", "--image-check", "clip-zeroshot"]
    def a1111_png(prompt, level, **extra):
        body = {"prompt": prompt, "seed": 7, "steps": 8, "cfg_scale": 7.5, "safety": {"level": level}}
        body.update(extra)
        st, _, j = s.post(A, body)
        ok(st == 200 and len(j["images"]) == 1, "txt2img %s %s: %d %s" % (prompt, level, st, str(j)[:300]))
        return base64.b64decode(j["images"][0]), j
    cat_off = cli_png("cat_off", "cat face, noto emoji", "--safety", "off", *common)
    for level in ["low", "high", "max"]:
        png, j = a1111_png("cat face, noto emoji", level)
        ok(png == cat_off, "unflagged prompt at %s: PNG bytes differ from the CLI's at --safety off" % level)
        ok(j["safety"]["detectors"]["flagged"] is False and j["safety"]["altered"] is False, "unflagged report")
        ok(j["nsfw_content_detected"] == [False] or j["nsfw_content_detected"] == [True], "verdicts: %s" % j)
    # prompt_syntax: a1111 by default (the weights are used), plain as the CLI's
    w_cli = {sx: cli_png("w_" + sx, "(cat face:1.4), noto emoji", "--safety", "off", "--prompt-syntax", sx, *common)
             for sx in ["a1111", "plain"]}
    ok(w_cli["a1111"] != w_cli["plain"], "the CLI's weighted prompt is the same image in both syntaxes")
    for sx in [None, "a1111", "plain"]:
        extra = {"prompt_syntax": sx} if sx else {}
        png, _ = a1111_png("(cat face:1.4), noto emoji", "low", **extra)
        ok(png == w_cli[sx or "a1111"], "prompt_syntax %s: PNG bytes differ from the CLI's" % sx)
    st, _, j = s.post(O, {"prompt": "cat face, noto emoji", "seed": 7, "steps": 8, "safety": {"level": "high"}})
    ok(st == 200 and base64.b64decode(j["data"][0]["b64_json"]) == cat_off, "OpenAI route: bytes differ from the CLI's")
    ok(j.get("seed") == 7 and j["nsfw_content_detected"] is not None, "OpenAI extension fields: %s" % str(j)[:200])
    dag = {lv: cli_png("dag_" + lv, "dagger, noto emoji", "--safety", lv, *common) for lv in ["off", "low", "high"]}
    ok(dag["off"] != dag["high"] and dag["low"] != dag["high"], "the CLI's flagged images do not change with the level")
    for lv in ["low", "high"]:
        png, j = a1111_png("dagger, noto emoji", lv)
        ok(png == dag[lv], "flagged prompt at %s: PNG bytes differ from the CLI's" % lv)
        ok(j["safety"]["detectors"]["flagged"] is True and j["safety"]["dual"]["ran"] is True, "flagged report: %s" %
           str(j["safety"])[:300])
        info = json.loads(j["info"])
        ok(info["infotexts"][0].startswith("dagger, noto emoji\n") and "Safety: \"%s, flagged" % lv in info["infotexts"][0],
           "infotext: %s" % info["infotexts"])
    ok(s.metric("safesd_prompts_flagged_total") == 2, "flagged counter")
    # batch_size x n_iter, seeds, send_images
    st, _, j = s.post(A, {"prompt": "red apple, noto emoji", "seed": 100, "steps": 4, "batch_size": 2, "n_iter": 2})
    info = json.loads(j["info"]) if st == 200 else {}
    ok(st == 200 and len(j["images"]) == 4 and info.get("all_seeds") == [100, 100, 102, 102],
       "batch x n_iter: %d %s" % (st, info.get("all_seeds")))
    ok(st == 200 and len(j["nsfw_content_detected"]) == 4 and len(j["safety"]["image_check"]["images"]) == 4,
       "verdicts for 4 images")
    cli4 = cli_png("apple_b2", "red apple, noto emoji", "-s", "102", "--steps", "4", "--cfg-scale", "7", "-b", "2",
                   "--image-check", "clip-zeroshot")
    ok(st == 200 and base64.b64decode(j["images"][2]) == cli4, "n_iter 2's first image differs from the CLI's seed 102")
    st, _, j = s.post(A, {"prompt": "red apple, noto emoji", "steps": 2, "send_images": False, "seed": 1})
    ok(st == 200 and j["images"] == [] and j["parameters"]["send_images"] is False, "send_images false")
    st, _, j = s.post(A, {"prompt": "red apple, noto emoji", "steps": 2, "seed": -1, "restore_faces": False,
                          "styles": [], "sampler_name": None, "override_settings": {}})
    ok(st == 200 and json.loads(j["info"])["seed"] >= 0, "A1111 neutral fields and a random seed: %d" % st)

    # 429 with a full queue, then cancellation when the clients go away
    long = {"prompt": "cat face, noto emoji", "steps": 500, "seed": 1}
    a = start_request(s, A, long)
    t_end = time.time() + 20
    while time.time() < t_end and s.metric("safesd_jobs_running") != 1:
        time.sleep(0.05)
    b = start_request(s, A, long)
    while time.time() < t_end and s.metric("safesd_queue_depth") != 1:
        time.sleep(0.05)
    st, h, j = s.post(A, long)
    ok(st == 429 and int(h.get("Retry-After", "0")) >= 1, "full queue: %d %s" % (st, h))
    st, h, j = s.post(O, {"prompt": "x"})
    ok(st == 429 and j["error"]["type"] == "rate_limit_error", "full queue, OpenAI shape: %d %s" % (st, j))
    for _ in range(100):
        pj = json.loads(s.req("GET", "/sdapi/v1/progress")[2])
        if pj["state"]["sampling_step"] > 0:
            break
        time.sleep(0.1)
    ok(pj["state"]["job_count"] == 2 and 0 < pj["state"]["sampling_step"] <= pj["state"]["sampling_steps"] and
       0 < pj["progress"] < 1, "progress while busy: %s" % pj)
    t0 = time.time()
    b.close()
    a.close()
    gone = lambda: s.metric('safesd_jobs_cancelled_total{reason="client_gone"}')
    while time.time() < t0 + 10 and (gone() or 0) < 2:
        time.sleep(0.05)
    ok(gone() == 2, "cancelled jobs: %s" % gone())
    ok(wait_idle(s, 10), "the worker is still busy after both clients left")
    dt = time.time() - t0
    st, _, j = s.post(A, {"prompt": "cat face, noto emoji", "steps": 2, "seed": 1})
    ok(st == 200, "a request after the cancellations: %d" % st)
    print("cancellation: both jobs stopped and the worker idle %.2f s after the clients left" % dt)
    log = open(s.log).read()
    ok(re.search(r'"POST /sdapi/v1/txt2img" 200 \d+ [\d.]+ms queue=', log) and ' 429 ' in log and ' 499 ' in log,
       "access log: %s" % log[-300:])
    ok(s.stop() == 0, "exit status after SIGTERM")


# ---- SIGTERM mid-request: finish within the grace period, or cancel after it --------------

def shutdown():
    A = "/sdapi/v1/txt2img"
    s = Server("grace", "--queue", "2", "--max-steps", "1000", "--shutdown-grace", "60")
    running = start_request(s, A, {"prompt": "cat face, noto emoji", "steps": 150, "seed": 3})
    t_end = time.time() + 20
    while time.time() < t_end and s.metric("safesd_jobs_running") != 1:
        time.sleep(0.05)
    queued = start_request(s, A, {"prompt": "cat face, noto emoji", "steps": 150, "seed": 4})
    while time.time() < t_end and s.metric("safesd_queue_depth") != 1:
        time.sleep(0.05)
    s.proc.send_signal(signal.SIGTERM)
    r1, r2 = read_response(running), read_response(queued)
    ok(r1 is not None and r1[0] == 200 and len(json.loads(r1[1])["images"]) == 1,
       "the running request did not finish whole: %s" % str(r1 and (r1[0], r1[1][:200])))
    ok(r2 is not None and r2[0] == 503 and "shutting down" in json.loads(r2[1])["detail"],
       "the queued request: %s" % str(r2 and (r2[0], r2[1][:200])))
    ok(s.proc.wait(60) == 0, "exit status after SIGTERM with a request running")
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        ok(False, "still listening after shutdown")
    except OSError:
        ok(True, "")

    s = Server("cut", "--queue", "2", "--max-steps", "1000", "--shutdown-grace", "0.5")
    running = start_request(s, A, {"prompt": "cat face, noto emoji", "steps": 500, "seed": 3})
    t_end = time.time() + 20
    while time.time() < t_end and s.metric("safesd_jobs_running") != 1:
        time.sleep(0.05)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    r = read_response(running)
    ok(r is not None and r[0] == 503 and json.loads(r[1])["error"] == "ServiceUnavailable",
       "after the grace period: %s" % str(r and (r[0], r[1][:200])))
    rc = s.proc.wait(60)
    ok(rc == 0, "exit status after cancelling: %s" % rc)
    ok(time.time() - t0 < 15, "shutdown took %.1f s with a 0.5 s grace" % (time.time() - t0))


# ---- load: concurrent clients, latency percentiles, RSS over time, status codes -----------

def load():
    clients, per_client = int(os.environ.get("LOAD_CLIENTS", "8")), int(os.environ.get("LOAD_REQUESTS", "12"))
    s = Server("load", "--queue", "3", "--timeout", "120")
    A, O = "/sdapi/v1/txt2img", "/v1/images/generations"
    bodies = [(A, {"prompt": "cat face, noto emoji", "steps": 4}), (O, {"prompt": "red apple, noto emoji", "steps": 4}),
              (A, {"prompt": "dagger, noto emoji", "steps": 4, "safety": {"level": "high"}}),
              (A, {"prompt": "x", "steps": "four"}), (O, {"prompt": "x", "size": "9x9"})]
    statuses, lat, rss = {}, [], []
    lock = threading.Lock()
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            v = s.metric("process_resident_memory_bytes")
            if v:
                rss.append((time.time(), v))
            stop.wait(0.2)

    def client(i):
        for k in range(per_client):
            path, body = bodies[(i + k) % len(bodies)]
            t0 = time.time()
            try:
                st = s.req("POST", path, body, timeout=120)[0]
            except OSError as e:
                st = "error: %s" % e
            with lock:
                statuses[st] = statuses.get(st, 0) + 1
                if st == 200:
                    lat.append(time.time() - t0)

    t_start = time.time()
    th = threading.Thread(target=sampler)
    th.start()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    stop.set()
    th.join()
    wall = time.time() - t_start
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")
    print("load: %d clients x %d requests in %.1f s: status %s" % (clients, per_client, wall, statuses))
    print("load: latency of 200s (ms): p50 %.0f  p90 %.0f  p99 %.0f  max %.0f" % (pct(0.5), pct(0.9), pct(0.99), pct(1.0)))
    mib = [v / 2**20 for _, v in rss]
    if mib:
        n = len(mib)
        print("load: RSS (MiB) over %d samples: first %.1f  at 25%% %.1f  at 50%% %.1f  at 75%% %.1f  last %.1f  max %.1f" %
              (n, mib[0], mib[n // 4], mib[n // 2], mib[3 * n // 4], mib[-1], max(mib)))
    ok(sum(statuses.values()) == clients * per_client, "some requests never finished: %s" % statuses)
    ok(set(statuses) <= {200, 400, 429}, "a status besides 200/400/429: %s" % statuses)
    ok(statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0, "no 200 or no 400 under load: %s" % statuses)
    ok(len(mib) >= 3 and max(mib) - mib[len(mib) // 4] < 64, "RSS grew under load: %s" % mib[:: max(1, len(mib) // 10)])
    ok(s.stop() == 0, "exit status")


try:
    {"routes": routes, "shutdown": shutdown, "load": load}[MODE]()
finally:
    cleanup()
print("%d passed, %d failed" % (passes, fails))
sys.exit(1 if fails else 0)
