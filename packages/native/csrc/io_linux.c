/* Linux syscalls for TAP/TUN and batched UDP. See io.h for the contract of each function. */
#define _GNU_SOURCE
#include "io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
/* Staging room per GRO message: a coalesced run is at most one 64 KiB skb. */
#define OVL_GRO_MSG_BYTES 65536
/* Messages per GRO recvmmsg, whatever the batch size: bounds the staging area to 4 MiB. */
#define OVL_GRO_MAX_MSGS 64
#define OVL_GRO_CMSG_SPACE CMSG_SPACE(sizeof(int))
/* Kernel limits for one UDP GSO message: segments and payload bytes. */
#define OVL_GSO_MAX_SEGMENTS 64
#define OVL_GSO_MAX_BYTES 65000

/* virtio_net_hdr_mrg_rxbuf: the header size asked for with TUNSETVNETHDRSZ. */
#define VNET_HDR_LEN 12

struct ovl_batch {
  uint32_t max;
  uint8_t *cmsg; /* one UDP_SEGMENT control message per mmsghdr */
  struct mmsghdr *msgs;
  struct iovec *iov;
  struct sockaddr_in6 *addrs;
  int32_t *spare; /* slots that held a dropped datagram, to hand back after the good ones */
  /* UDP GRO staging (NULL until ovl_udp_gro_enable): received messages not yet split into slots
     are messages [gro_cur, gro_n), the current one from byte gro_off. */
  uint8_t *gro_buf;
  unsigned gro_max; /* messages the staging area holds */
  /* Its own headers, not msgs/iov/addrs: a send from inside the sink must not overwrite what
     is still pending. */
  struct mmsghdr *gro_msgs;
  struct iovec *gro_iov;
  struct sockaddr_in6 *gro_addrs;
  uint8_t *gro_cmsg;
  int32_t *gro_seg; /* segment size per message (its length when not coalesced) */
  unsigned gro_n, gro_cur;
  uint32_t gro_off;
  /* Deferred copies (ovl_udp_defer_enable): per pool slot, where its datagram is in the
     staging area (NULL: not deferred), its length and the fill it came from. */
  int defer;
  uint32_t gro_gen;
  const uint8_t **dsrc;
  int32_t *dlen;
  uint32_t *dgen;
  uint32_t dn;
  const uint8_t *ddata; /* the pool slab the entries are for */
};

/* The deferring socket of this thread (ovl_defer_take has only the pool slab to go by). */
static _Thread_local struct ovl_batch *defer_owner;

/* Discard target: a dropped frame is read here so a level-triggered poll does not spin. */
static uint8_t scratch[65536 + VNET_HDR_LEN];

struct ovl_batch *ovl_batch_new(uint32_t max) {
  struct ovl_batch *b = calloc(1, sizeof(*b));
  if (!b) return NULL;
  b->max = max;
  b->msgs = calloc(max, sizeof(*b->msgs));
  b->iov = calloc(max, sizeof(*b->iov));
  b->addrs = calloc(max, sizeof(*b->addrs));
  b->spare = calloc(max, sizeof(*b->spare));
  b->cmsg = calloc(max, CMSG_SPACE(sizeof(uint16_t)));
  if (!b->msgs || !b->iov || !b->addrs || !b->spare || !b->cmsg) {
    ovl_batch_free(b);
    return NULL;
  }
  return b;
}

void ovl_batch_free(struct ovl_batch *b) {
  if (!b) return;
  free(b->msgs);
  free(b->iov);
  free(b->addrs);
  free(b->spare);
  free(b->cmsg);
  free(b->gro_buf);
  free(b->gro_msgs);
  free(b->gro_iov);
  free(b->gro_addrs);
  free(b->gro_cmsg);
  free(b->gro_seg);
  free(b->dsrc);
  free(b->dlen);
  free(b->dgen);
  if (defer_owner == b) defer_owner = NULL;
  free(b);
}

int ovl_tap_open(const char *name, int flags, char *out_name, const char **syscall) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *syscall = "open";
    return -errno;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = (short)(((flags & OVL_TAP_TUN) ? IFF_TUN : IFF_TAP) | IFF_NO_PI);
  if (flags & OVL_TAP_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
  if (flags & OVL_TAP_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    *syscall = "ioctl(TUNSETIFF)";
    return -e;
  }
  if (flags & OVL_TAP_VNET_HDR) {
    int sz = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      int e = errno;
      close(fd);
      *syscall = "ioctl(TUNSETVNETHDRSZ)";
      return -e;
    }
  }
  if ((flags & OVL_TAP_OFFLOAD) && ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4)) < 0) {
    int e = errno;
    close(fd);
    *syscall = "ioctl(TUNSETOFFLOAD)";
    return -e;
  }
  memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
  out_name[IFNAMSIZ - 1] = 0;
  return fd;
}

