#!/usr/bin/env python3
"""Write line-table test cases for the interpreter running this script.

For every code object of a corpus (the interpreter's standard library, loaded from its .pyc
files or compiled, plus synthetic code: long functions, line jumps, lines > 1e6, comprehensions,
async, match, ... and hand-built tables) it records what CPython itself says about the lines:
co_lines() and, via ctypes, PyCode_Addr2Line(). tests/live/test_linetable.c compares
src/cpython/linetable.c against these records. Runs unchanged under CPython 3.10-3.13.

Output format (little-endian), see docs/linetables.md:
  header   "APLTCAS1", u32 major, u32 minor
  record   u8 1, u16 name_len, name (utf-8), i32 co_firstlineno,
           u32 table_len, co_linetable bytes,
           u32 n_triples, n_triples * (i32 start, i32 end, i32 line)   co_lines(); None = INT32_MIN
           u32 n_offsets, n_offsets * i32        expected line of byte offset 2*i (-1: no line)
           u32 n_probes,  n_probes * (i32 byte_offset, i32 line)       PyCode_Addr2Line() results
  trailer  u8 0, u32 number of records

The expected per-offset lines come from co_lines() (the line of the range holding the offset,
-1 for None or no range) for compiled code, and straight from PyCode_Addr2Line() for the
hand-built tables (whose lines may go negative, where co_lines() shows None).

Usage: gen_linetable_cases.py [--out FILE] [--seed N] [--test-stride N]
"""
import argparse
import array
import ast
import ctypes
import importlib.util
import marshal
import os
import random
import struct
import sys
import sysconfig
import warnings

MAGIC = b"APLTCAS1"
NONE_LINE = -(2 ** 31)
CodeType = type(compile("", "", "exec"))

addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int

I32 = struct.Struct("<i")
NEG1 = I32.pack(-1)


