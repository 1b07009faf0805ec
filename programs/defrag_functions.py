"""The kernel side of ``pybpfasm defrag`` where kprobes exist: the reassembly functions
themselves (checked in kallsyms: :func:`missing` names the ones a kernel lacks).

* entries of ``ip_defrag`` (IPv4, every user: its ``user`` argument says local delivery or
  conntrack), ``ipv6_frag_rcv`` (IPv6 local) and ``nf_ct_frag6_gather`` (IPv6 conntrack):
  each fragment as defrag gets it, remembered per thread until the function returns;
* ``inet_frag_queue_insert``'s answer (``IPFRAG_DUP``, ``IPFRAG_OVERLAP``): a verdict on that
  fragment, which user space gives the drop that follows it;
* the returns of the three entry functions: reassembled (0 for ``ip_defrag`` and
  ``nf_ct_frag6_gather``, 1 for ``ipv6_frag_rcv``; the skb is the whole datagram now).

Drops and timeouts still come from ``kfree_skb`` (:mod:`.defrag_programs`).
"""

from __future__ import annotations

import functools

from pybpfasm.dsl import HashMap, ProgramDef, u32, u64

from . import defrag_programs as kp
from .defrag_programs import FragEvent, Options

#: FragEvent.kind of an insert verdict (user space only: never printed itself)
K_DUP, K_OVERLAP = 5, 6
IPFRAG_DUP, IPFRAG_OVERLAP = 1, 2
#: the functions whose entry sees a fragment: (name, skb argument, user argument or None, family)
ENTRIES = (("ip_defrag", 1, 2, "ipv4"), ("ipv6_frag_rcv", 0, None, "ipv6"),
           ("nf_ct_frag6_gather", 1, 2, "ipv6"))
INSERT = "inet_frag_queue_insert"

#: thread -> the fragment its defrag call is working on (skb pointer in ``location``)
pending = HashMap(u64, FragEvent, 4096, name="dfg_pending")


@functools.cache
def users() -> dict[str, tuple[int, int]]:
    """Defrag user -> the range of ``enum ip_defrag_users`` values that are it (BTF)."""
    from pybpfasm.btf import BTF

    e = BTF.kernel().enum("ip_defrag_users")
    return {"local": (e["IP_DEFRAG_LOCAL_DELIVER"], e["IP_DEFRAG_LOCAL_DELIVER"]),
            "conntrack": (e["IP_DEFRAG_CONNTRACK_IN"], e["IP_DEFRAG_VS_IN"] - 1)}


def missing() -> list[str]:
    """The functions this path probes that this kernel does not have as functions."""
    from pybpfasm.kernel import Kallsyms

    symbols = Kallsyms.load()
    return [f for f in (*(e[0] for e in ENTRIES), INSERT) if f not in symbols]


def _entry(function: str, skb_arg: int, user_arg: int | None, family: str) -> ProgramDef:
    def on_entry(b, ctx, opts: Options):
        pending.delete(b, b.get_current_pid_tgid())  # no stale fragment for this call's return
        ev = b.stack(FragEvent, "the fragment event")
        b.zero(ev)
        skb_ptr = ctx.arg(skb_arg)
        skb_ref = skb_ptr.cast("struct sk_buff").deref()
        skb = b.read(skb_ref, "dev", "network_header", "head", name="sk_buff fields")
        with b.if_(skb.dev != 0):
            dev = b.read(skb.dev.deref(), "nd_net", name="net_device")
            ev.netns = dev.nd_net.net.ns.inum
        kp._parse(b, skb.head.rvalue().at(skb.network_header),
                  kp.ETH_P_IP if family == "ipv4" else kp.ETH_P_IPV6, ev, 0)
        kp._keep_only(b, ev, opts, 0)
        if user_arg is None:
            ev.user = kp.U_LOCAL
        else:
            user = b.var((ctx.arg(user_arg) << 32) >> 32)  # a u32: the register's upper half is not ours
            for code, (low, high) in ((kp.U_LOCAL, users()["local"]), (kp.U_CONNTRACK, users()["conntrack"])):
                with b.if_((user >= low) & (user <= high)):
                    ev.user = code
        with b.if_(skb.dev != 0):
            kp._memory_pressure(b, skb.dev, ev)
        ev.kind = kp.K_FRAGMENT
        ev.ts = b.ktime_get_ns()
        kp.events.output(b, ctx.value, ev)
        ev.location = skb_ptr
        pending.update(b, b.get_current_pid_tgid(), ev)

    on_entry.__qualname__ = f"on_entry[{function}]"
    return ProgramDef(on_entry, "kprobe", (function,), name=f"dfg_{function[:11]}")


def _return(function: str, family: str, whole: int) -> ProgramDef:
    """Return of *function*: a reassembled datagram when it returns *whole*."""

    def on_return(b, ctx, opts: Options):
        tid = b.var(b.get_current_pid_tgid())
        ev = b.stack(FragEvent, "the datagram event")
        b.zero(ev)
        with pending.lookup(b, tid) as held:
            b.copy(ev, held)
        with b.if_(ev.kind == 0):
            b.return_(0)  # this call's skb was no fragment (or filtered out)
        pending.delete(b, tid)
        with b.if_(ctx.ret.cast(u32) != whole):
            b.return_(0)
        skb_ref = ev.location.rvalue().cast("struct sk_buff").deref()
        skb = b.read(skb_ref, "network_header", "head", name="sk_buff fields")
        l3 = skb.head.rvalue().at(skb.network_header)
        if family == "ipv4":
            ip = b.read(l3.cast("struct iphdr").deref(), name="ip header")
            ev.length = ip.tot_len.to_host() - ip.ihl * 4
        else:
            ip6 = b.read(l3.cast("struct ipv6hdr").deref(), name="ipv6 header")
            ev.length = ip6.payload_len.to_host()
            if function == "nf_ct_frag6_gather":  # 0 is also "not a fragment"
                parm = b.read(skb_ref.cb.view("struct inet6_skb_parm"), name="control block")
                with b.if_(parm.frag_max_size == 0):
                    b.return_(0)
        ev.kind = kp.K_REASSEMBLED
        ev.offset = 0
        ev.more = 0
        ev.location = 0
        ev.ts = b.ktime_get_ns()
        kp.events.output(b, ctx.value, ev)

    on_return.__qualname__ = f"on_return[{function}]"
    return ProgramDef(on_return, "kretprobe", (function,), name=f"dfr_{function[:11]}")


def on_insert_return(b, ctx, opts: Options):
    """A duplicate or overlap verdict on the fragment this thread's defrag call holds."""
    ret = b.var(ctx.ret.cast(u32))
    with b.if_(ret.in_(IPFRAG_DUP, IPFRAG_OVERLAP)), pending.lookup(b, b.get_current_pid_tgid()) as ev:
        verdict = b.stack(FragEvent, "the verdict")
        b.copy(verdict, ev)
        verdict.kind = K_DUP
        with b.if_(ret == IPFRAG_OVERLAP):
            verdict.kind = K_OVERLAP
        verdict.location = 0
        verdict.ts = b.ktime_get_ns()
        kp.events.output(b, ctx.value, verdict)


def programs() -> list[ProgramDef]:
    """Every function-level program, entries before returns."""
    out = [_entry(*entry) for entry in ENTRIES]
    out.append(ProgramDef(on_insert_return, "kretprobe", (INSERT,), name="dfg_insert"))
    out += [_return("ip_defrag", "ipv4", 0), _return("ipv6_frag_rcv", "ipv6", 1),
            _return("nf_ct_frag6_gather", "ipv6", 0)]
    return out