static int ctl_socket(const char **syscall) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *syscall = "socket";
    return -errno;
  }
  return s;
}

int ovl_link_set(const char *name, int mtu, int txqlen, int up, const char **syscall) {
  int s = ctl_socket(syscall);
  if (s < 0) return s;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  int rc = 0;
  if (mtu > 0) {
    ifr.ifr_mtu = mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
      rc = -errno;
      *syscall = "ioctl(SIOCSIFMTU)";
    }
  }
  if (rc == 0 && txqlen > 0) {
    ifr.ifr_qlen = txqlen;
    if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0) {
      rc = -errno;
      *syscall = "ioctl(SIOCSIFTXQLEN)";
    }
  }
  if (rc == 0 && up) {
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
      rc = -errno;
      *syscall = "ioctl(SIOCGIFFLAGS)";
    } else {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        rc = -errno;
        *syscall = "ioctl(SIOCSIFFLAGS)";
      }
    }
  }
  close(s);
  return rc;
}

int ovl_link_get_mtu(const char *name, const char **syscall) {
  int s = ctl_socket(syscall);
  if (s < 0) return s;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  int rc = ioctl(s, SIOCGIFMTU, &ifr) < 0 ? -errno : ifr.ifr_mtu;
  if (rc < 0) *syscall = "ioctl(SIOCGIFMTU)";
  close(s);
  return rc;
}

/* Socket buffer sizes: the FORCE variants pass rmem_max/wmem_max as root; else the plain ones. */
static int set_buf(int fd, int force_opt, int opt, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof(bytes)) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

int ovl_udp_open(int family, const char *address, int port, int reuseport, int rcvbuf, int sndbuf,
                 const char **syscall) {
  int af = family == 6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof(ss));
  if (af == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, address, &sin->sin_addr) != 1) {
      *syscall = "inet_pton";
      return -EINVAL;
    }
    sl = sizeof(*sin);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, address, &sin6->sin6_addr) != 1) {
      *syscall = "inet_pton";
      return -EINVAL;
    }
    sl = sizeof(*sin6);
  }
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *syscall = "socket";
    return -errno;
  }
  int one = 1, zero = 0;
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    *syscall = "setsockopt(SO_REUSEPORT)";
    goto fail;
  }
  if (rcvbuf > 0 && set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf) < 0) {
    *syscall = "setsockopt(SO_RCVBUF)";
    goto fail;
  }
  if (sndbuf > 0 && set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf) < 0) {
    *syscall = "setsockopt(SO_SNDBUF)";
    goto fail;
  }
  if (af == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0) {
    *syscall = "setsockopt(IPV6_V6ONLY)";
    goto fail;
  }
  /* RFC 7348: VTEPs must not fragment. An oversized datagram fails with EMSGSIZE instead. */
  int pmtu = IP_PMTUDISC_DO;
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu)) < 0) {
    *syscall = "setsockopt(IP_MTU_DISCOVER)";
    goto fail;
  }
  if (af == AF_INET6) {
    int pmtu6 = IPV6_PMTUDISC_DO;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu6, sizeof(pmtu6)) < 0) {
      *syscall = "setsockopt(IPV6_MTU_DISCOVER)";
      goto fail;
    }
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    *syscall = "bind";
    goto fail;
  }
  return fd;
fail:;
  int e = errno;
  close(fd);
  return -e;
}

int ovl_udp_local_port(int fd, const char **syscall) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
    *syscall = "getsockname";
    return -errno;
  }
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/*
 * Room from a slot's current offset to the end of the slot. Reads use all of it (tailroom
 * included) so a packet longer than `capacity` is seen whole and dropped, not cut.
 */
static int slot_room(const struct ovl_pool *p, int32_t slot, int whole) {
  if (slot < 0 || (uint32_t)slot >= p->count) return -1;
  int64_t base = (int64_t)slot * p->stride;
  int64_t off = p->off[slot];
  int64_t end = base + p->stride;
  if (off < base || off >= end || (size_t)end > p->data_len) return -1;
  int64_t room = end - off;
  if (!whole && room > p->capacity) room = p->capacity;
  return (int)room;
}

