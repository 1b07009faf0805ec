// An XDP program that counts packets in an array map and returns through a subprogram.
.section xdp
.globl xdp_count
xdp_count:
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = counts ll
    call 1                      // bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    call verdict
    exit

.section socket
.globl sock_len
sock_len:
    r0 = *(u32 *)(r1 + 0)       // skb->len
    exit

.text
verdict:
    r0 = 2                      // XDP_PASS
    exit

.section .maps
.map counts, type=array, key=4, value=8, max_entries=1

.section license
_license:
    .asciz "GPL"
