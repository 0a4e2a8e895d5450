/*
 * Syscall layer of the overlay addon: TAP/TUN and batched UDP on Linux. No N-API here, so the
 * glue (addon.c) stays thin and this file reads as plain POSIX. Every function returns a
 * non-negative result or -errno, and names the failing syscall through *syscall.
 *
 * Packets live in a buffer pool owned by JavaScript (see packages/dataplane/src/pool.ts): a
 * structure of arrays indexed by slot. The pointers below alias that memory; the glue keeps
 * references to the arrays so they stay alive and in place while registered.
 */
#ifndef OVL_IO_H
#define OVL_IO_H

#include <stddef.h>
#include <stdint.h>

struct ovl_pool {
  uint8_t *data;
  size_t data_len;
  int32_t *off;
  int32_t *len;
  uint8_t *family;
  uint8_t *addr; /* 16 bytes per slot */
  uint16_t *port;
  uint32_t count;
  uint32_t stride;
  uint32_t capacity; /* largest frame or datagram payload a slot takes */
};

/* Counter indexes in the Float64Array that JS reads without a native call. */
enum {
  OVL_RX_PACKETS,
  OVL_RX_BYTES,
  OVL_RX_BATCHES,
  OVL_RX_SYSCALLS,
  OVL_RX_NOBUF_DROPS,    /* readable but the pool had no slot: read into scratch and dropped */
  OVL_RX_TRUNC_DROPS,    /* larger than a slot holds */
  OVL_RX_ERRORS,
  OVL_TX_PACKETS,
  OVL_TX_BYTES,
  OVL_TX_SYSCALLS,
  OVL_TX_EAGAIN,         /* kernel queue full when sending; retried briefly, then left unsent */
  OVL_TX_ERRORS,
  OVL_TX_UNSENT,         /* frames or datagrams handed to send/write that did not go out */
  OVL_TX_GSO_FALLBACKS,  /* UDP GSO refused by the route: turned off for the socket */
  OVL_RX_GRO_MESSAGES,   /* UDP GRO: received messages that carried more than one datagram */
  OVL_RX_GRO_DATAGRAMS,  /* ... and how many datagrams they carried */
  /* OVL_TX_ERRORS by errno class (each error counts in the total and in one class): */
  OVL_TX_ERR_NO_ROUTE,   /* ENETUNREACH, EHOSTUNREACH, ENETDOWN, EHOSTDOWN, EADDRNOTAVAIL, EINVAL (blackhole route) */
  OVL_TX_ERR_FILTERED,   /* EPERM, EACCES: a firewall rule or a prohibit route refused it */
  OVL_TX_ERR_TOO_BIG,    /* EMSGSIZE */
  OVL_TX_ERR_OTHER,      /* any other errno, and slots or groups the caller described wrongly */
  OVL_COUNTERS
};

/* TAP/TUN open flags (bit set passed from JS). */
#define OVL_TAP_TUN 1
#define OVL_TAP_VNET_HDR 2
#define OVL_TAP_MULTI_QUEUE 4
/* TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4): the kernel may hand over TCP segments up to 64 KiB and
   packets whose checksum is left to us (needs OVL_TAP_VNET_HDR to say so). */
#define OVL_TAP_OFFLOAD 8

/* Open /dev/net/tun and attach to (or create) the interface `name`. Writes the kernel's name. */
int ovl_tap_open(const char *name, int flags, char *out_name, const char **syscall);
/* Set MTU, transmit queue length and/or bring a link up, by ioctl on a datagram socket.
   mtu/txqlen <= 0 leave them. */
int ovl_link_set(const char *name, int mtu, int txqlen, int up, const char **syscall);
int ovl_link_get_mtu(const char *name, const char **syscall);

/* UDP socket, non-blocking. family 4 or 6; IPv6 sockets are dual-stack. */
int ovl_udp_open(int family, const char *address, int port, int reuseport, int rcvbuf, int sndbuf,
                 const char **syscall);
int ovl_udp_local_port(int fd, const char **syscall);

/* Batch state reused across calls: no allocation per packet or per batch. */
struct ovl_batch;
struct ovl_batch *ovl_batch_new(uint32_t max);
void ovl_batch_free(struct ovl_batch *b);

/*
 * Read up to `n` packets into the slots `slots[0..n)`. Packets that arrive are written into
 * `slots[0..return)` in arrival order; slots that stayed empty (or held a dropped packet) are
 * moved after them so the caller can reuse them. Returns 0 when nothing was ready.
 */