static int slot_valid(const struct ovl_pool *p, int32_t slot, int headroom_needed) {
  if (slot < 0 || (uint32_t)slot >= p->count) return 0;
  int64_t base = (int64_t)slot * p->stride;
  int64_t off = p->off[slot];
  int64_t len = p->len[slot];
  return off - headroom_needed >= base && len >= 0 && off + len <= base + p->stride &&
         (size_t)(base + p->stride) <= p->data_len;
}

/* One send or write error: the total and its errno class (e == 0: the caller's slot or group
   description was wrong). */
static void count_tx_error(double *ctr, int e) {
  ctr[OVL_TX_ERRORS]++;
  switch (e) {
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
    case EADDRNOTAVAIL:
    case EINVAL:
      ctr[OVL_TX_ERR_NO_ROUTE]++;
      break;
    case EPERM:
    case EACCES:
      ctr[OVL_TX_ERR_FILTERED]++;
      break;
    case EMSGSIZE:
      ctr[OVL_TX_ERR_TOO_BIG]++;
      break;
    default:
      ctr[OVL_TX_ERR_OTHER]++;
  }
}

static int transient(int e) {
  return e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ENOBUFS || e == ENOMEM || e == ECONNREFUSED;
}

int ovl_tap_read(int fd, int vnet_hdr, const struct ovl_pool *p, int32_t *slots, int n, double *ctr,
                 const char **syscall) {
  int hdr = vnet_hdr ? VNET_HDR_LEN : 0;
  int got = 0;
  /* Bounded: each iteration either fills a slot or drops a frame; at most 2n reads per call. */
  for (int tries = 0; got < n && tries < 2 * n; tries++) {
    int32_t slot = slots[got];
    int room = slot_room(p, slot, 1);
    if (room < 0 || p->off[slot] - hdr < (int64_t)slot * p->stride) {
      *syscall = "slot";
      return -EINVAL;
    }
    uint8_t *dst = p->data + p->off[slot] - hdr;
    /* One extra byte tells an oversized frame from one that just fits. */
    ssize_t r = read(fd, dst, (size_t)room + hdr);
    ctr[OVL_RX_SYSCALLS]++;
    if (r < 0) {
      int e = errno;
      if (transient(e)) break;
      if (e == EFAULT) {
        /* The frame did not fit the slot (the kernel consumed it). */
        ctr[OVL_RX_TRUNC_DROPS]++;
        continue;
      }
      ctr[OVL_RX_ERRORS]++;
      *syscall = "read";
      return got > 0 ? got : -e;
    }
    if (r == 0) break;
    if (r - hdr > (ssize_t)p->capacity) {
      ctr[OVL_RX_TRUNC_DROPS]++;
      continue;
    }
    if (r < hdr) {
      ctr[OVL_RX_ERRORS]++;
      continue;
    }
    p->len[slot] = (int32_t)(r - hdr);
    ctr[OVL_RX_PACKETS]++;
    ctr[OVL_RX_BYTES] += (double)(r - hdr);
    got++;
  }
  return got;
}

static void set_source(const struct ovl_pool *p, int32_t slot, const struct sockaddr_in6 *sa) {
  uint8_t *a = p->addr + (size_t)slot * 16;
  if (sa->sin6_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    p->family[slot] = 4;
    memcpy(a, &s4->sin_addr, 4);
    p->port[slot] = ntohs(s4->sin_port);
  } else if (IN6_IS_ADDR_V4MAPPED(&sa->sin6_addr)) {
    p->family[slot] = 4;
    memcpy(a, &sa->sin6_addr.s6_addr[12], 4);
    p->port[slot] = ntohs(sa->sin6_port);
  } else {
    p->family[slot] = 6;
    memcpy(a, &sa->sin6_addr, 16);
    p->port[slot] = ntohs(sa->sin6_port);
  }
}

/* recvmmsg into the prepared msgs[0..vlen). Returns messages received, 0 when none, or -errno. */
static int recv_batch(int fd, struct mmsghdr *msgs, unsigned vlen, double *ctr, const char **syscall) {
  int r = recvmmsg(fd, msgs, vlen, MSG_DONTWAIT, NULL);
  ctr[OVL_RX_SYSCALLS]++;
  if (r >= 0) return r;
  int e = errno;
  if (transient(e)) return 0;
  ctr[OVL_RX_ERRORS]++;
  *syscall = "recvmmsg";
  return -e;
}

