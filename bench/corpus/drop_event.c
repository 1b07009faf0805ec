/* The drop-event builder (tracepoint skb:kfree_skb): one ring buffer record per drop with
 * ctx fields, the current pid and comm and a timestamp; a per-CPU counter of records that
 * found no room.  The C twin of the eDSL program in bench/edsl_bench.py (clang -O2 counts). */
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;
typedef unsigned long long u64;

/* /sys/kernel/tracing/events/skb/kfree_skb/format (Linux 6.18) */
struct kfree_skb_ctx {
	u16 common_type; u8 common_flags, common_preempt_count; int common_pid;
	void *skbaddr; void *location; void *rx_sk; u16 protocol; u32 reason;
};

struct drop_event { u64 ts, skbaddr, location; u32 pid, reason; u16 protocol; char comm[16]; };

static void *(*bpf_map_lookup_elem)(void *, const void *) = (void *) 1;
static u64 (*bpf_ktime_get_ns)(void) = (void *) 5;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *) 14;
static long (*bpf_get_current_comm)(void *, u32) = (void *) 16;
static void *(*bpf_ringbuf_reserve)(void *, u64, u64) = (void *) 131;
static void (*bpf_ringbuf_submit)(void *, u64) = (void *) 132;

/* stand-ins for the maps: only their addresses are used (ld_imm64 + relocation) */
char events[1] __attribute__((section(".maps")));
char events_lost[1] __attribute__((section(".maps")));

__attribute__((section("tracepoint/skb/kfree_skb"), used))
int drop_event(struct kfree_skb_ctx *ctx)
{
	struct drop_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		u32 zero = 0;
		u64 *lost = bpf_map_lookup_elem(&events_lost, &zero);
		if (lost)
			__sync_fetch_and_add(lost, 1);
		return 0;
	}
	ev->ts = bpf_ktime_get_ns();
	ev->skbaddr = (u64)ctx->skbaddr;
	ev->location = (u64)ctx->location;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->reason = ctx->reason;
	ev->protocol = ctx->protocol;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_ringbuf_submit(ev, 0);
	return 0;
}
