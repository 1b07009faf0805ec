"""The C declarations pybpfasm talks to the kernel with, in one cffi ABI-mode cdef.

Nothing is compiled: layouts come from the declarations below (copied in shape
from ``include/uapi/linux/bpf.h`` and ``perf_event.h``) and the functions from
the already loaded C library. Anonymous members of ``union bpf_attr`` get
names here (``map_create``, ``elem``, ``prog_load`` ...) because cffi cannot
hold two anonymous members with the same field name; the byte layout is the
kernel's. Enumerations are not declared here: they live in :mod:`.consts`.

:data:`CDEF` is the one source. Parsing C at every start costs a tenth of a
second and pycparser's memory, so the parsed form is kept in the generated
module :mod:`._ffi` (cffi's out-of-line ABI mode: plain Python, nothing
compiled); :func:`generate` rewrites it, and a test checks that it matches.
"""

from __future__ import annotations

import os

CDEF = """
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef int32_t __s32;
typedef uint64_t __u64;

union bpf_attr {
    struct {                                /* BPF_MAP_CREATE */
        __u32 map_type;
        __u32 key_size;
        __u32 value_size;
        __u32 max_entries;
        __u32 map_flags;
        __u32 inner_map_fd;
        __u32 numa_node;
        char map_name[16];
        __u32 map_ifindex;
        __u32 btf_fd;
        __u32 btf_key_type_id;
        __u32 btf_value_type_id;
        __u32 btf_vmlinux_value_type_id;
        __u64 map_extra;
        __s32 value_type_btf_obj_fd;
        __s32 map_token_fd;
    } map_create;
    struct {                                /* BPF_MAP_*_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_MAP_FREEZE */
        __u32 map_fd;
        __u64 key;
        union {
            __u64 value;
            __u64 next_key;
        };
        __u64 flags;
    } elem;
    struct {                                /* BPF_MAP_*_BATCH */
        __u64 in_batch;
        __u64 out_batch;
        __u64 keys;
        __u64 values;
        __u32 count;
        __u32 map_fd;
        __u64 elem_flags;
        __u64 flags;
    } batch;
    struct {                                /* BPF_PROG_LOAD */
        __u32 prog_type;
        __u32 insn_cnt;
        __u64 insns;
        __u64 license;
        __u32 log_level;
        __u32 log_size;
        __u64 log_buf;
        __u32 kern_version;
        __u32 prog_flags;
        char prog_name[16];
        __u32 prog_ifindex;
        __u32 expected_attach_type;
        __u32 prog_btf_fd;
        __u32 func_info_rec_size;
        __u64 func_info;
        __u32 func_info_cnt;
        __u32 line_info_rec_size;
        __u64 line_info;
        __u32 line_info_cnt;
        __u32 attach_btf_id;
        union {
            __u32 attach_prog_fd;
            __u32 attach_btf_obj_fd;
        };
        __u32 core_relo_cnt;
        __u64 fd_array;
        __u64 core_relos;
        __u32 core_relo_rec_size;
        __u32 log_true_size;
    } prog_load;
    struct {                                /* BPF_OBJ_PIN, BPF_OBJ_GET */
        __u64 pathname;
        __u32 bpf_fd;
        __u32 file_flags;
        __s32 path_fd;
    } obj;
    struct {                                /* BPF_PROG_ATTACH, BPF_PROG_DETACH */
        union {
            __u32 target_fd;
            __u32 target_ifindex;
        };
        __u32 attach_bpf_fd;
        __u32 attach_type;
        __u32 attach_flags;
        __u32 replace_bpf_fd;
        union {
            __u32 relative_fd;
            __u32 relative_id;
        };
        __u64 expected_revision;
    } attach;
    struct {                                /* BPF_PROG_TEST_RUN */
        __u32 prog_fd;
        __u32 retval;
        __u32 data_size_in;
        __u32 data_size_out;
        __u64 data_in;
        __u64 data_out;
        __u32 repeat;
        __u32 duration;
        __u32 ctx_size_in;
        __u32 ctx_size_out;
        __u64 ctx_in;
        __u64 ctx_out;
        __u32 flags;
        __u32 cpu;
        __u32 batch_size;
    } test;
    struct {                                /* BPF_*_GET_NEXT_ID, BPF_*_GET_FD_BY_ID */
        union {
            __u32 start_id;
            __u32 prog_id;
            __u32 map_id;
            __u32 btf_id;
            __u32 link_id;
        };
        __u32 next_id;
        __u32 open_flags;
    } by_id;
    struct {                                /* BPF_OBJ_GET_INFO_BY_FD */
        __u32 bpf_fd;
        __u32 info_len;
        __u64 info;
    } info;
    struct {                                /* BPF_PROG_QUERY */
        union {
            __u32 target_fd;
            __u32 target_ifindex;
        };
        __u32 attach_type;
        __u32 query_flags;
        __u32 attach_flags;
        __u64 prog_ids;
        union {
            __u32 prog_cnt;
            __u32 count;
        };
        __u64 prog_attach_flags;
        __u64 link_ids;
        __u64 link_attach_flags;
        __u64 revision;
    } query;
    struct {                                /* BPF_RAW_TRACEPOINT_OPEN */
        __u64 name;
        __u32 prog_fd;
        __u64 cookie;
    } raw_tracepoint;
    struct {                                /* BPF_BTF_LOAD */
        __u64 btf;
        __u64 btf_log_buf;
        __u32 btf_size;
        __u32 btf_log_size;
        __u32 btf_log_level;
        __u32 btf_log_true_size;
        __u32 btf_flags;
        __s32 btf_token_fd;
    } btf_load;
    struct {                                /* BPF_LINK_CREATE */
        union {
            __u32 prog_fd;
            __u32 map_fd;
        };
        union {
            __u32 target_fd;
            __u32 target_ifindex;
        };
        __u32 attach_type;
        __u32 flags;
        union {
            __u32 target_btf_id;
            struct {
                __u64 iter_info;
                __u32 iter_info_len;
            };
            struct {
                __u64 bpf_cookie;
            } perf_event;
            struct {
                __u32 flags;
                __u32 cnt;
                __u64 syms;
                __u64 addrs;
                __u64 cookies;
            } kprobe_multi;
            struct {
                __u32 target_btf_id;
                __u64 cookie;
            } tracing;
            struct {
                __u32 pf;
                __u32 hooknum;
                __s32 priority;
                __u32 flags;
            } netfilter;
            struct {
                union {
                    __u32 relative_fd;
                    __u32 relative_id;
                };
                __u64 expected_revision;
            } tcx;
            struct {
                __u64 path;
                __u64 offsets;
                __u64 ref_ctr_offsets;
                __u64 cookies;
                __u32 cnt;
                __u32 flags;
                __u32 pid;
            } uprobe_multi;
        };
    } link_create;
    struct {                                /* BPF_LINK_UPDATE */
        __u32 link_fd;
        union {
            __u32 new_prog_fd;
            __u32 new_map_fd;
        };
        __u32 flags;
        union {
            __u32 old_prog_fd;
            __u32 old_map_fd;
        };
    } link_update;
    struct {                                /* BPF_LINK_DETACH */
        __u32 link_fd;
    } link_detach;
    struct {                                /* BPF_ENABLE_STATS */
        __u32 type;
    } enable_stats;
    struct {                                /* BPF_ITER_CREATE */
        __u32 link_fd;
        __u32 flags;
    } iter_create;
    struct {                                /* BPF_PROG_BIND_MAP */
        __u32 prog_fd;
        __u32 map_fd;
        __u32 flags;
    } prog_bind_map;
};

struct bpf_prog_info {
    __u32 type;
    __u32 id;
    __u8 tag[8];
    __u32 jited_prog_len;
    __u32 xlated_prog_len;
    __u64 jited_prog_insns;
    __u64 xlated_prog_insns;
    __u64 load_time;
    __u32 created_by_uid;
    __u32 nr_map_ids;
    __u64 map_ids;
    char name[16];
    __u32 ifindex;
    __u32 gpl_compatible:1;
    __u64 netns_dev;
    __u64 netns_ino;
    __u32 nr_jited_ksyms;
    __u32 nr_jited_func_lens;
    __u64 jited_ksyms;
    __u64 jited_func_lens;
    __u32 btf_id;
    __u32 func_info_rec_size;
    __u64 func_info;
    __u32 nr_func_info;
    __u32 nr_line_info;
    __u64 line_info;
    __u64 jited_line_info;
    __u32 nr_jited_line_info;
    __u32 line_info_rec_size;
    __u32 jited_line_info_rec_size;
    __u32 nr_prog_tags;
    __u64 prog_tags;
    __u64 run_time_ns;
    __u64 run_cnt;
    __u64 recursion_misses;
    __u32 verified_insns;
    __u32 attach_btf_obj_id;
    __u32 attach_btf_id;
};

struct bpf_map_info {
    __u32 type;
    __u32 id;
    __u32 key_size;
    __u32 value_size;
    __u32 max_entries;
    __u32 map_flags;
    char name[16];
    __u32 ifindex;
    __u32 btf_vmlinux_value_type_id;
    __u64 netns_dev;
    __u64 netns_ino;
    __u32 btf_id;
    __u32 btf_key_type_id;
    __u32 btf_value_type_id;
    __u32 btf_vmlinux_id;
    __u64 map_extra;
};

struct bpf_link_info {
    __u32 type;
    __u32 id;
    __u32 prog_id;
    union {
        struct {
            __u64 tp_name;
            __u32 tp_name_len;
            __u64 cookie;
        } raw_tracepoint;
        struct {
            __u32 attach_type;
            __u32 target_obj_id;
            __u32 target_btf_id;
            __u64 cookie;
        } tracing;
        struct {
            __u64 cgroup_id;
            __u32 attach_type;
        } cgroup;
        struct {
            __u32 netns_ino;
            __u32 attach_type;
        } netns;
        struct {
            __u32 ifindex;
        } xdp;
        struct {
            __u32 ifindex;
            __u32 attach_type;
        } tcx;
        __u64 _size[6];                     /* the largest member (uprobe_multi) is 48 bytes */
    };
};

struct perf_event_attr {
    __u32 type;
    __u32 size;
    __u64 config;
    union {
        __u64 sample_period;
        __u64 sample_freq;
    };
    __u64 sample_type;
    __u64 read_format;
    __u64 disabled:1, inherit:1, pinned:1, exclusive:1, exclude_user:1,
          exclude_kernel:1, exclude_hv:1, exclude_idle:1, mmap:1, comm:1,
          freq:1, inherit_stat:1, enable_on_exec:1, task:1, watermark:1,
          precise_ip:2, mmap_data:1, sample_id_all:1, exclude_host:1,
          exclude_guest:1, exclude_callchain_kernel:1,
          exclude_callchain_user:1, mmap2:1, comm_exec:1, use_clockid:1,
          context_switch:1, write_backward:1, namespaces:1, ksymbol:1,
          bpf_event:1, aux_output:1, cgroup:1, text_poke:1, build_id:1,
          inherit_thread:1, remove_on_exec:1, sigtrap:1, __reserved_1:26;
    union {
        __u32 wakeup_events;
        __u32 wakeup_watermark;
    };
    __u32 bp_type;
    union {
        __u64 bp_addr;
        __u64 kprobe_func;
        __u64 uprobe_path;
        __u64 config1;
    };
    union {
        __u64 bp_len;
        __u64 kprobe_addr;
        __u64 probe_offset;
        __u64 config2;
    };
    __u64 branch_sample_type;
    __u64 sample_regs_user;
    __u32 sample_stack_user;
    __s32 clockid;
    __u64 sample_regs_intr;
    __u32 aux_watermark;
    __u16 sample_max_stack;
    __u16 __reserved_2;
    __u32 aux_sample_size;
    __u32 __reserved_3;
    __u64 sig_data;
    __u64 config3;
};

long syscall(long number, ...);
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
int setns(int fd, int nstype);
int mount(const char *source, const char *target, const char *fstype,
          unsigned long flags, const void *data);
"""

GENERATED = os.path.join(os.path.dirname(__file__), "_ffi.py")


def generate(path: str = GENERATED) -> None:
    """Write the out-of-line ABI module for :data:`CDEF` to *path*."""
    import cffi

    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source("pybpfasm.sys._ffi", None)
    builder.emit_python_code(str(path))


from ._ffi import ffi  # noqa: E402 - generated from CDEF above

#: the C library already loaded into this process (syscall, ioctl, mmap, mount)
libc = ffi.dlopen(None)
