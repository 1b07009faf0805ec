"""Our reading of the running kernel's BTF against bpftool's reading of the same file."""

from __future__ import annotations

import pytest

from pybpfasm.btf import BTF, BTFError, Kind, Ptr, UnknownField

from .oracle import as_bpftool, flat_members, normalized, size_of

NETWORK_STRUCTS = [
    "sk_buff", "net_device", "iphdr", "ipv6hdr", "tcphdr", "udphdr", "icmphdr", "ethhdr",
    "vlan_ethhdr", "sock", "sock_common", "inet_sock", "tcp_sock", "sk_buff_head",
    "skb_shared_info", "net", "netns_ipv4", "nf_conn", "xdp_md", "xdp_buff", "__sk_buff",
    "napi_struct", "netdev_queue", "Qdisc", "dst_entry", "rtable", "flowi4", "in_device",
    "inet_frag_queue", "ipq", "udp_sock", "inet_connection_sock", "request_sock", "socket",
    "msghdr", "sockaddr_in", "sockaddr_in6", "in6_addr", "icmp6hdr", "arphdr", "neighbour",
    "fib_result", "nf_hook_state", "nf_conntrack_tuple", "xdp_frame", "xdp_rxq_info",
    "bpf_sock", "bpf_sock_ops", "inet_timewait_sock", "tcp_skb_cb", "inet_skb_parm",
    "skb_frag", "net_device_stats", "rt6_info", "flowi6", "sk_filter",
]
ENUMS = [
    "skb_drop_reason", "bpf_func_id", "bpf_prog_type", "bpf_map_type", "bpf_attach_type",
    "bpf_link_type", "xdp_action", "bpf_cmd", "tcp_ca_state", "sk_rst_reason",
]


def test_opening_indexes_every_type(kernel_btf, bpftool_types):
    assert kernel_btf.last_id == max(bpftool_types)
    assert kernel_btf.source == "kernel BTF /sys/kernel/btf/vmlinux"


def test_every_type_decodes_as_bpftool_reads_it(kernel_btf, bpftool_types):
    mismatches = [
        (type_id, want)
        for type_id, want in bpftool_types.items()
        if normalized(as_bpftool(type_id, kernel_btf.type(type_id))) != normalized(want)
    ]
    assert mismatches[:3] == []


def test_at_least_50_network_structs_are_compared(bpftool_by_name):
    present = [n for n in NETWORK_STRUCTS if ("STRUCT", n) in bpftool_by_name]
    assert len(present) >= 50, sorted(set(NETWORK_STRUCTS) - set(present))


@pytest.mark.parametrize("name", NETWORK_STRUCTS)
def test_struct_field_offsets_match_bpftool(kernel_btf, bpftool_types, bpftool_by_name, name):
    want = bpftool_by_name.get(("STRUCT", name))
    if want is None:
        pytest.skip(f"struct {name} is not in this kernel's BTF")
    layout = kernel_btf.struct(name)
    assert layout.type_id == want["id"]
    assert layout.size == want["size"]
    expected = flat_members(bpftool_types, want["id"])
    got = {f.path: f for f in layout.fields()}
    assert list(got) == list(expected)
    for member, (bits, bitfield_size) in expected.items():
        field = got[member]
        assert (field.bit_offset, field.bit_size) == (bits, bitfield_size), member
        if not bitfield_size:
            assert field.offset * 8 == bits, member
            member_type = next(m["type_id"] for m in _members_named(bpftool_types, want["id"], member))
            assert field.size == size_of(bpftool_types, member_type), member


def _members_named(types, type_id, name):
    for m in types[type_id]["members"]:
        if m["name"] == name:
            yield m
        elif m["name"] == "(anon)" and types[m["type_id"]]["kind"] in ("STRUCT", "UNION"):
            yield from _members_named(types, m["type_id"], name)


@pytest.mark.parametrize("name", ENUMS)
def test_enum_values_match_bpftool(kernel_btf, bpftool_by_name, name):
    want = bpftool_by_name.get(("ENUM", name)) or bpftool_by_name.get(("ENUM64", name))
    if want is None:
        pytest.skip(f"enum {name} is not in this kernel's BTF")
    want = normalized(want)
    mask = 0xFFFFFFFF if want["kind"] == "ENUM" else (1 << 64) - 1
    assert {k: v & mask for k, v in kernel_btf.enum(name).items()} == {v["name"]: v["val"] for v in want["values"]}


