"""The BPF side of xdp-l2fwd: an FDB keyed by <dmac, vlan>, a devmap of egress devices and
per-verdict counters, and the XDP program that forwards by them.

On each frame:

* shorter than its Ethernet header, or than a VLAN tag it announces (802.1Q or 802.1ad,
  and an inner tag after an outer one): XDP_DROP, counted ``dropped``;
* key = destination MAC and the outer tag's VID (``& VLAN_VID_MASK``; 0 untagged);
  no FDB entry: XDP_PASS, counted ``passed``;
* the entry's egress device missing from the devmap: XDP_PASS, counted ``redirect_errors``;
* else the outer tag is popped (both tags of QinQ when the entry says ``F_POP_INNER``), a tag
  is pushed when the entry says ``F_PUSH`` (its ``push_tci``), and the frame is redirected
  to the entry's device, counted ``forwarded`` and in the entry's own counters;
* a group entry (``F_GROUP``: a multicast or the broadcast MAC) sends the frame to every
  device of its group in :data:`groups` but the one it came in on (``BPF_F_BROADCAST``,
  5.13; on older kernels the program has no group code and ``fdb add`` refuses groups).

Byte counts are of the frame as received.
"""

from __future__ import annotations

from pybpfasm.dsl import (
    DevMapGroups,
    DevMapHash,
    HashMap,
    PerCPUArray,
    Record,
    be16,
    u8,
    u16,
    u32,
    u64,
    xdp,
)
from pybpfasm.dsl.maps import atomic_add

from .common.packet import ETH_P_8021AD, ETH_P_8021Q, VLAN_VID_MASK

#: FdbEntry.flags: pop both tags of QinQ; push a tag; a group entry (a multicast MAC)
F_POP_INNER, F_PUSH, F_GROUP = 1, 2, 4
#: index of each verdict counter, and its name in ``stats``
VERDICTS = ("forwarded", "passed", "dropped", "redirect_errors")
FORWARDED, PASSED, DROPPED, REDIRECT_ERRORS = range(len(VERDICTS))
TAG_LEN = 4
MAX_FDB, MAX_PORTS, MAX_GROUPS = 4096, 256, 256


class FdbKey(Record):
    mac: u8[6]
    vlan: u16


class FdbEntry(Record):
    #: the egress device's key in :data:`ports` (its ifindex)
    port: u32
    flags: u32
    #: the tag control information pushed (F_PUSH): the VID, priority 0
    push_tci: be16
    packets: u64
    bytes: u64


class Counter(Record):
    packets: u64
    bytes: u64


class Macs(Record):
    """The first 12 bytes of a frame."""

    dst: u8[6]
    src: u8[6]


class Tagged(Record):
    """The first 16 bytes of an 802.1Q frame."""

    dst: u8[6]
    src: u8[6]
    tpid: be16
    tci: be16


fdb = HashMap(FdbKey, FdbEntry, MAX_FDB, name="l2fwd_fdb")
ports = DevMapHash(MAX_PORTS, name="l2fwd_ports")
verdicts = PerCPUArray(Counter, len(VERDICTS), name="l2fwd_verdicts")
#: the devices of each group entry, by its key
groups = DevMapGroups(FdbKey, MAX_GROUPS, MAX_PORTS, name="l2fwd_groups")
MAPS = {"fdb": fdb, "ports": ports, "verdicts": verdicts, "groups": groups}


def _count(b, ref, length) -> None:
    atomic_add(b, ref.packets, 1)
    atomic_add(b, ref.bytes, length)


def _verdict(b, index: int, length, action: int) -> None:
    """Count the frame under verdict *index* and return *action*."""
    with verdicts.lookup(b, index) as c:
        _count(b, c, length)
    b.return_(action)


