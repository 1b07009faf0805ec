/* A BPF object with the parts libbpf-style objects have: BTF-defined maps, global data
 * (.rodata, .data, .bss), two programs in their own sections, a subprogram in .text. */
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
typedef unsigned int u32;
typedef unsigned long long u64;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct { __uint(type, 2); __type(key, u32); __type(value, u64); __uint(max_entries, 4); } counts SEC(".maps");
struct { __uint(type, 1); __uint(key_size, 4); __uint(value_size, 8); __uint(max_entries, 16); } table SEC(".maps");

volatile const u32 limit = 7;
u64 total = 3;
u32 zeroes;

__attribute__((noinline)) int twice(int x) { return x * 2 + zeroes; }

SEC("xdp") int xdp_prog(void *ctx) {
    u32 k = 1;
    u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v)
        __sync_fetch_and_add(v, 1);
    total += limit;
    return twice(1);
}

SEC("socket") int sock_prog(void *ctx) {
    u32 k = 2;
    u64 *v = bpf_map_lookup_elem(&table, &k);
    return v ? twice((int)*v) : limit;
}

char _license[] SEC("license") = "GPL";
