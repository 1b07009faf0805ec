/* A 5-tuple packet filter (XDP): Ethernet, optional 802.1Q, IPv4/IPv6, TCP/UDP/ICMP.
 * The C twin of the eDSL filter in bench/edsl_bench.py; compiled by clang -O2 for
 * instruction counts and as a realistic corpus for the decoder benchmark. */
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;
typedef unsigned long long u64;
struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
struct eth { u8 dst[6], src[6]; u16 proto; };
struct vlan { u16 tci, proto; };
struct ip4 { u8 vhl, tos; u16 len, id, frag; u8 ttl, proto; u16 csum; u32 src, dst; };
struct ip6 { u32 vtc; u16 plen; u8 nxt, hlim; u32 src[4], dst[4]; };
struct ports { u16 sport, dport; };

#define BE16(x) __builtin_bswap16(x)
static volatile const u32 want_src = 0x0100000a, want_dst = 0x0200000a;
static volatile const u16 want_sport = BE16(1234), want_dport = BE16(80);
static volatile const u8 want_proto = 17;

__attribute__((section("xdp"), used))
int filter5(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct eth *eth = data;
	if ((void *)(eth + 1) > end) return 1;
	u16 proto = eth->proto;
	void *l3 = eth + 1;
	if (proto == BE16(0x8100)) {
		struct vlan *v = l3;
		if ((void *)(v + 1) > end) return 1;
		proto = v->proto; l3 = v + 1;
	}
	u8 l4proto; void *l4;
	if (proto == BE16(0x0800)) {
		struct ip4 *ip = l3;
		if ((void *)(ip + 1) > end) return 1;
		if (ip->src != want_src || ip->dst != want_dst) return 2;
		l4proto = ip->proto; l4 = (u8 *)ip + (ip->vhl & 0xf) * 4;
	} else if (proto == BE16(0x86dd)) {
		struct ip6 *ip = l3;
		if ((void *)(ip + 1) > end) return 1;
		if (ip->src[3] != want_src || ip->dst[3] != want_dst) return 2;
		l4proto = ip->nxt; l4 = ip + 1;
	} else return 2;
	if (l4proto != want_proto) return 2;
	if (l4proto == 6 || l4proto == 17) {
		struct ports *p = l4;
		if ((void *)(p + 1) > end) return 1;
		if (p->sport != want_sport || p->dport != want_dport) return 2;
	}
	return 1;
}