int ovl_tap_read(int fd, int vnet_hdr, const struct ovl_pool *p, int32_t *slots, int n, double *ctr,
                 const char **syscall);
int ovl_udp_recv(int fd, struct ovl_batch *b, const struct ovl_pool *p, int32_t *slots, int n, double *ctr,
                 const char **syscall);
/*
 * UDP GRO (UDP_GRO socket option): the kernel may hand over a run of datagrams of one flow as one
 * message with their segment size in a control message (all `size` long but the last). Enable it
 * on `fd` and give the batch its staging area: one 64 KiB buffer per message of a recvmmsg.
 */
int ovl_udp_gro_enable(int fd, struct ovl_batch *b, const char **syscall);
/*
 * ovl_udp_recv for a GRO socket: one recvmmsg into the staging area (only when nothing is
 * pending), then each datagram is copied into its own slot. Datagrams that did not fit in
 * slots[0..n) stay pending for the next call (ovl_udp_gro_pending), in order.
 */
int ovl_udp_recv_gro(int fd, struct ovl_batch *b, const struct ovl_pool *p, int32_t *slots, int n, double *ctr,
                     const char **syscall);
int ovl_udp_gro_pending(const struct ovl_batch *b);
/*
 * Deferred copies on a GRO socket (for the encrypted overlay): a datagram that looks like
 * WireGuard transport data (≥ 32 bytes, type 4) gets only its 16-byte header copied into the
 * slot; the rest stays in the staging area until the AEAD open (aead.c) authenticates it there
 * and decrypts it straight into the slot, saving the copy. Only for a receiver that opens (or
 * drops) every such datagram with the addon's openBatch before its batch callback returns: the
 * staging area is refilled on a later receive. One socket per thread registers (the last one
 * enabled).
 */
void ovl_udp_defer_enable(struct ovl_batch *b);
/*
 * For the open of `slot` of the pool whose slab is `data` (its first 16 bytes at hdr, len bytes
 * in all): 0 when the slot holds the whole datagram; 1 with *src at the datagram in the staging
 * area; -1 when its bytes are gone (staging refilled, or the slot changed since): the open fails.
 * Either way the slot is no longer deferred after this call.
 */
int ovl_defer_take(const uint8_t *data, int32_t slot, const uint8_t *hdr, int32_t len, const uint8_t **src);
/* Drop what is pending (no pool slot was free), counted as rxNoBufferDrops. Returns how many. */
int ovl_udp_gro_drop_pending(struct ovl_batch *b, double *ctr);
/* Read and discard up to `n` packets (no pool slot was free). Returns how many packets were
   read; for a GRO socket the drop counter counts every datagram of a coalesced message. */
int ovl_discard(int fd, int is_udp, int gro, int n, double *ctr);

/*
 * Send the packets of `slots[0..n)`, in order. Returns how many went out; on a full queue it
 * waits up to wait_ms for room before giving up on the rest. A slot described wrongly (e.g. no
 * headroom for the virtio-net header) is counted as a tx error and skipped.
 */
int ovl_tap_write(int fd, int vnet_hdr, const struct ovl_pool *p, const int32_t *slots, int n, int wait_ms,
                  double *ctr, const char **syscall);
/*
 * TAP with a virtio-net header: write `ngroups` groups of `slots[0..n)` in order. groups[2g] is how
 * many consecutive slots form group g, groups[2g+1] their header length. A group of one is a plain
 * frame; a larger group is one TCP segment for the kernel to take as GSO: the first slot's frame
 * (its virtio-net header already set in the headroom) followed by the others' payloads, gathered
 * by one writev. Returns how many slots went out. A group whose slots are described wrongly is
 * counted as one tx error and skipped; a wrong group list (counts, header length) stops.
 */
int ovl_tap_write_gso(int fd, struct ovl_batch *b, const struct ovl_pool *p, const int32_t *slots, int n,
                      const int32_t *groups, int ngroups, int wait_ms, double *ctr, const char **syscall);
/*
 * *gso: group runs to one destination into UDP_SEGMENT messages; cleared if the route refuses.
 * A message the kernel refuses for its destination (no route, a firewall drop, too big) or a slot
 * described wrongly is counted (txErrors and its class) and skipped: the messages after it still
 * go. Only a full queue that stays full past wait_ms gives up on the rest. Returns how many
 * datagrams went out (not necessarily a prefix of slots).
 */
int ovl_udp_send(int fd, int family, int *gso, struct ovl_batch *b, const struct ovl_pool *p, const int32_t *slots, int n,
                 int wait_ms, double *ctr, const char **syscall);

#endif