def test_helper_ids_come_from_bpf_func_id(kernel_btf):
    helpers = kernel_btf.enum("bpf_func_id")
    assert helpers["BPF_FUNC_map_lookup_elem"] == 1
    assert helpers["BPF_FUNC_ktime_get_ns"] == 5


def test_function_signature_matches_bpftool(kernel_btf, bpftool_types, bpftool_by_name):
    func = bpftool_by_name[("FUNC", "tcp_v4_rcv")]
    proto = bpftool_types[func["type_id"]]
    sig = kernel_btf.func("tcp_v4_rcv")
    assert [a.name for a in sig.args] == [p["name"] for p in proto["params"]]
    assert [a.type_id for a in sig.args] == [p["type_id"] for p in proto["params"]]
    assert sig.args[0].type_name == "struct sk_buff *"
    assert sig.return_type_id == proto["ret_type_id"]
    assert str(sig) == "int tcp_v4_rcv(struct sk_buff *skb)"


def test_path_through_a_pointer_reports_the_deref(kernel_btf, bpftool_types, bpftool_by_name):
    skb = flat_members(bpftool_types, bpftool_by_name[("STRUCT", "sk_buff")]["id"])
    dev = flat_members(bpftool_types, bpftool_by_name[("STRUCT", "net_device")]["id"])
    field = kernel_btf.field("sk_buff", "dev.name")
    assert [s.deref for s in field.steps] == [True, False]
    assert [s.offset for s in field.steps] == [skb["dev"][0] // 8, dev["name"][0] // 8]
    assert (field.size, field.type_name) == (16, "char[16]")
    assert kernel_btf.field("sk_buff", "dev->ifindex").steps[0] == field.steps[0]


def test_array_index_and_anonymous_members(kernel_btf):
    frags = kernel_btf.field("skb_shared_info", "frags")
    one = kernel_btf.field("skb_shared_info", "frags[1]")
    element = kernel_btf.sizeof("skb_frag_t")
    assert one.offset == frags.offset + element and one.size == element
    sock = kernel_btf.field("sock", "__sk_common.skc_family")
    assert kernel_btf.field("sock_common", "skc_family").offset == sock.offset
    assert kernel_btf.struct("sock_common").has_field("skc_family")  # inside anonymous unions
    assert kernel_btf.struct("skb_frag_t").name == "struct skb_frag"  # through a typedef


def test_typedef_chains_resolve(kernel_btf):
    u32 = kernel_btf.lookup("u32")
    assert kernel_btf.kind(u32) is Kind.TYPEDEF
    assert kernel_btf.type(kernel_btf.resolve(u32)).name == "unsigned int"
    assert kernel_btf.sizeof("u32") == 4
    assert kernel_btf.sizeof("struct iphdr") == 20
    assert isinstance(kernel_btf.type(kernel_btf.field("sk_buff", "sk").type_id), Ptr)


def test_has_field(kernel_btf):
    assert kernel_btf.has_field("sk_buff", "dev.name")
    assert not kernel_btf.has_field("sk_buff", "no_such_field")
    assert not kernel_btf.has_field("sk_buff", "dev.no_such_field")


def test_unknown_names_are_clear(kernel_btf):
    with pytest.raises(BTFError, match=r"no struct/union/typedef named 'sk_buf'.*did you mean: sk_buff"):
        kernel_btf.struct("sk_buf")
    with pytest.raises(UnknownField, match=r"struct sk_buff has no field 'lenn'.*did you mean len"):
        kernel_btf.field("sk_buff", "lenn")
    with pytest.raises(BTFError, match=r"unsigned int is not a struct or union"):
        kernel_btf.struct("unsigned int")
    with pytest.raises(BTFError, match=r"bad field path"):
        kernel_btf.field("sk_buff", "dev..name")
    with pytest.raises(BTFError, match=r"past the end"):
        kernel_btf.field("sk_buff", "cb[48]")
    with pytest.raises(BTFError, match=r"cannot be indexed"):
        kernel_btf.field("sk_buff", "len[0]")


def test_trace_event_struct(kernel_btf):
    layout = kernel_btf.trace_event("kfree_skb")
    assert layout.name == "struct trace_event_raw_kfree_skb"
    assert layout.has_field("reason") and layout.field("ent.pid").offset == 4


def test_kernel_btf_is_memoised(kernel_btf):
    assert BTF.kernel() is kernel_btf
