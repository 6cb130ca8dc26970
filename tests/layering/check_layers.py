#!/usr/bin/env python3
"""Source checks of the layer rules (docs/internals.md#layers), beside the build's own (each
layer's include path holds only the layers below it):

- every #include "..." of a file in src/LAYER/ names a header of LAYER or of a layer it links,
  by bare name (a relative path such as "../cli/cli.h" would slip past the include path);
- no code branches on the CPython version: outside the files that pick a version's table
  (VERSION_FILES), nothing compares a minor version: what differs between versions is data
  in the layout tables (src/cpython/layouts.h, docs/layouts.md);
- the layers below output never print or exit (no printf/fprintf/puts/perror/exit/abort):
  they return a status and the command layer reports it. A line that must (a forked child
  that failed to exec) says why in a comment holding "layer-ok:".

The layers and what each links are read from the top CMakeLists.txt (aprof_layer(...) lines),
the one place they are declared. Prints one line per violation; exit status 1 if any.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SILENT_BELOW = "output"  # layers before this one in data-flow order must not print
# the files that find the version and select its table; nowhere else is a version compared
VERSION_FILES = {"src/cpython/pyruntime.c", "src/cpython/layouts.c", "src/cpython/layout_tables.c",
                 "src/cpython/debug_offsets.c", "src/cpython/asyncio_offsets.c",
                 "src/cpython/layouts.h"}
VERSION_TEST = re.compile(r"\bminor\b\s*(==|!=|<=|>=|<|>)|(==|!=|<=|>=|<|>)\s*[\w>.-]*\bminor\b|"
                          r"\bversion\s*(==|!=|<=|>=|<|>)\s*0x3")
PRINTING = re.compile(r"\b(printf|fprintf|vfprintf|puts|fputs|fputc|putchar|perror|exit|_exit|"
                      r"abort)\s*\(")


def layers(cmake_text):
    """[(name, [linked layer names])] in declaration order."""
    out = []
    for m in re.finditer(r"^aprof_layer\((\w+)([^)]*)\)", cmake_text, re.M):
        deps = re.findall(r"\baprof_(\w+)", m.group(2))
        out.append((m.group(1), deps))
    return out


def reachable(decl):
    links = dict(decl)
    closure = {}
    for name, _ in decl:
        seen, todo = set(), list(links[name])
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo.extend(links.get(d, []))
        closure[name] = seen | {name}
    return closure


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def check(root):
    with open(os.path.join(root, "CMakeLists.txt")) as f:
        decl = layers(f.read())
    if not decl:
        return ["CMakeLists.txt declares no aprof_layer(...)"]
    names = [n for n, _ in decl]
    allowed = reachable(decl)
    owner = {}  # header name -> layer
    for name in names:
        for fn in os.listdir(os.path.join(root, "src", name)):
            if fn.endswith(".h"):
                owner[fn] = name
    silent = set(names[:names.index(SILENT_BELOW)]) if SILENT_BELOW in names else set()
    problems = []
    for name in names:
        folder = os.path.join(root, "src", name)
        for fn in sorted(os.listdir(folder)):
            if not fn.endswith((".c", ".h")):
                continue
            path = os.path.join("src", name, fn)
            with open(os.path.join(folder, fn)) as f:
                text = f.read()
            for no, line in enumerate(text.split("\n"), 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                inc = m.group(1)
                if "/" in inc:
                    problems.append('%s:%d: includes "%s" by path, not by name' % (path, no, inc))
                elif inc not in owner:
                    problems.append('%s:%d: includes "%s", which no layer has' % (path, no, inc))
                elif owner[inc] not in allowed[name]:
                    problems.append('%s:%d: layer %s includes "%s" of layer %s above it or beside '
                                    'it' % (path, no, name, inc, owner[inc]))
            if path not in VERSION_FILES:
                for no, line in enumerate(strip_comments(text).split("\n"), 1):
                    if VERSION_TEST.search(line):
                        problems.append("%s:%d: compares the CPython version: make it a fact of "
                                        "the layout tables (layouts.h)" % (path, no))
            if name in silent:
                raw = text.split("\n")
                for no, line in enumerate(strip_comments(text).split("\n"), 1):
                    m = PRINTING.search(line)
                    if m and "layer-ok:" not in raw[no - 1]:
                        problems.append("%s:%d: layer %s calls %s(): lower layers return a status "
                                        "and never print or exit" % (path, no, name, m.group(1)))
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else ROOT
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        return 1
    print("layers: %s: includes and silence as declared" % root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