int ovl_udp_recv(int fd, struct ovl_batch *b, const struct ovl_pool *p, int32_t *slots, int n, double *ctr,
                 const char **syscall) {
  unsigned vlen = (unsigned)n < b->max ? (unsigned)n : b->max;
  for (unsigned i = 0; i < vlen; i++) {
    int32_t slot = slots[i];
    int room = slot_room(p, slot, 1);
    if (room < 0) {
      *syscall = "slot";
      return -EINVAL;
    }
    b->iov[i].iov_base = p->data + p->off[slot];
    b->iov[i].iov_len = (size_t)room;
    struct msghdr *h = &b->msgs[i].msg_hdr;
    h->msg_name = &b->addrs[i];
    h->msg_namelen = sizeof(b->addrs[i]);
    h->msg_iov = &b->iov[i];
    h->msg_iovlen = 1;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
  }
  int r = recv_batch(fd, b->msgs, vlen, ctr, syscall);
  if (r <= 0) return r;
  int good = 0, bad = 0;
  for (int i = 0; i < r; i++) {
    int32_t slot = slots[i];
    if ((b->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || b->msgs[i].msg_len > p->capacity) {
      ctr[OVL_RX_TRUNC_DROPS]++;
      b->spare[bad++] = slot;
      continue;
    }
    p->len[slot] = (int32_t)b->msgs[i].msg_len;
    set_source(p, slot, &b->addrs[i]);
    ctr[OVL_RX_PACKETS]++;
    ctr[OVL_RX_BYTES] += b->msgs[i].msg_len;
    slots[good++] = slot;
  }
  for (int i = 0; i < bad; i++) slots[good + i] = b->spare[i];
  return good;
}

/* The UDP_GRO segment size of a received message, or 0 when it carries one datagram. */
static int gro_segment(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int seg;
      memcpy(&seg, CMSG_DATA(c), sizeof(seg));
      return seg > 0 ? seg : 0;
    }
  }
  return 0;
}

/* How many datagrams a message of `len` bytes with segment size `seg` (0: not coalesced) holds. */
static uint32_t gro_count(size_t len, int seg) {
  if (seg <= 0 || len <= (size_t)seg) return 1;
  return (uint32_t)((len + (size_t)seg - 1) / (size_t)seg);
}

int ovl_discard(int fd, int is_udp, int gro, int n, double *ctr) {
  int read_n = 0;
  double dropped = 0;
  for (int i = 0; i < n; i++) {
    ssize_t r;
    uint32_t k = 1;
    if (is_udp && gro) {
      /* MSG_TRUNC returns the whole length, so the datagrams of a coalesced message are counted. */
      uint8_t cbuf[OVL_GRO_CMSG_SPACE];
      struct iovec iov = {.iov_base = scratch, .iov_len = 1};
      struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
      r = recvmsg(fd, &h, MSG_DONTWAIT | MSG_TRUNC);
      if (r >= 0) k = gro_count((size_t)r, gro_segment(&h));
    } else {
      r = is_udp ? recv(fd, scratch, 1, MSG_DONTWAIT | MSG_TRUNC) : read(fd, scratch, sizeof(scratch));
    }
    ctr[OVL_RX_SYSCALLS]++;
    /* EFAULT: a TAP frame longer than scratch (a 64 KiB TSO frame) was consumed all the same. */
    if (r < 0 && (is_udp || errno != EFAULT)) break;
    read_n++;
    dropped += k;
  }
  ctr[OVL_RX_NOBUF_DROPS] += dropped;
  return read_n;
}

int ovl_udp_gro_enable(int fd, struct ovl_batch *b, const char **syscall) {
  int one = 1;
  if (!b->gro_buf) {
    b->gro_max = b->max < OVL_GRO_MAX_MSGS ? b->max : OVL_GRO_MAX_MSGS;
    b->gro_buf = malloc((size_t)b->gro_max * OVL_GRO_MSG_BYTES);
    b->gro_cmsg = calloc(b->gro_max, OVL_GRO_CMSG_SPACE);
    b->gro_seg = calloc(b->gro_max, sizeof(*b->gro_seg));
    b->gro_msgs = calloc(b->gro_max, sizeof(*b->gro_msgs));
    b->gro_iov = calloc(b->gro_max, sizeof(*b->gro_iov));
    b->gro_addrs = calloc(b->gro_max, sizeof(*b->gro_addrs));
    if (!b->gro_buf || !b->gro_cmsg || !b->gro_seg || !b->gro_msgs || !b->gro_iov || !b->gro_addrs) {
      *syscall = "malloc";
      return -ENOMEM;
    }
  }
  if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0) {
    *syscall = "setsockopt(UDP_GRO)";
    return -errno;
  }
  return 0;
}

