"""``pybpfasm btf``: look at kernel types the way a BPF program will see them.

    pybpfasm btf struct sk_buff               members with offsets and sizes, like pahole
    pybpfasm btf field "struct sk_buff" dev.name
    pybpfasm btf enum skb_drop_reason
    pybpfasm btf func tcp_v4_rcv
    pybpfasm btf tracepoint skb:kfree_skb     the context layout from tracefs

``--btf FILE`` reads another BTF (raw, or an ELF's .BTF section) instead of
the running kernel's, ``--module NAME`` a module's; ``--json`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterator, Sequence

from ..btf import BTF, BTFError, Field, read_format
from ..errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    source = common.add_mutually_exclusive_group()
    source.add_argument("--btf", metavar="FILE", help="read FILE instead of the kernel's BTF")
    source.add_argument("--module", metavar="NAME", help="read a kernel module's BTF (split on the kernel's)")
    common.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="what", required=True, metavar="{struct,field,enum,func,tracepoint}")
    sub.add_parser("struct", parents=[common], help="members of a struct or union").add_argument("name")
    field = sub.add_parser("field", parents=[common], help="where a field path lies")
    field.add_argument("struct")
    field.add_argument("path", help="e.g. dev.name, frags[0].len")
    sub.add_parser("enum", parents=[common], help="values of an enum").add_argument("name")
    sub.add_parser("func", parents=[common], help="a kernel function's signature").add_argument("name")
    sub.add_parser("tracepoint", parents=[common], help="a tracepoint's context from tracefs").add_argument(
        "event", help="CATEGORY:NAME, e.g. skb:kfree_skb"
    )


def _field_json(f: Field) -> dict[str, Any]:
    return {
        "path": f.path, "offset": f.offset, "size": f.size, "type": f.type_name,
        "bit_offset": f.bit_offset, "bit_size": f.bit_size, "signed": f.signed,
        "data_loc": f.data_loc, "steps": [{"offset": s.offset, "deref": s.deref} for s in f.steps],
    }


def _field_lines(fields: Sequence[Field], btf: BTF | None) -> Iterator[str]:
    for f in fields:
        if btf is not None and f.type_id is not None:
            decl = btf.type_name(f.type_id, f.path)
        else:
            decl = f"{f.type_name} {f.path}"
        where = f"{f.bit_offset // 8:5}:{f.bit_offset % 8:2}" if f.bit_size else f"{f.offset:8}"
        decl += f":{f.bit_size}" if f.bit_size else ""
        yield f"\t{decl + ';':<48} /* {where} {f.size:5} */\n"


def _struct(btf: BTF, name: str, as_json: bool) -> Iterator[str]:
    """The listing, in pieces: a struct of 65535 members is written as it is spelt, not held whole."""
    layout = btf.struct(name)
    fields = layout.fields()
    if as_json:
        head = json.dumps({"name": layout.name, "size": layout.size, "source": layout.source})
        yield head[:-1] + ', "fields": ['
        for i, f in enumerate(fields):
            yield (", " if i else "") + json.dumps(_field_json(f))
        yield "]}\n"
        return
    yield f"{layout.name} {{\n"
    yield from _field_lines(fields, btf)
    yield f"}};  /* size {layout.size}, from {layout.source} */\n"


def _field(btf: BTF, struct: str, path: str, as_json: bool) -> str:
    f = btf.field(struct, path)
    if as_json:
        return json.dumps({"struct": struct, "source": btf.source, **_field_json(f)})
    steps = [f"load the pointer at +{s.offset}" for s in f.steps[:-1]] + [f"the field at +{f.offset}"]
    lines = [f"{path}: {f.type_name}, {f.size} byte{'s' if f.size != 1 else ''}", "  " + ", then ".join(steps)]
    if f.bit_size:
        lines.append(f"  bitfield: {f.bit_size} bits at bit {f.bit_offset} of its struct")
    return "\n".join(lines)


def _enum(btf: BTF, name: str, as_json: bool) -> str:
    values = btf.enum(name)
    if as_json:
        return json.dumps({"name": name, "source": btf.source, "values": values})
    return "\n".join(f"{key} = {value}" for key, value in values.items())


def _func(btf: BTF, name: str, as_json: bool) -> str:
    sig = btf.func(name)
    if as_json:
        args = [{"name": a.name, "type": a.type_name, "size": a.size} for a in sig.args]
        return json.dumps({"name": sig.name, "return": sig.return_type, "args": args, "variadic": sig.variadic})
    return str(sig)


def _tracepoint(event: str, as_json: bool) -> str:
    category, sep, name = event.partition(":")
    if not sep or not category or not name:
        raise UsageError(f"tracepoint {event!r}: expected CATEGORY:NAME, e.g. skb:kfree_skb")
    fmt = read_format(category, name)
    if as_json:
        return json.dumps({"name": fmt.name, "id": fmt.id, "size": fmt.size, "source": fmt.source,
                           "fields": [_field_json(f) for f in fmt.fields()]})
    body = "".join(_field_lines(fmt.fields(), None))
    return f"tracepoint {event} {{\n{body}}};  /* id {fmt.id}, from {fmt.source} */"


def run(args: argparse.Namespace) -> int:
    if args.what == "tracepoint":
        print(_tracepoint(args.event, args.json))
        return 0
    if args.btf:
        btf = BTF.from_file(args.btf)
    elif args.module:
        btf = BTF.module(args.module)
    else:
        btf = BTF.kernel()
    if args.what == "struct":
        sys.stdout.writelines(_struct(btf, args.name, args.json))
        return 0
    if args.what == "field":
        out = _field(btf, args.struct, args.path, args.json)
    elif args.what == "enum":
        out = _enum(btf, args.name, args.json)
    elif args.what == "func":
        out = _func(btf, args.name, args.json)
    else:
        raise BTFError(f"unknown question {args.what!r}")
    print(out)
    return 0