@xdp
def l2fwd(b, ctx, groups_ok: bool) -> None:
    """The forwarder; *groups_ok*: the kernel has BPF_F_BROADCAST (else no group code)."""
    act = b.btf.enum("xdp_action")
    length = b.var(b.value(ctx.data_end) - b.value(ctx.data), u32)
    pkt = ctx.packet()
    key = b.stack(FdbKey, "fdb key")
    b.zero(key)
    tags = b.var(0, u32)
    with pkt.header(Macs) as macs:
        b.copy(key.mac, macs.dst)
        with pkt.header(be16) as proto:
            with b.if_(proto.in_(ETH_P_8021Q, ETH_P_8021AD)):
                with pkt.header("struct vlan_hdr") as outer:
                    key.vlan = outer.h_vlan_TCI.to_host() & VLAN_VID_MASK
                    tags.set(1)
                    with b.if_(outer.h_vlan_encapsulated_proto.in_(ETH_P_8021Q, ETH_P_8021AD)):
                        with pkt.header("struct vlan_hdr"):
                            tags.set(2)
                        with b.if_(tags != 2):
                            _verdict(b, DROPPED, length, act["XDP_DROP"])
                with b.if_(tags == 0):
                    _verdict(b, DROPPED, length, act["XDP_DROP"])
            _forward(b, ctx, key, macs, tags, length, act, groups_ok)
    _verdict(b, DROPPED, length, act["XDP_DROP"])


def _forward(b, ctx, key, macs, tags, length, act, groups_ok: bool) -> None:
    entry = fdb.lookup_ptr(b, key)
    with b.if_(entry == 0):
        _verdict(b, PASSED, length, act["XDP_PASS"])
    e = entry.non_null().deref()
    flags = b.var(e.flags, u32)
    if groups_ok:
        with b.if_(flags.test(F_GROUP)):
            group = groups.lookup_group(b, key)
            with b.if_(group == 0):
                _verdict(b, REDIRECT_ERRORS, length, act["XDP_PASS"])
            target = group.non_null()
            _retag(b, ctx, e, macs, tags, flags, length, act, lambda: groups.broadcast(b, target))
    port = b.var(e.port, u32)
    with b.if_(ports.lookup_ptr(b, port) == 0):
        _verdict(b, REDIRECT_ERRORS, length, act["XDP_PASS"])
    _retag(b, ctx, e, macs, tags, flags, length, act, lambda: ports.redirect(b, port, 0))


def _retag(b, ctx, e, macs, tags, flags, length, act, send) -> None:
    """Pop (and push) tags as entry *e* says, count the frame, return ``send()``."""
    pop = b.var(tags * TAG_LEN, u32)
    with b.if_((tags == 2) & ~(flags.test(F_POP_INNER))):
        pop.set(TAG_LEN)
    with b.if_(flags.test(F_PUSH)):
        pop.set(pop - TAG_LEN)
    with b.if_(pop != 0):
        saved = b.stack(Macs, "the frame's MACs")
        b.copy(saved, macs)
        with b.if_(b.xdp_adjust_head(ctx.value, b.value(pop, u32)) != 0):
            _verdict(b, REDIRECT_ERRORS, length, act["XDP_PASS"])
        moved = ctx.packet()
        with b.if_(flags.test(F_PUSH)):
            with moved.header(Tagged) as tagged:
                b.copy(tagged, saved)
                tagged.tpid = ETH_P_8021Q
                tagged.tci = e.push_tci
                _send(b, e, length, send)
            _verdict(b, DROPPED, length, act["XDP_DROP"])
        with moved.header(Macs) as front:
            b.copy(front, saved)
            _send(b, e, length, send)
        _verdict(b, DROPPED, length, act["XDP_DROP"])
    # a tag popped and one pushed: rewrite the tag in place
    with b.if_(flags.test(F_PUSH)), ctx.packet().header(Tagged) as tag:
        tag.tpid = ETH_P_8021Q
        tag.tci = e.push_tci
    _send(b, e, length, send)


def _send(b, e, length, send) -> None:
    _count(b, e, length)
    with verdicts.lookup(b, FORWARDED) as c:
        _count(b, c, length)
    b.return_(send())