int ovl_udp_gro_pending(const struct ovl_batch *b) {
  return b->gro_buf && b->gro_cur < b->gro_n;
}

int ovl_udp_gro_drop_pending(struct ovl_batch *b, double *ctr) {
  int dropped = 0;
  for (; b->gro_cur < b->gro_n; b->gro_cur++, b->gro_off = 0) {
    const struct msghdr *h = &b->gro_msgs[b->gro_cur].msg_hdr;
    size_t len = b->gro_msgs[b->gro_cur].msg_len;
    if (h->msg_flags & MSG_TRUNC) continue; /* counted as too big when received */
    int seg = b->gro_seg[b->gro_cur];
    size_t left = len - b->gro_off;
    dropped += seg > 0 ? (int)gro_count(left, seg) : (b->gro_off == 0);
  }
  ctr[OVL_RX_NOBUF_DROPS] += dropped;
  return dropped;
}

void ovl_udp_defer_enable(struct ovl_batch *b) {
  b->defer = 1;
  defer_owner = b;
}

/* The deferral table sized for pool `p` (1), or 0: then this receive copies everything. */
static int defer_ready(struct ovl_batch *b, const struct ovl_pool *p) {
  if (!b->defer || defer_owner != b) return 0;
  if (b->dn < p->count || b->ddata != p->data) {
    free(b->dsrc);
    free(b->dlen);
    free(b->dgen);
    b->dsrc = calloc(p->count, sizeof(*b->dsrc));
    b->dlen = calloc(p->count, sizeof(*b->dlen));
    b->dgen = calloc(p->count, sizeof(*b->dgen));
    b->dn = b->dsrc && b->dlen && b->dgen ? p->count : 0;
    b->ddata = p->data;
  }
  return b->dn >= p->count;
}

int ovl_defer_take(const uint8_t *data, int32_t slot, const uint8_t *hdr, int32_t len, const uint8_t **src) {
  struct ovl_batch *b = defer_owner;
  if (!b || b->ddata != data || slot < 0 || (uint32_t)slot >= b->dn || !b->dsrc[slot]) return 0;
  const uint8_t *s = b->dsrc[slot];
  b->dsrc[slot] = NULL;
  /* The same fill of the staging area, the same length and header as received. */
  if (b->dgen[slot] != b->gro_gen || b->dlen[slot] != len || memcmp(s, hdr, 16) != 0) return -1;
  *src = s;
  return 1;
}

/* One recvmmsg into the staging area. Returns messages received, 0 when none, or -errno. */
static int gro_fill(int fd, struct ovl_batch *b, double *ctr, const char **syscall) {
  b->gro_gen++; /* what was deferred from the previous fill is gone */
  for (unsigned i = 0; i < b->gro_max; i++) {
    b->gro_iov[i].iov_base = b->gro_buf + (size_t)i * OVL_GRO_MSG_BYTES;
    b->gro_iov[i].iov_len = OVL_GRO_MSG_BYTES;
    struct msghdr *h = &b->gro_msgs[i].msg_hdr;
    h->msg_name = &b->gro_addrs[i];
    h->msg_namelen = sizeof(b->gro_addrs[i]);
    h->msg_iov = &b->gro_iov[i];
    h->msg_iovlen = 1;
    h->msg_control = b->gro_cmsg + (size_t)i * OVL_GRO_CMSG_SPACE;
    h->msg_controllen = OVL_GRO_CMSG_SPACE;
    h->msg_flags = 0;
  }
  int r = recv_batch(fd, b->gro_msgs, b->gro_max, ctr, syscall);
  if (r <= 0) return r;
  for (int i = 0; i < r; i++) {
    struct msghdr *h = &b->gro_msgs[i].msg_hdr;
    int seg = gro_segment(h);
    size_t len = b->gro_msgs[i].msg_len;
    if (h->msg_flags & MSG_TRUNC) {
      /* Longer than the staging buffer: the kernel cut it; nothing of it is delivered. */
      ctr[OVL_RX_TRUNC_DROPS] += gro_count(len, seg);
      continue;
    }
    uint32_t k = gro_count(len, seg);
    b->gro_seg[i] = k > 1 ? seg : (int32_t)len;
    if (k > 1) {
      ctr[OVL_RX_GRO_MESSAGES]++;
      ctr[OVL_RX_GRO_DATAGRAMS] += k;
    }
  }
  b->gro_n = (unsigned)r;
  b->gro_cur = 0;
  b->gro_off = 0;
  return r;
}

