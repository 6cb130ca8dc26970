"""record --push: every segment POSTed to a Pyroscope-style /ingest endpoint, checked by a local
receiver against the API (name with labels, from/until, format=pprof, sampleRate, spyName,
units, aggregationType, a multipart field "profile") and each body read by Go's own
`go tool pprof`; a server that is down or slow never slows sampling (the sample count against
the rate and the fixture's own run time) and costs one warning line."""
import email.parser
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CPU_SPLIT = os.path.join(h.FIXTURES, "cpu_split.py")


class Receiver:
    """A local HTTP server recording every request; `delay` seconds before each answer."""
    def __init__(self, delay=0.0, status=200):
        self.requests, self.delay, self.status = [], delay, status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body, "at": time.time()})
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def profile_field(t, req):
    ctype = req["headers"].get("Content-Type", "")
    t.require(ctype.startswith("multipart/form-data; boundary="), "Content-Type %r" % ctype)
    msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n"
                                                + req["body"])
    parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
             for p in msg.get_payload()}
    t.require("profile" in parts, "no multipart field 'profile' (fields %r)" % list(parts))
    return parts["profile"]


def check_request(t, req, pid, rate):
    url = urllib.parse.urlsplit(req["path"])
    t.eq(url.path, "/ingest", "request path")
    q = dict(urllib.parse.parse_qsl(url.query))
    for key in ("name", "from", "until", "format", "sampleRate", "spyName", "units",
                "aggregationType"):
        t.check(key in q, "query lacks %s: %r" % (key, q))
    m = re.fullmatch(r"svc\{(.*)\}", q.get("name", ""))
    t.require(m, "name %r is not svc{labels}" % q.get("name"))
    labels = dict(kv.split("=", 1) for kv in m.group(1).split(","))
    t.eq(labels.get("pid"), str(pid), "pid label")
    t.eq(labels.get("hostname"), socket.gethostname(), "hostname label")
    t.eq(q.get("format"), "pprof", "format")
    t.eq(q.get("spyName"), "aprof", "spyName")
    t.eq(q.get("sampleRate"), str(rate), "sampleRate")
    frm, until = int(q.get("from", 0)), int(q.get("until", 0))
    t.check(0 < until - frm <= 3 and abs(frm - req["at"]) < 10,
            "from %d until %d, received at %.0f" % (frm, until, req["at"]))
    return frm


def go_raw(t, data, where):
    go = shutil.which("go")
    t.require(go, "go is not installed (scripts/setup.sh --tests installs golang-go)")
    with open(where, "wb") as f:
        f.write(data)
    res = subprocess.run([go, "tool", "pprof", "-raw", where], capture_output=True, text=True,
                         timeout=120)
    t.require(res.returncode == 0, "go tool pprof cannot read a pushed profile: %s"
              % h.short(res.stderr))
    return res.stdout


@h.once
def test_push_every_segment(t):
    rx = Receiver()
    try:
        split = t.path("split.json")
        res = t.aprof("record", "--push", rx.url, "--push-name", "svc", "--segment", 1,
                      "--rate", 500, "--", t.py, CPU_SPLIT, "--duration", 3, "--out", split,
                      timeout=60)
        t.require_rc(res, 0, "record --push")
        with open(split) as f:
            truth = json.load(f)
        t.eq([n for n in os.listdir(t.tmp) if n.endswith(".pb.gz")], [],
             "--push without -o writes no file")
        n = len(rx.requests)
        t.require(4 <= n <= 5, "%d requests for a 3 s run in 1 s segments" % n)
        t.check(re.search(r"pushed %d of %d segments" % (n, n), res.stderr),
                "summary line:\n%s" % h.short(res.stderr))
        froms = []
        seen_a = 0
        for i, req in enumerate(rx.requests):
            froms.append(check_request(t, req, truth["pid"], 500))
            raw = go_raw(t, profile_field(t, req), t.path("seg%d.pb.gz" % i))
            seen_a += "spin_a" in raw
        t.eq(froms, sorted(froms), "segments in time order")
        t.check(seen_a >= n - 1, "spin_a in only %d of %d pushed profiles" % (seen_a, n))
    finally:
        rx.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@h.once
def test_push_server_down_or_slow(t):
    for kind in ("down", "slow"):
        rx = Receiver(delay=4.0) if kind == "slow" else None
        url = rx.url if rx else "http://127.0.0.1:%d" % free_port()
        try:
            split, out = t.path("split-%s.json" % kind), t.path("%s.json" % kind)
            started = time.monotonic()
            res = t.aprof("record", "--push", url, "--segment", 1, "--rate", 500, "-o", out,
                          "--", t.py, CPU_SPLIT, "--duration", 3, "--out", split, timeout=60)
            elapsed = time.monotonic() - started
            t.require_rc(res, 0, "record --push to a %s server (files kept with -o)" % kind)
            with open(split) as f:
                truth = json.load(f)
            m = re.search(r"aprof: (\d+) samples in ([0-9.]+) s", res.stderr)
            t.require(m, "no samples line:\n%s" % h.short(res.stderr))
            samples, secs = int(m.group(1)), float(m.group(2))
            # Sampling went on at the rate asked for (Poisson: 500/s over the fixture's run,
            # five standard deviations of margin, and the sampler's own cost).
            expect = 500 * truth["loop_seconds"]
            t.check(samples >= expect - 5 * expect ** 0.5 - 0.1 * expect,
                    "%s server: %d samples over a %.2f s run at 500 Hz"
                    % (kind, samples, truth["loop_seconds"]))
            # Files of every segment exist; the end waits at most the grace period.
            segs = [n for n in os.listdir(t.tmp) if n.startswith(kind + "-") and n.endswith(".json")]
            t.check(len(segs) >= 4, "%s: segment files %r" % (kind, segs))
            t.check(elapsed < truth["script_seconds"] + 5 + 5, "%s: aprof took %.1f s" % (kind, elapsed))
            if kind == "down":
                warn = [l for l in res.stderr.splitlines() if l.startswith("aprof: cannot push")]
                t.eq(len(warn), 1, "one warning for a server that is down:\n%s" % h.short(res.stderr))
            t.check(re.search(r"pushed \d+ of \d+ segments", res.stderr), "summary line")
        finally:
            if rx:
                rx.close()


@h.once
@h.smoke
def test_push_bad_urls(t):
    for url in ("https://example.com", "ftp://x", "http://", "http://host:99999"):
        res = t.aprof("record", "--pid", os.getpid(), "--push", url, timeout=30)
        h.one_error_line(t, res, 2, "--push %s" % url)


if __name__ == "__main__":
    h.main()
