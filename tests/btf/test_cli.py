"""``pybpfasm btf``: output, --json, --btf FILE, and one-line errors."""

from __future__ import annotations

import json

import pytest

from pybpfasm.cli import main

from .samples import program_builder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["btf", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_struct_lists_members_with_offsets(capsys, kernel_btf):
    code, out, _ = run(capsys, "struct", "iphdr")
    assert code == 0
    assert out.startswith("struct iphdr {")
    assert "__u8 ihl:4;" in out and "__be32 saddr;" in out
    saddr = kernel_btf.field("iphdr", "saddr")
    assert f"{saddr.offset:8} {saddr.size:5} */" in out


def test_field_json(capsys, kernel_btf):
    code, out, _ = run(capsys, "field", "struct sk_buff", "dev.name", "--json")
    assert code == 0
    data = json.loads(out)
    expected = kernel_btf.field("sk_buff", "dev.name")
    assert data["steps"] == [{"offset": s.offset, "deref": s.deref} for s in expected.steps]
    assert data["type"] == "char[16]" and data["source"] == kernel_btf.source


def test_enum_and_func(capsys, kernel_btf):
    code, out, _ = run(capsys, "enum", "xdp_action")
    assert code == 0 and "XDP_PASS = 2" in out.splitlines()
    code, out, _ = run(capsys, "func", "tcp_v4_rcv")
    assert code == 0 and out.strip() == "int tcp_v4_rcv(struct sk_buff *skb)"


def test_btf_file(capsys, tmp_path):
    path = tmp_path / "prog.btf"
    path.write_bytes(program_builder().build().btf)
    code, out, _ = run(capsys, "struct", "event", "--btf", str(path), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["source"] == f"external BTF {path}"
    assert [(f["path"], f["bit_offset"], f["bit_size"]) for f in data["fields"]][:3] == [
        ("pid", 0, 0), ("flags", 32, 3), ("mode", 35, 5),
    ]


def test_tracepoint(capsys):
    code, out, err = run(capsys, "tracepoint", "skb:kfree_skb")
    if code and "tracefs is not mounted" in err:
        pytest.skip(err.strip())
    assert code == 0 and "enum skb_drop_reason reason;" in out


@pytest.mark.parametrize(
    ("argv", "message", "status"),
    [
        (["struct", "sk_buf"], "no struct/union/typedef named 'sk_buf'", 1),
        (["field", "sk_buff", "no_such"], "struct sk_buff has no field 'no_such'", 1),
        (["field", "sk_buff", "a..b"], "bad field path", 1),
        (["enum", "sk_buff"], "no enum/enum64/typedef named 'sk_buff'", 1),
        (["struct", "x", "--btf", "/nonexistent"], "cannot read BTF file /nonexistent", 1),
        (["tracepoint", "kfree_skb"], "expected CATEGORY:NAME", 2),
        (["struct", "x", "--module", "no_such_module"], "cannot read module BTF", 1),
        (["struct", "x", "--module", "../vmlinux"], "is not a module name", 1),
    ],
)
def test_errors_are_one_line(capsys, kernel_btf, argv, message, status):
    code, out, err = run(capsys, *argv)
    assert code == status and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_file_is_one_line(capsys, tmp_path):
    path = tmp_path / "bad.btf"
    path.write_bytes(program_builder().build().btf[:40])
    code, _, err = run(capsys, "struct", "event", "--btf", str(path))
    assert code == 1 and "truncated" in err and err.count("\n") == 1