int ovl_udp_recv_gro(int fd, struct ovl_batch *b, const struct ovl_pool *p, int32_t *slots, int n, double *ctr,
                     const char **syscall) {
  if (!ovl_udp_gro_pending(b)) {
    int r = gro_fill(fd, b, ctr, syscall);
    if (r <= 0) return r;
  }
  int good = 0;
  int defer = defer_ready(b, p);
  /* Each step fills a slot or drops one datagram, so this ends after at most n + pending steps. */
  while (good < n && b->gro_cur < b->gro_n) {
    unsigned m = b->gro_cur;
    const struct msghdr *h = &b->gro_msgs[m].msg_hdr;
    size_t len = b->gro_msgs[m].msg_len;
    if (h->msg_flags & MSG_TRUNC) {
      b->gro_cur++;
      b->gro_off = 0;
      continue;
    }
    size_t seg = (size_t)b->gro_seg[m];
    size_t take = len - b->gro_off < seg ? len - b->gro_off : seg; /* an empty datagram: seg == len == 0 */
    int32_t slot = slots[good];
    int room = slot_room(p, slot, 1);
    if (room < 0) {
      *syscall = "slot";
      return -EINVAL;
    }
    if (take > p->capacity || take > (size_t)room) {
      ctr[OVL_RX_TRUNC_DROPS]++; /* the slot stays unused for the next datagram */
    } else {
      const uint8_t *from = b->gro_buf + (size_t)m * OVL_GRO_MSG_BYTES + b->gro_off;
      if (defer && take >= 32 && from[0] == 4 && from[1] == 0 && from[2] == 0 && from[3] == 0) {
        memcpy(p->data + p->off[slot], from, 16);
        b->dsrc[slot] = from;
        b->dlen[slot] = (int32_t)take;
        b->dgen[slot] = b->gro_gen;
      } else {
        memcpy(p->data + p->off[slot], from, take);
        if (defer) b->dsrc[slot] = NULL;
      }
      p->len[slot] = (int32_t)take;
      set_source(p, slot, &b->gro_addrs[m]);
      ctr[OVL_RX_PACKETS]++;
      ctr[OVL_RX_BYTES] += (double)take;
      good++;
    }
    b->gro_off += (uint32_t)take;
    if (b->gro_off >= len) {
      b->gro_cur++;
      b->gro_off = 0;
    }
  }
  return good;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is writable or the deadline passes. Returns 1 when writable. */
static int wait_writable(int fd, int64_t deadline) {
  int64_t left = deadline - now_ms();
  if (left <= 0) return 0;
  struct pollfd pfd = {.fd = fd, .events = POLLOUT};
  return poll(&pfd, 1, (int)left) > 0;
}

/* Write frames one by one; *deadline (0: not set yet) bounds the waits of the whole call. A slot
   described wrongly (out of the pool, or without room for the header in front) is counted and
   skipped; a write error or a queue that stays full stops. Returns how many were written;
   *settled says how many slots were dealt with (written or skipped). Leaves counting what did not
   go out to the caller. */
static int tap_write_frames(int fd, int hdr, const struct ovl_pool *p, const int32_t *slots, int n, int wait_ms,
                            int64_t *deadline, double *ctr, const char **syscall, int *settled) {
  int sent = 0, i = 0;
  while (i < n) {
    int32_t slot = slots[i];
    if (!slot_valid(p, slot, hdr)) {
      count_tx_error(ctr, 0);
      i++;
      continue;
    }
    uint8_t *src = p->data + p->off[slot] - hdr;
    /* No offloads were negotiated, so a zero header means a complete frame. */
    if (hdr) memset(src, 0, hdr);
    ssize_t r = write(fd, src, (size_t)p->len[slot] + hdr);
    ctr[OVL_TX_SYSCALLS]++;
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        ctr[OVL_TX_EAGAIN]++;
        if (!*deadline) *deadline = now_ms() + wait_ms;
        if (wait_writable(fd, *deadline)) continue;
        break;
      }
      count_tx_error(ctr, e);
      *syscall = "write";
      break;
    }
    ctr[OVL_TX_PACKETS]++;
    ctr[OVL_TX_BYTES] += p->len[slot];
    sent++;
    i++;
  }
  *settled = i;
  return sent;
}

int ovl_tap_write(int fd, int vnet_hdr, const struct ovl_pool *p, const int32_t *slots, int n, int wait_ms,
                  double *ctr, const char **syscall) {
  int64_t deadline = 0;
  int settled;
  int sent = tap_write_frames(fd, vnet_hdr ? VNET_HDR_LEN : 0, p, slots, n, wait_ms, &deadline, ctr, syscall, &settled);
  ctr[OVL_TX_UNSENT] += n - sent;
  return sent;
}

