"""Installing aprof on a server: `cmake --install` puts the binary and the man page (one section
per command, rendered by man-db's own `man`); the .deb CPack builds depends only on Debian's
shared libraries (as dpkg-shlibdeps reads them from the binary), installs with dpkg, runs from
/usr/bin against a fixture (its own pid and thread ids as the truth), and removes cleanly."""
import glob
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BUILD = os.environ.get("APROF_BINARY_DIR") or os.path.join(h.SOURCE_DIR, "build")
ALLOWED_DEPS = {"libc6", "libdw1", "libelf1", "libunwind8", "libncursesw6", "libtinfo6",
                "zlib1g"}
REQUIRED_DEPS = {"libdw1", "libelf1", "libunwind8", "libncursesw6"}


def run(t, argv, what, timeout=120, env=None):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    t.require(res.returncode == 0, "%s failed (%d):\n%s%s" % (what, res.returncode,
                                                              h.short(res.stdout),
                                                              h.short(res.stderr)))
    return res.stdout


def dump_matches_fixture(t, aprof):
    """aprof dump of cpu_split: its pid and both thread ids, spin_a or spin_b on the stack."""
    ready = t.path("ready.json")
    fx = t.start("cpu_split.py", "--duration", 30, "--ready", ready, "--sleeper")
    truth = fx.wait_json(ready, timeout=30)
    out = run(t, [aprof, "dump", "--pid", str(truth["pid"]), "--json"], "%s dump" % aprof)
    doc = json.loads(out)
    tids = {th.get("tid") for th in doc.get("threads", [])}
    t.check({truth["threads"]["main"], truth["threads"]["sleeper"]} <= tids,
            "%s dump: threads %r, the fixture has %r" % (aprof, tids, truth["threads"]))
    t.check(re.search(r'"spin_[ab]"', out) and "sleeper_idle" in out,
            "%s dump lacks the fixture's functions:\n%s" % (aprof, h.short(out)))


@h.once
def test_cmake_install_and_man_page(t):
    prefix = t.path("prefix")
    run(t, ["cmake", "--install", BUILD, "--prefix", prefix], "cmake --install")
    aprof = os.path.join(prefix, "bin", "aprof")
    page = os.path.join(prefix, "share", "man", "man1", "aprof.1.gz")
    t.require(os.access(aprof, os.X_OK), "no %s" % aprof)
    t.require(os.path.exists(page), "no %s" % page)
    version = run(t, [aprof, "--version"], "aprof --version").strip()
    # man-db finds the page on the prefix's MANPATH and renders it.
    env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man"), MANWIDTH="100",
               MAN_KEEP_FORMATTING="0", PAGER="cat")
    t.eq(run(t, ["man", "-w", "aprof"], "man -w aprof", env=env).strip(), page, "man -w aprof")
    text = run(t, ["man", "aprof"], "man aprof", env=env)
    text = re.sub(r".\x08", "", text)
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT"):
        t.check(re.search(r"^%s$" % heading, text, re.M), "man page lacks %s" % heading)
    for cmd in ("record", "dump", "attach", "diff"):
        t.check(re.search(r"^   aprof %s$" % cmd, text, re.M), "no section for aprof %s" % cmd)
    # Every option of every command's --help is in the man page.
    for cmd in ("record", "dump", "attach", "diff"):
        helptext = run(t, [aprof, cmd, "--help"], "aprof %s --help" % cmd)
        for opt in re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", helptext, re.M):
            if opt != "--help":
                t.check(opt in text, "man page lacks %s of aprof %s" % (opt, cmd))
    t.check(version.split()[-1] in text, "man page header lacks the version %r" % version)
    dump_matches_fixture(t, aprof)


@h.once
def test_deb_package(t):
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "aprof"],
                               capture_output=True, text=True).stdout
    t.require("install ok installed" not in installed,
              "a package named aprof is already installed on this machine: not replacing it")
    pkg = t.path("package")
    run(t, ["cpack", "-G", "DEB", "-B", pkg, "--config", os.path.join(BUILD, "CPackConfig.cmake")],
        "cpack -G DEB")
    debs = glob.glob(os.path.join(pkg, "aprof_*.deb"))
    t.require(len(debs) == 1, "cpack made %r" % debs)
    deb = debs[0]
    depends = run(t, ["dpkg-deb", "-f", deb, "Depends"], "dpkg-deb -f Depends").strip()
    names = {re.match(r"\s*([\w.+-]+)", alt).group(1)
             for dep in depends.split(",") for alt in dep.split("|")}
    t.check(names <= ALLOWED_DEPS, "dependencies beyond Debian's shared libraries: %s"
            % sorted(names - ALLOWED_DEPS))
    t.check(REQUIRED_DEPS <= names, "Depends %r lacks %s" % (depends, sorted(REQUIRED_DEPS - names)))
    contents = run(t, ["dpkg-deb", "-c", deb], "dpkg-deb -c")
    for path in ("./usr/bin/aprof", "./usr/share/man/man1/aprof.1.gz"):
        t.check(path in contents, "the package lacks %s" % path)
    run(t, ["dpkg", "-i", deb], "dpkg -i")
    try:
        t.eq(run(t, ["man", "-w", "aprof"], "man -w aprof").strip(),
             "/usr/share/man/man1/aprof.1.gz", "installed man page")
        run(t, ["/usr/bin/aprof", "--version"], "/usr/bin/aprof --version")
        dump_matches_fixture(t, "/usr/bin/aprof")
    finally:
        run(t, ["dpkg", "-r", "aprof"], "dpkg -r aprof")
    t.check(not os.path.exists("/usr/bin/aprof"), "/usr/bin/aprof left after dpkg -r")


if __name__ == "__main__":
    h.main()
