"""Which sk_buff fields say that a VLAN tag was taken out of the packet, on this kernel
(shared by the pcap filters' skb path and the packet tools)."""

from __future__ import annotations


def vlan_fields(b) -> list[str]:
    """The sk_buff fields that say a tag was taken out of the packet, on this kernel."""
    return [f for f in ("vlan_all", "vlan_present") if b.btf.has_field("sk_buff", f)]


def offloaded_vlan(hdr, fields: list[str]):
    """The condition that the skb carries a tag out of the packet (offloaded or stripped)."""
    if "vlan_all" in fields:
        return hdr.vlan_all != 0
    if "vlan_present" in fields:
        return hdr.vlan_present != 0
    return hdr.vlan_tci.test(0x1000)  # before 4.19: VLAN_TAG_PRESENT in vlan_tci