int ovl_tap_write_gso(int fd, struct ovl_batch *b, const struct ovl_pool *p, const int32_t *slots, int n,
                      const int32_t *groups, int ngroups, int wait_ms, double *ctr, const char **syscall) {
  int64_t deadline = 0;
  int done = 0; /* slots dealt with */
  int sent = 0; /* slots written */
  for (int g = 0; g < ngroups && done < n; g++) {
    int k = groups[2 * g], hdr = groups[2 * g + 1];
    /* hdr is counted from each slot's offset: negative would gather bytes before the slot. */
    if (k < 1 || done + k > n || (unsigned)k > b->max || hdr < 0) {
      count_tx_error(ctr, 0);
      break;
    }
    if (k == 1) {
      /* Not coalesced: a plain frame behind a zero header (skipped, counted, if it has no room for it). */
      int settled;
      sent += tap_write_frames(fd, VNET_HDR_LEN, p, slots + done, 1, wait_ms, &deadline, ctr, syscall, &settled);
      if (settled != 1) break;
      done++;
      continue;
    }
    /* A coalesced TCP segment: the first slot holds the virtio-net header (set by JS) and the
       merged headers; the others contribute their payloads after `hdr` header bytes. */
    int ok = slot_valid(p, slots[done], VNET_HDR_LEN);
    size_t total = 0;
    for (int j = 0; ok && j < k; j++) {
      int32_t s = slots[done + j];
      if (j > 0 && (!slot_valid(p, s, 0) || p->len[s] < hdr)) ok = 0;
      if (!ok) break;
      uint8_t *base = p->data + p->off[s];
      b->iov[j].iov_base = j == 0 ? base - VNET_HDR_LEN : base + hdr;
      b->iov[j].iov_len = j == 0 ? (size_t)p->len[s] + VNET_HDR_LEN : (size_t)(p->len[s] - hdr);
      total += j == 0 ? (size_t)p->len[s] : (size_t)(p->len[s] - hdr);
    }
    if (!ok) {
      /* A group described wrongly: count it, skip its slots, go on with the next group. */
      count_tx_error(ctr, 0);
      done += k;
      continue;
    }
    ssize_t r;
    for (;;) {
      r = writev(fd, b->iov, k);
      ctr[OVL_TX_SYSCALLS]++;
      if (r >= 0) break;
      int e = errno;
      if (e == EINTR) continue;
      if ((e == EAGAIN || e == EWOULDBLOCK)) {
        ctr[OVL_TX_EAGAIN]++;
        if (!deadline) deadline = now_ms() + wait_ms;
        if (wait_writable(fd, deadline)) continue;
      } else {
        count_tx_error(ctr, e);
        *syscall = "writev";
      }
      break;
    }
    if (r < 0) break;
    ctr[OVL_TX_PACKETS] += k;
    ctr[OVL_TX_BYTES] += (double)total;
    done += k;
    sent += k;
  }
  ctr[OVL_TX_UNSENT] += n - sent;
  return sent;
}

/* Fill sockaddr `sa` with a slot's destination for a socket of `family`. */
static socklen_t dest_addr(int family, const struct ovl_pool *p, int32_t slot, struct sockaddr_in6 *sa) {
  memset(sa, 0, sizeof(*sa));
  const uint8_t *a = p->addr + (size_t)slot * 16;
  if (family == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(p->port[slot]);
    memcpy(&s4->sin_addr, a, 4);
    return sizeof(*s4);
  }
  sa->sin6_family = AF_INET6;
  sa->sin6_port = htons(p->port[slot]);
  if (p->family[slot] == 4) {
    sa->sin6_addr.s6_addr[10] = 0xff;
    sa->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sa->sin6_addr.s6_addr[12], a, 4);
  } else {
    memcpy(&sa->sin6_addr, a, 16);
  }
  return sizeof(*sa);
}

static int same_dest(const struct ovl_pool *p, int32_t x, int32_t y) {
  return p->family[x] == p->family[y] && p->port[x] == p->port[y] &&
         memcmp(p->addr + (size_t)x * 16, p->addr + (size_t)y * 16, p->family[x] == 4 ? 4 : 16) == 0;
}

