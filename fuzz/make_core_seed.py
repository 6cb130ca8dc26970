#!/usr/bin/env python3
"""Write a small, valid x86-64 core file (the shape tests/unit/test_core_file.c builds): two
threads, a command, NT_AUXV, an NT_FILE mapping whose first page is in the core, and a page of
anonymous memory. The seed of fuzz/corpus/fuzz_core_file.

    python3 fuzz/make_core_seed.py OUT
"""
import struct
import sys

LIB, DATA = 0x10000, 0x20000


def note(name, ntype, desc):
    n = name.encode() + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def elf_page(build_id):
    page = bytearray(4096)
    page[0:16] = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    struct.pack_into("<HHIQQQIHHHHHH", page, 16, 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    struct.pack_into("<IIQQQQQQ", page, 64, 1, 5, 0, 0, 0, 8192, 8192, 4096)
    struct.pack_into("<IIQQQQQQ", page, 120, 4, 4, 512, 512, 512, 20, 20, 4)
    page[512:532] = struct.pack("<III", 4, 4, 3) + b"GNU\0" + build_id
    return bytes(page)


def main(out):
    notes = b""
    for k, tid in enumerate((100, 101)):
        st = bytearray(336)
        struct.pack_into("<i", st, 32, tid)
        regs = [0] * 27
        regs[16], regs[19], regs[15] = LIB + 0x1100 + k, DATA + 0x800, 232 if k == 0 else 2**64 - 1
        struct.pack_into("<27Q", st, 112, *regs)
        notes += note("CORE", 1, bytes(st))
    ps = bytearray(136)
    struct.pack_into("<i", ps, 24, 100)
    ps[56:70] = b"python3 app.py"
    notes += note("CORE", 3, bytes(ps))
    notes += note("CORE", 6, struct.pack("<4Q", 3, LIB + 64, 0, 0))
    path = b"/usr/lib/libpython3.12.so.1.0\0"
    notes += note("CORE", 0x46494C45, struct.pack("<5Q", 1, 4096, LIB, LIB + 8192, 0) + path)
    phoff, phnum = 64, 3
    notes_off = phoff + 56 * phnum
    lib_off = (notes_off + len(notes) + 4095) // 4096 * 4096
    hdr = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 4, 62, 1, 0, phoff, 0, 0, 64, 56, phnum, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 4, 0, notes_off, 0, 0, len(notes), 0, 4)
    ph += struct.pack("<IIQQQQQQ", 1, 5, lib_off, LIB, 0, 4096, 8192, 4096)
    ph += struct.pack("<IIQQQQQQ", 1, 6, lib_off + 4096, DATA, 0, 4096, 4096, 4096)
    body = hdr + ph + notes
    body += b"\0" * (lib_off - len(body)) + elf_page(b"\xaa\xbb\xcc\xdd")
    body += bytes((i * 13 + 5) & 0xff for i in range(4096))
    with open(out, "wb") as f:
        f.write(body)


if __name__ == "__main__":
    main(sys.argv[1])
