"""The LLVM oracle: clang from the ``ziglang`` wheel assembles BPF text (-mcpu=v4).

Used by the tests and by bench/.  Each line is assembled under its own local label, so the bytes of every line
are read back from the object's symbol table, and lines LLVM rejects are
reported one by one with LLVM's message.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from pathlib import Path


def _sections(obj: bytes) -> dict[str, tuple[int, int, int, int]]:
    """ELF64 section name (and "#index") -> (offset, size, link, entsize)."""
    e = _endian(obj)
    shoff = struct.unpack_from(e + "Q", obj, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", obj, 0x3A)
    headers = [struct.unpack_from(e + "IIQQQQIIQQ", obj, shoff + i * shentsize)
               for i in range(shnum)]
    names = headers[shstrndx][4]

    def name(off: int) -> str:
        return obj[names + off: obj.index(b"\0", names + off)].decode()

    return {name(h[0]): (h[4], h[5], h[6], h[9]) for h in headers} | {
        f"#{i}": (h[4], h[5], h[6], h[9]) for i, h in enumerate(headers)}


def _endian(obj: bytes) -> str:
    return "<" if obj[5] == 1 else ">"


def _symbols(obj: bytes) -> dict[str, int]:
    secs = _sections(obj)
    off, size, link, entsize = secs[".symtab"]
    stroff = secs[f"#{link}"][0]
    out = {}
    for pos in range(off, off + size, entsize):
        st_name, _info, _other, _shndx, value, _size = struct.unpack_from(_endian(obj) + "IBBHQQ", obj, pos)
        if st_name:
            out[obj[stroff + st_name: obj.index(b"\0", stroff + st_name)].decode()] = value
    return out


def _run(lines: list[str], target: str = "bpfel") -> tuple[bytes | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "x.s"), Path(tmp, "x.o")
        body = [f"__l{i}:\n\t{line}" for i, line in enumerate(lines)]
        src.write_text("\t.text\n" + "\n".join(body) + f"\n__l{len(lines)}:\n")
        proc = subprocess.run(
            [sys.executable, "-m", "ziglang", "cc", "-target", f"{target}-freestanding", "-mcpu=v4",
             "-c", str(src), "-o", str(out)], capture_output=True, text=True)
        return (out.read_bytes() if proc.returncode == 0 else None), proc.stderr


def llvm_assemble(lines: list[str], byteorder: str = "little") -> list[bytes | str]:
    """LLVM's bytes for each line, or LLVM's error message for lines it rejects."""
    results: dict[int, bytes | str] = {}
    todo = list(range(len(lines)))
    while todo:
        obj, err = _run([lines[i] for i in todo], "bpfel" if byteorder == "little" else "bpfeb")
        if obj is not None:
            off, _size = _sections(obj)[".text"][:2]
            syms = _symbols(obj)
            for k, i in enumerate(todo):
                results[i] = obj[off + syms[f"__l{k}"]: off + syms[f"__l{k + 1}"]]
            break
        bad = set()
        for msg in err.splitlines():
            parts = msg.split(":", 3)
            if len(parts) == 4 and parts[1].isdigit() and "error" in parts[3]:
                k = (int(parts[1]) - 2) // 2  # line 1 is .text, then label/insn pairs
                bad.add(k)
                results[todo[k]] = parts[3].strip()
        if not bad:
            raise RuntimeError(f"LLVM failed without a line-level error:\n{err}")
        todo = [i for k, i in enumerate(todo) if k not in bad]
    return [results[i] for i in range(len(lines))]


def compile_c(source: Path, *, cpu: str = "v3", opt: str = "-O2") -> dict[str, bytes]:
    """Compile a BPF C file with clang; returns each executable section's bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "x.o")
        subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding",
                        f"-mcpu={cpu}", opt, "-c", str(source), "-o", str(out)], check=True)
        obj = out.read_bytes()
    e = _endian(obj)
    shoff = struct.unpack_from(e + "Q", obj, 0x28)[0]
    shentsize = struct.unpack_from(e + "H", obj, 0x3A)[0]
    secs = _sections(obj)
    code = {}
    for name, (off, size, _link, _entsize) in secs.items():
        if name.startswith("#") or not size:
            continue
        index = next(int(k[1:]) for k, v in secs.items() if k.startswith("#") and v == secs[name])
        flags = struct.unpack_from(e + "Q", obj, shoff + index * shentsize + 8)[0]
        if flags & 0x4:  # SHF_EXECINSTR
            code[name] = obj[off: off + size]
    return code
