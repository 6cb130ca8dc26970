"""record --segment: a series of complete profiles, each valid alone (speedscope loaded by the
harness's validator, pprof read by Go's own `go tool pprof`), named after their start times, one
per SECS of the fixture's run, together holding the fixture's own split; completed segments
survive a SIGKILL of aprof; bad --segment values and combinations get one line and exit 2."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CPU_SPLIT = os.path.join(h.FIXTURES, "cpu_split.py")
STAMP = re.compile(r"-(\d{8}T\d{6}Z)\.")


def segments(directory, ext):
    names = sorted(n for n in os.listdir(directory) if n.endswith(ext) and STAMP.search(n))
    return [os.path.join(directory, n) for n in names]


def stamp_time(path):
    m = STAMP.search(os.path.basename(path))
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()


@h.once
@h.smoke
def test_segments_split(t):
    outdir = t.path("segs")
    os.mkdir(outdir)
    split = t.path("split.json")
    ratio = round(t.rng.uniform(0.25, 0.75), 2)
    began = time.time()
    res = t.aprof("record", "--segment", 1, "-o", os.path.join(outdir, "out.json"), "--rate", 1000,
                  "--", t.py, CPU_SPLIT, "--duration", 3.5, "--ratio", ratio, "--out", split,
                  timeout=60)
    ended = time.time()
    t.require_rc(res, 0, "record --segment 1")
    with open(split) as f:
        truth = json.load(f)
    files = segments(outdir, ".json")
    # The fixture runs 3.5 s plus its start-up: four or five segments of 1 s, the last partial.
    t.require(4 <= len(files) <= 5, "segments %r" % [os.path.basename(f) for f in files])
    t.eq(sorted(os.listdir(outdir)), [os.path.basename(f) for f in files], "files in the directory")
    t.check(re.search(r"wrote %d segments" % len(files), res.stderr), "summary:\n%s"
            % h.short(res.stderr))
    times = [stamp_time(f) for f in files]
    t.check(began - 1 <= times[0] <= began + 3 and times[-1] <= ended,
            "segment times %r outside the run [%.0f, %.0f]" % (times, began, ended))
    for a, b in zip(times, times[1:]):
        t.check(0 <= b - a <= 2, "segments %.0f and %.0f are not 1 s apart" % (a, b))
    a_s = b_s = 0.0
    n = 0
    for i, f in enumerate(files):
        doc = h.load_speedscope(t, f)
        main = h.merged_profile(doc, truth["threads"]["main"])
        t.require(main, "%s has no main thread profile" % os.path.basename(f))
        secs = h.profile_seconds(main)
        if 0 < i < len(files) - 1:  # whole segments: the first starts with the interpreter
            t.near(secs, 1.0, 0.1, "seconds of the main thread in %s" % os.path.basename(f))
        a_s += h.weight_with(doc, main, "spin_a")
        b_s += h.weight_with(doc, main, "spin_b")
        n += h.split_samples(doc, main)
    t.require(a_s + b_s > 0, "no spin_a/spin_b in any segment")
    t.near(a_s / (a_s + b_s), truth["a"], h.split_tolerance(truth["a"], n),
           "spin_a share over all segments (fixture measured %.3f)" % truth["a"])


@h.once
def test_segments_survive_sigkill(t):
    go = shutil.which("go")
    t.require(go, "go is not installed (scripts/setup.sh --tests installs golang-go)")
    ready = t.path("ready.json")
    fx = t.start("cpu_split.py", "--duration", 60, "--ready", ready)
    fx.wait_json(ready, timeout=30)
    outdir = t.path("segs")
    os.mkdir(outdir)
    proc = t.aprof_background("record", "--pid", fx.pid, "--segment", 1, "-f", "pprof",
                              "-o", os.path.join(outdir, "p.pb.gz"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(segments(outdir, ".pb.gz")) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # kill it between segment writes or during one
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    files = segments(outdir, ".pb.gz")
    t.require(len(files) >= 2, "only %d segments before SIGKILL" % len(files))
    for f in files:
        res = subprocess.run([go, "tool", "pprof", "-raw", f], capture_output=True, text=True,
                             timeout=120)
        t.check(res.returncode == 0 and "spin_a" in res.stdout,
                "go tool pprof cannot read %s (%d): %s" % (os.path.basename(f), res.returncode,
                                                          h.short(res.stderr)))
        t.check(re.search(r"^Duration: 1\.0", res.stdout, re.M),
                "%s does not cover 1 s" % os.path.basename(f))
    # Anything else is aprof's temporary file of a segment being written (.NAME.XXXX.tmp).
    others = [n for n in os.listdir(outdir) if os.path.join(outdir, n) not in files]
    t.check(all(n.startswith(".") and n.endswith(".tmp") for n in others),
            "files beside the segments: %r" % others)


@h.once
def test_segment_bad_values(t):
    out = t.path("x.json")
    for args, what in ((["--segment", 0], "--segment 0"), (["--segment", "abc"], "--segment abc"),
                       (["--segment", 5, "-o", "-"], "--segment with -o -"),
                       (["--segment", 5, "--folded", t.path("f.txt")], "--segment with --folded")):
        res = t.aprof("record", "--pid", os.getpid(), "-o", out, *args, timeout=30) \
            if "-o" not in args else t.aprof("record", "--pid", os.getpid(), *args, timeout=30)
        h.one_error_line(t, res, 2, what)
    t.check(not os.listdir(t.tmp) or all(not n.startswith("x") for n in os.listdir(t.tmp)),
            "a file was written: %r" % os.listdir(t.tmp))


if __name__ == "__main__":
    h.main()
