/* Just enough of the kernel's XDP interface for the size comparisons (no kernel headers here). */
#define SEC(name) __attribute__((section(name), used))
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static u32 (*bpf_get_prandom_u32)(void) = (void *)7;
#define PACKET(ctx, len) \
	u8 *data = (u8 *)(long)(ctx)->data, *end = (u8 *)(long)(ctx)->data_end; \
	if (data + (len) > end) return 0