class Writer:
    def __init__(self, out, rng):
        self.out = out
        self.rng = rng
        self.records = 0
        out.write(MAGIC + struct.pack("<II", sys.version_info[0], sys.version_info[1]))

    def code(self, name, co, exact_offsets=False):
        """Record one code object. exact_offsets: take every expected line from
        PyCode_Addr2Line (small hand-built tables) instead of from co_lines()."""
        table = co.co_linetable
        triples = list(co.co_lines())
        flat = array.array("i")
        for start, end, line in triples:
            flat.append(start)
            flat.append(end)
            flat.append(NONE_LINE if line is None else line)
        code_len = len(co.co_code)
        if exact_offsets:
            covered = max([end for _, end, _ in triples] + [code_len])
            n = covered // 2 + 3  # a few offsets past the end too
            expected = array.array("i", (addr2line(co, 2 * i) for i in range(n))).tobytes()
            probes = [-2, -4, -1000]
        else:
            n = code_len // 2
            buf = bytearray(NEG1 * n)
            for start, end, line in triples:
                lo = min((start + 1) // 2, n)  # even offsets 2*i with start <= 2*i < end
                hi = min((end + 1) // 2, n)
                if hi > lo:
                    buf[4 * lo:4 * hi] = I32.pack(-1 if line is None else line) * (hi - lo)
            expected = bytes(buf)
            probes = [-2, -4, 0, code_len - 2, code_len, code_len + 2]
            if n:
                probes += [2 * self.rng.randrange(n) for _ in range(3)]
        probe_data = array.array("i")
        for off in probes:
            probe_data.append(off)
            probe_data.append(addr2line(co, off))
        name_b = name.encode("utf-8", "replace")[:300]
        out = self.out
        out.write(struct.pack("<BH", 1, len(name_b)) + name_b)
        out.write(struct.pack("<iI", co.co_firstlineno, len(table)) + table)
        out.write(struct.pack("<I", len(triples)) + flat.tobytes())
        out.write(struct.pack("<I", len(expected) // 4) + expected)
        out.write(struct.pack("<I", len(probes)) + probe_data.tobytes())
        self.records += 1

    def tree(self, name, co):
        """Record co and every code object nested in its constants."""
        stack = [co]
        while stack:
            c = stack.pop()
            self.code("%s:%s:%d" % (name, getattr(c, "co_qualname", c.co_name),
                                    c.co_firstlineno), c)
            stack.extend(k for k in c.co_consts if isinstance(k, CodeType))

    def finish(self):
        self.out.write(struct.pack("<BI", 0, self.records))


# ---------------------------------------------------------------- the standard library corpus

def stdlib_files(test_stride):
    """Sorted .py files of the stdlib; of the test suites only every test_stride-th file."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages"))
        for f in sorted(filenames):
            if f.endswith(".py"):
                files.append(os.path.join(dirpath, f))
    chosen = []
    tests = 0
    for path in files:
        rel = os.path.relpath(path, root)
        if "test" in rel.split(os.sep)[0] or "/tests/" in rel:
            tests += 1
            if tests % test_stride:
                continue
        chosen.append((rel, path))
    return chosen


def load_module_code(path):
    """The module's code object from its cached .pyc, else compiled from source."""
    try:
        with open(importlib.util.cache_from_source(path), "rb") as f:
            data = f.read()
        co = marshal.loads(data[16:])
        if isinstance(co, CodeType):
            return co
    except Exception:
        pass
    try:
        with open(path, "rb") as f:
            return compile(f.read(), path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, OSError):
        return None


# ---------------------------------------------------------------- synthetic source code

SNIPPETS = {
    "multiline": '''
def f(a, b):
    x = (a +
         b *
         a)
    y = [i for i in range(a)
         if i % 2
         for j in range(b)]
    z = {k: v
         for k, v in zip(a, b)}
    s = {q for q in a if q}
    g = (w for w in a
         if w)
    call(x,
         y,

         z, key=lambda q: (q +
                           x))
    return lambda q: (q +
        x)
''',
    "nested": '''
def outer(a):
    def middle(b):
        def inner(c):
            def innermost(d):
                return a + b + c + d
            return innermost
        return inner
    class K:
        def m(self):
            return a
        @property
        def p(self):
            return (a,
                    a)
    return middle, K
''',
    "generators": '''
def gen(n):
    for i in range(n):
        yield i
    yield from range(n)
    x = yield
    return (yield x)

def genexp(xs):
    return sum(x * x for x in xs
               if x)
''',
    "async": '''
import asyncio
async def a(x):
    await asyncio.sleep(0)
    async with x as y:
        async for z in y:
            await z
    r = [q async for q in x]
    s = [await q for q in x]
    return r, s

async def agen():
    yield 1
    await asyncio.sleep(0)
    yield 2
''',
    "try": '''
def t(f):
    try:
        f()
    except ValueError as e:
        return e
    except (TypeError,
            KeyError):
        pass
    else:
        f(1)
    finally:
        f(2)
    try:
        try:
            return f()
        finally:
            f(3)
    except BaseException:
        raise
    with open(f) as g, \\
         open(f) as h:
        return g, h
''',
    "match": '''
def m(x):
    match x:
        case 0 | 1:
            return "small"
        case [a, b, *rest]:
            return a
        case {"k": v, **kw}:
            return v
        case Point(x=0, y=yy) if yy > 2:
            return yy
        case str() as s:
            return s
        case _:
            return None
''',
    "decorated": '''
@deco
@deco2(1,
       2)
def d(x):
    return x

@dataclass
class C:
    a: int = 0
    @staticmethod
    @cache
    def s(): return 1
''',
    "loops": '''
def loops(n):
    i = 0
    while i < n:
        i += 1
        if i == 3:
            continue
        if i == 7: break
    else:
        i = -1
    for j in range(n):
        pass
    else:
        j = 0
    assert i, (
        "message")
    del i
    global G
    G = (k := 5)
    return f"{n!r:>{j}} and {
        n}" if False else f"{n}"
''',
    "oneline": "x = 1; y = 2\nif x: y = 3\nclass E(Exception): pass\n"
               "def one(): return (lambda: (yield))\n",
}


def generated_sources():
    """Bigger synthetic sources, built here rather than written out."""
    out = {}
    # A very long function: many lines, many constants (EXTENDED_ARG), many table entries.
    body = "\n".join("    v%d = f(%d, v%d) if v%d else %d" % (i, i, i - 1, i - 1, i)
                     for i in range(1, 3000))
    out["long_function"] = "def long_function(f):\n    v0 = 0\n" + body + "\n    return v2999\n"
    # One very long line: ranges longer than one table entry can describe.
    out["long_line"] = "def long_line(f):\n    return [" + ", ".join(
        "f(%d)" % i for i in range(3000)) + "]\n"
    # Big gaps between consecutive statements, in the source text itself.
    parts = ["def gaps(f):\n"]
    for gap in (1, 2, 127, 128, 129, 255, 256, 1000, 70000, 3, 300000):
        parts.append("    f(%d)\n" % gap + "\n" * gap)
    parts.append("    return f\n")
    out["gaps"] = "".join(parts)
    return out


def renumbered(tree, mapping):
    """tree (modified in place) with every line number l replaced by mapping(l), spans kept."""
    for node in ast.walk(tree):
        lineno = getattr(node, "lineno", None)
        if lineno is None:
            continue
        end = getattr(node, "end_lineno", None)
        node.lineno = mapping(lineno)
        if end is not None:
            node.end_lineno = node.lineno + (end - lineno)
        if node.lineno < 0 and end is not None:  # 3.11+ accept only empty negative spans
            node.end_lineno = node.lineno
            node.end_col_offset = node.col_offset
    return tree


LINE_MAPPINGS = {
    # Lines counting down: every step is a backward jump.
    "backward": lambda l: 10000000 - 17 * l,
    # Lines > 1e6 with large forward gaps.
    "huge": lambda l: 1000000 + 1000 * l,
    # Pseudo-random lines: huge jumps both ways (below 1e9 from 3.11; 3.10 spends one table entry
    # per 127 lines of a jump, so keep its jumps small enough for sane table sizes).
    "scatter": (lambda l: 1 + (l * 7919 * 104729) % 999999937) if sys.version_info >= (3, 11)
               else (lambda l: 1 + (l * 7919) % 10007),
    # Lines just over the 3.10 one-byte delta limits.
    "steps": lambda l: 1 + l * 128 + (l % 3) * 127,
    # Negative lines, which the compilers turn into ranges without a line.
    "negative": lambda l: -l,
}


def synthetic_sources(w):
    big = generated_sources()
    sources = dict(SNIPPETS)
    sources.update(big)
    for name, src in sorted(sources.items()):
        try:
            tree = ast.parse(src, "<%s>" % name)
        except SyntaxError:  # e.g. the multi-line f-string before 3.12
            continue
        w.tree("<%s>" % name, compile(tree, "<%s>" % name, "exec", dont_inherit=True))
        for mname, mapping in sorted(LINE_MAPPINGS.items()):
            if name in big and mname not in ("backward", "scatter"):
                continue  # compiling those is slow; the small sources cover every mapping
            t = renumbered(ast.parse(src), mapping)
            try:
                co = compile(t, "<%s>" % name, "exec", dont_inherit=True)
            except (ValueError, SyntaxError):  # a compiler that refuses such line numbers
                continue
            w.tree("<%s/%s>" % (name, mname), co)
    # Renumber a few real modules too.
    root = sysconfig.get_paths()["stdlib"]
    for mod in ("argparse.py", "asyncio/tasks.py"):
        path = os.path.join(root, mod)
        try:
            with open(path, "rb") as f:
                src = f.read()
            ast.parse(src, path)
        except (OSError, SyntaxError):
            continue
        for mname in ("backward", "scatter"):
            t = renumbered(ast.parse(src, path), LINE_MAPPINGS[mname])
            w.tree("<%s/%s>" % (mod, mname), compile(t, path, "exec", dont_inherit=True))


# ---------------------------------------------------------------- hand-built tables

def host_code():
    """A code object with a long co_code, to carry hand-built line tables."""
    src = "def host(f):\n" + "".join("    f(%d)\n" % i for i in range(400))
    ns = {}
    exec(compile(src, "<host>", "exec"), ns)
    return ns["host"].__code__


def no_line_tables(w, host):
    """Code without any line information."""
    n_units = len(host.co_code) // 2
    if sys.version_info >= (3, 11):
        # All NO_LOCATION entries (code 15), 8 code units each, then the remainder.
        table = bytes([0xF8 | 7]) * (n_units // 8)
        if n_units % 8:
            table += bytes([0xF8 | (n_units % 8 - 1)])
    else:
        table = bytes([254, 0x80]) * (2 * n_units // 254) + bytes([2 * n_units % 254 or 2, 0x80])
    w.code("<no_location>", host.replace(co_linetable=table), exact_offsets=True)
    w.code("<empty_table>", host.replace(co_linetable=b""), exact_offsets=True)
    for name, co in (("<empty_table:module>", compile("x = 1\n", "<m>", "exec")),):
        w.code(name, co.replace(co_linetable=b""), exact_offsets=True)


def varint(value, rng, chunks=None):
    """value (0 <= value < 2**32) as 6-bit chunks, padded with zero chunks up to chunks. A 6th
    chunk holds bits 30-31 only; junk in its upper bits is dropped by CPython, so add some."""
    out = []
    while True:
        out.append(value & 63)
        value >>= 6
        if not value and (chunks is None or len(out) >= chunks):
            break
    if len(out) == 6:
        out[5] |= rng.choice([0, 4, 8, 60])
    return bytes([b | 64 for b in out[:-1]] + [out[-1]])


def signed_varint(delta, rng):
    u = ((-delta) << 1) | 1 if delta < 0 else delta << 1
    chunks = rng.choice([None, None, None, 2, 3, 6]) if u < 2 ** 30 else 6
    return varint(u, rng, chunks)


def random_table_311(rng, firstlineno, allow_negative):
    line = firstlineno
    out = bytearray()
    for _ in range(rng.randrange(1, 300)):
        length = rng.randrange(8)
        code = rng.choice([0, 1, 5, 9, 10, 11, 12, 13, 13, 14, 14, 15])
        out.append(0x80 | code << 3 | length)
        lo = -line - 3 if allow_negative else -line
        if code <= 9:
            out.append(rng.randrange(128))
        elif code <= 12:
            line += code - 10
            out += bytes([rng.randrange(128), rng.randrange(128)])
        elif code in (13, 14):
            delta = rng.choice([0, 1, -1, 2, 63, -64, 1000, -1000,
                                rng.randrange(-(2 ** 20), 2 ** 20),
                                rng.randrange(-(2 ** 29), 2 ** 29)])
            delta = max(lo, min(delta, 999999999 - line))
            line += delta
            out += signed_varint(delta, rng)
            if code == 14:
                for _ in range(3):
                    out += varint(rng.choice([0, 1, 5, 200, 70000]), rng)
        if rng.random() < 0.05:  # junk continuation bytes, skipped by CPython
            out += bytes(rng.randrange(128) for _ in range(rng.randrange(1, 4)))
    if rng.random() < 0.1:  # first byte without the entry-start bit
        out[0] &= 0x7F
    if rng.random() < 0.1:  # a varint cut by the end of the table (the NUL ends it)
        out += bytes([0x80 | 13 << 3 | rng.randrange(8), 0x40 | rng.randrange(64)])
    return bytes(out)


def random_table_310(rng, firstlineno, allow_negative):
    line = firstlineno
    out = bytearray()
    for _ in range(rng.randrange(1, 150)):
        bdelta = rng.choice([0, 0, 1, 2, 2, 2, 4, 4, 6, 8, 254, 255, rng.randrange(256)])
        if rng.random() < 0.15:
            ldelta = -128
        else:
            lo = -127 if allow_negative else max(-127, -line)
            ldelta = rng.randrange(lo, 128)
            line += ldelta
        out += bytes([bdelta, ldelta & 0xFF])
    # CPython reads past the table after a trailing empty entry: end with a non-empty one.
    out += bytes([rng.randrange(1, 256), rng.randrange(0, 128)])
    if rng.random() < 0.2:  # odd length: the last line delta is the bytes object's NUL
        out.append(rng.randrange(1, 256))
    return bytes(out)


def random_tables(w, host, rng, count):
    make = random_table_311 if sys.version_info >= (3, 11) else random_table_310
    if sys.version_info >= (3, 11):
        # A first byte without the entry-start bit, with every code: CPython still decodes it
        # as an entry, but never as "no location".
        for code in range(16):
            table = bytes([code << 3 | 2, 0x45, 0x12, 0x03]) + make(rng, 10, False)
            w.code("<first_byte:%d>" % code, host.replace(co_linetable=table,
                                                          co_firstlineno=10),
                   exact_offsets=True)
    for i in range(count):
        first = rng.choice([1, 1, 7, 1000, rng.randrange(1, 10 ** 6), 10 ** 8])
        allow_negative = i % 10 == 9
        if allow_negative:
            first = rng.randrange(0, 50)
        table = make(rng, first, allow_negative)
        co = host.replace(co_linetable=table, co_firstlineno=first)
        w.code("<random_table:%d>" % i, co, exact_offsets=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output file (default: stdout)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--test-stride", type=int, default=4,
                    help="take only every N-th file of the stdlib test suites")
    ap.add_argument("--random-tables", type=int, default=150)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    sys.setrecursionlimit(10000)
    rng = random.Random(args.seed)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer
    w = Writer(out, rng)
    host = host_code()
    no_line_tables(w, host)
    random_tables(w, host, rng, args.random_tables)
    synthetic_sources(w)
    for rel, path in stdlib_files(max(1, args.test_stride)):
        co = load_module_code(path)
        if co is not None:
            w.tree(rel, co)
    w.finish()
    out.flush()
    if args.out:
        out.close()


if __name__ == "__main__":
    main()