int ovl_udp_send(int fd, int family, int *gso, struct ovl_batch *b, const struct ovl_pool *p, const int32_t *slots,
                 int n, int wait_ms, double *ctr, const char **syscall) {
  int64_t deadline = 0;
  int sent = 0; /* datagrams that went out */
  int pos = 0;  /* slots settled: sent, or counted as an error and skipped */
  int stop = 0;
  while (pos < n && !stop) {
    unsigned chunk = (unsigned)(n - pos) < b->max ? (unsigned)(n - pos) : b->max;
    unsigned i = 0, m = 0; /* slots placed, messages built */
    while (i < chunk) {
      int32_t slot = slots[pos + i];
      if (!slot_valid(p, slot, 0) || (p->family[slot] != 4 && p->family[slot] != 6) ||
          (family == 4 && p->family[slot] != 4)) {
        /* Send what is built first; a bad slot at the front of a chunk is counted and skipped. */
        if (m > 0) break;
        count_tx_error(ctr, 0);
        pos++;
        chunk--;
        continue;
      }
      socklen_t sl = dest_addr(family, p, slot, &b->addrs[m]);
      size_t seg = (size_t)p->len[slot], total = seg;
      unsigned cnt = 1;
      b->iov[i].iov_base = p->data + p->off[slot];
      b->iov[i].iov_len = seg;
      /* UDP GSO: a run of datagrams to one VTEP, all `seg` long but the last (which may be
         shorter), leaves as one message the kernel cuts up late (UDP_SEGMENT). */
      while (*gso && seg > 0 && i + cnt < chunk && cnt < OVL_GSO_MAX_SEGMENTS) {
        int32_t s2 = slots[pos + i + cnt];
        if (!slot_valid(p, s2, 0) || !same_dest(p, slot, s2) || (size_t)p->len[s2] > seg || p->len[s2] == 0 ||
            total + (size_t)p->len[s2] > OVL_GSO_MAX_BYTES)
          break;
        b->iov[i + cnt].iov_base = p->data + p->off[s2];
        b->iov[i + cnt].iov_len = (size_t)p->len[s2];
        total += (size_t)p->len[s2];
        cnt++;
        if ((size_t)p->len[s2] < seg) break;
      }
      struct msghdr *h = &b->msgs[m].msg_hdr;
      h->msg_name = &b->addrs[m];
      h->msg_namelen = sl;
      h->msg_iov = &b->iov[i];
      h->msg_iovlen = cnt;
      h->msg_flags = 0;
      if (cnt > 1) {
        uint8_t *buf = b->cmsg + (size_t)m * CMSG_SPACE(sizeof(uint16_t));
        memset(buf, 0, CMSG_SPACE(sizeof(uint16_t)));
        h->msg_control = buf;
        h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gs = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &gs, sizeof(gs));
      } else {
        h->msg_control = NULL;
        h->msg_controllen = 0;
      }
      b->spare[m] = (int32_t)cnt;
      i += cnt;
      m++;
    }
    /* Messages [done, m) are unsettled; pos is the first slot of message `done`. */
    unsigned done = 0;
    while (done < m) {
      int r = sendmmsg(fd, b->msgs + done, m - done, MSG_DONTWAIT);
      ctr[OVL_TX_SYSCALLS]++;
      if (r < 0) {
        int e = errno;
        if (e == EINTR) continue;
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
          ctr[OVL_TX_EAGAIN]++;
          if (!deadline) deadline = now_ms() + wait_ms;
          if (wait_writable(fd, deadline)) continue;
          /* Still full: give up on the rest of the batch (counted as unsent). */
          stop = 1;
          break;
        }
        if (*gso && (e == EIO || e == EINVAL) && b->spare[done] > 1) {
          /* The route cannot take UDP GSO (e.g. no checksum offload): stop using it and build
             the rest of this batch again datagram by datagram, from message `done`. */
          *gso = 0;
          ctr[OVL_TX_GSO_FALLBACKS]++;
          break;
        }
        /* This message's destination failed (no route, firewall, too big): count it, skip it,
           and go on with the next one. The kernel sent nothing of it. */
        count_tx_error(ctr, e);
        *syscall = "sendmmsg";
        pos += b->spare[done];
        done++;
        continue;
      }
      for (int j = 0; j < r; j++) {
        ctr[OVL_TX_PACKETS] += b->spare[done + j];
        ctr[OVL_TX_BYTES] += b->msgs[done + j].msg_len;
        sent += b->spare[done + j];
        pos += b->spare[done + j];
      }
      done += (unsigned)r;
    }
  }
  ctr[OVL_TX_UNSENT] += n - sent;
  return sent;
}
