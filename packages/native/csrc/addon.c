/*
 * N-API glue: argument checks, errors as JS errors whose `code` is the errno name, and a libuv
 * poll per descriptor that reads batches into the JS buffer pool and calls JS once per batch.
 * The syscalls live in io_linux.c. Everything here runs on the JS thread that opened the handle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "csum_napi.h"
#include "napi_args.h"
#include "aead_napi.h"
#include "io.h"

/* Room for a name argument; the kernel's limit (IFNAMSIZ) is checked by the syscall. */
#define NAME_ARG_MAX 64
#define KIND_TAP 0
#define KIND_UDP 1
/* create()'s fourth argument for a UDP socket. */
#define UDP_FLAG_GSO 1
#define UDP_FLAG_GRO 2
#define UDP_FLAG_DEFER 4 /* with GRO: deferred copies of transport data (io.h ovl_udp_defer_enable) */
/* Batches read per wake-up before yielding to the event loop, so one busy descriptor cannot
   starve timers and other descriptors. */
#define MAX_BATCHES_PER_WAKE 8

#define CHECK(call)                                                                                                 \
  do {                                                                                                              \
    if ((call) != napi_ok) return throw_status(env, #call);                                                         \
  } while (0)

enum { RX, TX };
enum { POOL_DATA, POOL_OFF, POOL_LEN, POOL_FAMILY, POOL_ADDR, POOL_PORT, POOL_REFS };

typedef struct handle {
  napi_env env;
  int fd;
  int kind;
  int family;
  int vnet_hdr;
  int wait_ms;
  int gso; /* UDP: use UDP_SEGMENT for runs to one destination */
  int gro; /* UDP: UDP_GRO on, receive through the batch's staging area */
  uint32_t max_batch;
  struct ovl_batch *batch;
  /* [RX] the pool reads land in, [TX] the pool writes come from: usually the same one. */
  struct ovl_pool pool[2];
  int has_pool[2];
  napi_ref pool_refs[2][POOL_REFS];
  double *ctr;
  napi_ref ctr_ref;
  int32_t *rx_slots; /* pre-acquired slots, filled by JS */
  uint32_t rx_slots_len;
  napi_ref rx_slots_ref;
  int32_t *ctl; /* ctl[0]: how many of rx_slots are valid */
  napi_ref ctl_ref;
  napi_ref cb_ref;
  napi_async_context actx;
  uv_poll_t poll;
  int poll_init;
  int refs; /* 1 for the JS external, 1 more while the libuv handle is open */
  int closed;
} handle_t;

/* Per-environment state (worker threads each have their own). */
typedef struct {
  napi_ref error_class;
} instance_t;

static void free_instance(napi_env env, void *data, void *hint) {
  (void)hint;
  instance_t *inst = data;
  if (inst->error_class) napi_delete_reference(env, inst->error_class);
  free(inst);
}

static napi_ref *error_class_ref(napi_env env) {
  instance_t *inst = NULL;
  if (napi_get_instance_data(env, (void **)&inst) != napi_ok || !inst) return NULL;
  return &inst->error_class;
}

static napi_value throw_status(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_NATIVE", info && info->error_message ? info->error_message : what);
  return NULL;
}

static napi_value make_errno_error(napi_env env, int err, const char *syscall) {
  const char *name = strerrorname_np(err);
  char code[32];
  if (!name) {
    snprintf(code, sizeof(code), "E%d", err);
    name = code;
  }
  char msg[256];
  snprintf(msg, sizeof(msg), "%s: %s (%s)", syscall, strerror(err), name);
  napi_value args[4], result = NULL;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &args[0]);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &args[1]);
  napi_create_int32(env, err, &args[2]);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &args[3]);
  napi_value ctor;
  napi_ref *ec = error_class_ref(env);
  if (ec && *ec && napi_get_reference_value(env, *ec, &ctor) == napi_ok && ctor &&
      napi_new_instance(env, ctor, 4, args, &result) == napi_ok)
    return result;
  napi_create_error(env, args[0], args[1], &result);
  napi_set_named_property(env, result, "errno", args[2]);
  napi_set_named_property(env, result, "syscall", args[3]);
  return result;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, make_errno_error(env, err, syscall));
  return NULL;
}

/* A non-negative result as a JS number, or the errno error for a negative one. */
static napi_value int_result(napi_env env, int rc, const char *syscall) {
  if (rc < 0) return throw_errno(env, -rc, syscall);
  napi_value v;
  CHECK(napi_create_int32(env, rc, &v));
  return v;
}

/* Declares argc/argv and fetches up to n arguments. */
#define ARGS(n)                                                                                                     \
  size_t argc = (n);                                                                                                \
  napi_value argv[(n)];                                                                                             \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}


static handle_t *get_handle(napi_env env, napi_value v) {
  handle_t *h = NULL;
  if (napi_get_value_external(env, v, (void **)&h) != napi_ok || !h) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a native handle");
    return NULL;
  }
  if (h->closed) {
    napi_throw_error(env, "OVL_ERR_CLOSED", "native handle is closed");
    return NULL;
  }
  return h;
}

static void drop_ref(napi_env env, napi_ref *r) {
  if (*r) {
    napi_delete_reference(env, *r);
    *r = NULL;
  }
}

static void release_pool(handle_t *h, int which) {
  for (int i = 0; i < POOL_REFS; i++) drop_ref(h->env, &h->pool_refs[which][i]);
  h->has_pool[which] = 0;
}

/* What start() took: the slot and control arrays, the callback and its async context. */
static void release_receiver(handle_t *h) {
  drop_ref(h->env, &h->rx_slots_ref);
  drop_ref(h->env, &h->ctl_ref);
  drop_ref(h->env, &h->cb_ref);
  if (h->actx) napi_async_destroy(h->env, h->actx);
  h->actx = NULL;
}

/* The struct lives while the JS external or the libuv handle still refers to it. */
static void unref_handle(handle_t *h) {
  if (--h->refs > 0) return;
  ovl_batch_free(h->batch);
  free(h);
}

static void on_uv_closed(uv_handle_t *uvh) {
  unref_handle(uvh->data);
}

/*
 * Stop polling, close the descriptor, drop every reference. The libuv handle is closed before
 * the descriptor: libuv deregisters a poll handle's fd from epoll when the handle is stopped or
 * closed, so doing that later, after the fd number was reused by a new socket or TAP, would
 * silently stop the new one's polling.
 */
static void shutdown_handle(handle_t *h) {
  if (h->closed) return;
  h->closed = 1;
  if (h->poll_init) uv_close((uv_handle_t *)&h->poll, on_uv_closed);
  if (h->fd >= 0) close(h->fd);
  h->fd = -1;
  release_pool(h, RX);
  release_pool(h, TX);
  drop_ref(h->env, &h->ctr_ref);
  release_receiver(h);
}

/*
 * The JS external was collected without close(): close and release the same way, references
 * included, or the pool's arrays (megabytes) and the counters stayed pinned until the
 * environment ends. Node runs this finalizer after the GC pass, from the event loop, where
 * deleting references is allowed; at environment teardown externals are finalized before the
 * remaining references, so ours still exist here. (A started handle is never collected before
 * close(): its callback reference keeps the JS object that owns the external alive.)
 */
static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  handle_t *h = data;
  shutdown_handle(h);
  unref_handle(h);
}

/* Call the JS batch callback with `n` (>= 0 packets, < 0 -errno). */
static void call_js(handle_t *h, int n) {
  napi_env env = h->env;
  napi_value cb, recv, arg, result;
  if (!h->cb_ref || napi_get_reference_value(env, h->cb_ref, &cb) != napi_ok) return;
  /* napi_make_callback wants an object receiver; the callback is an arrow function anyway. */
  napi_get_global(env, &recv);
  napi_create_int32(env, n, &arg);
  napi_status st = napi_make_callback(env, h->actx, recv, cb, 1, &arg, &result);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

/* Pre-acquired slots JS says are valid, within the array and the batch size. */
static int rx_avail(const handle_t *h) {
  int avail = h->ctl[0];
  if (avail > (int)h->rx_slots_len) avail = (int)h->rx_slots_len;
  if (avail > (int)h->max_batch) avail = (int)h->max_batch;
  return avail;
}

static void on_poll(uv_poll_t *w, int status, int events) {
  (void)events;
  handle_t *h = w->data;
  if (h->closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(h->env, &scope) != napi_ok) return;
  if (status < 0) {
    uv_poll_stop(&h->poll);
    call_js(h, -EIO);
  }
  /* Datagrams a GRO socket already received but had no slot for are drained past the cap: the
     socket may not be readable again, and they are bounded by one recvmmsg's worth. */
  for (int i = 0; status >= 0 && (i < MAX_BATCHES_PER_WAKE || (h->gro && ovl_udp_gro_pending(h->batch))) && !h->closed;
       i++) {
    int avail = rx_avail(h);
    if (avail <= 0 && h->has_pool[RX]) {
      /* Ask JS to refill from slots released since the last batch (n = 0 means "refill"). */
      call_js(h, 0);
      if (h->closed) break;
      avail = rx_avail(h);
    }
    if (avail <= 0 || !h->has_pool[RX]) {
      /* No free slot: drop what is queued (counted) rather than let level-triggered poll spin. */
      if (h->gro && ovl_udp_gro_pending(h->batch)) {
        ovl_udp_gro_drop_pending(h->batch, h->ctr);
        continue;
      }
      if (ovl_discard(h->fd, h->kind == KIND_UDP, h->gro, (int)h->max_batch, h->ctr) < (int)h->max_batch) break;
      continue;
    }
    const char *sc = "read";
    int r = h->kind == KIND_TAP ? ovl_tap_read(h->fd, h->vnet_hdr, &h->pool[RX], h->rx_slots, avail, h->ctr, &sc)
                : h->gro ? ovl_udp_recv_gro(h->fd, h->batch, &h->pool[RX], h->rx_slots, avail, h->ctr, &sc)
                         : ovl_udp_recv(h->fd, h->batch, &h->pool[RX], h->rx_slots, avail, h->ctr, &sc);
    if (r < 0) {
      /* Not transient (those return 0): the device went away or the slots were bad. */
      uv_poll_stop(&h->poll);
      call_js(h, r);
      break;
    }
    if (r == 0 && !(h->gro && ovl_udp_gro_pending(h->batch))) break;
    if (r > 0) {
      h->ctr[OVL_RX_BATCHES]++;
      call_js(h, r);
    }
    if (r < avail && !(h->gro && ovl_udp_gro_pending(h->batch))) break;
  }
  napi_close_handle_scope(h->env, scope);
}

/* openTap(name, flags) -> [fd, name] */
static napi_value js_open_tap(napi_env env, napi_callback_info info) {
  ARGS(2);
  char name[NAME_ARG_MAX];
  size_t nl;
  int32_t flags;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &nl) != napi_ok || !get_i32(env, argv[1], &flags))
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "openTap(name, flags)"), NULL;
  char out[NAME_ARG_MAX] = {0};
  const char *sc = "open";
  int fd = ovl_tap_open(name, flags, out, &sc);
  if (fd < 0) return throw_errno(env, -fd, sc);
  napi_value arr, v;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_create_int32(env, fd, &v));
  CHECK(napi_set_element(env, arr, 0, v));
  CHECK(napi_create_string_utf8(env, out, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_element(env, arr, 1, v));
  return arr;
}

/* linkSet(name, mtu, txqlen, up) */
static napi_value js_link_set(napi_env env, napi_callback_info info) {
  ARGS(4);
  char name[NAME_ARG_MAX];
  size_t nl;
  int32_t mtu, txqlen, up;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &nl) != napi_ok || !get_i32(env, argv[1], &mtu) ||
      !get_i32(env, argv[2], &txqlen) || !get_i32(env, argv[3], &up))
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "linkSet(name, mtu, txqlen, up)"), NULL;
  const char *sc = "ioctl";
  int rc = ovl_link_set(name, mtu, txqlen, up, &sc);
  if (rc < 0) return throw_errno(env, -rc, sc);
  return NULL;
}

/* linkMtu(name) -> mtu */
static napi_value js_link_mtu(napi_env env, napi_callback_info info) {
  ARGS(1);
  char name[NAME_ARG_MAX];
  size_t nl;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &nl) != napi_ok)
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "linkMtu(name)"), NULL;
  const char *sc = "ioctl";
  int rc = ovl_link_get_mtu(name, &sc);
  return int_result(env, rc, sc);
}

/* openUdp(family, address, port, reuseport, rcvbuf, sndbuf) -> fd */
static napi_value js_open_udp(napi_env env, napi_callback_info info) {
  ARGS(6);
  int32_t family, port, reuse, rcv, snd;
  char addr[64];
  size_t al;
  if (argc < 6 || !get_i32(env, argv[0], &family) ||
      napi_get_value_string_utf8(env, argv[1], addr, sizeof(addr), &al) != napi_ok || !get_i32(env, argv[2], &port) ||
      !get_i32(env, argv[3], &reuse) || !get_i32(env, argv[4], &rcv) || !get_i32(env, argv[5], &snd))
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "openUdp(family, address, port, reuseport, rcvbuf, sndbuf)"), NULL;
  const char *sc = "socket";
  int fd = ovl_udp_open(family, addr, port, reuse, rcv, snd, &sc);
  return int_result(env, fd, sc);
}

/* localPort(handle) -> port */
static napi_value js_local_port(napi_env env, napi_callback_info info) {
  ARGS(1);
  handle_t *h = argc >= 1 ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  const char *sc = "getsockname";
  int rc = ovl_udp_local_port(h->fd, &sc);
  return int_result(env, rc, sc);
}

/* create(fd, kind, family, vnetHdr (TAP) | UDP_FLAG_GSO/UDP_FLAG_GRO (UDP), maxBatch, waitMs, counters: Float64Array) -> handle.
   Takes ownership of fd (closed by close() or when the handle is collected). */
static napi_value js_create(napi_env env, napi_callback_info info) {
  ARGS(7);
  int32_t fd, kind, family, vnet, max_batch, wait_ms;
  double *ctr;
  size_t ctr_len;
  if (argc < 7 || !get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &kind) || !get_i32(env, argv[2], &family) ||
      !get_i32(env, argv[3], &vnet) || !get_i32(env, argv[4], &max_batch) || !get_i32(env, argv[5], &wait_ms) ||
      !ovl_napi_typed(env, argv[6], napi_float64_array, (void **)&ctr, &ctr_len) || ctr_len < OVL_COUNTERS || max_batch < 1 ||
      max_batch > 4096 || fd < 0)
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "create(fd, kind, family, vnetHdr, maxBatch, waitMs, counters)"), NULL;
  handle_t *h = calloc(1, sizeof(*h));
  if (!h) return throw_errno(env, ENOMEM, "calloc");
  h->env = env;
  h->refs = 1;
  h->fd = fd;
  h->kind = kind;
  h->family = family;
  /* The fourth argument is per kind: TAP virtio-net header, or UDP GSO/GRO flags. */
  h->vnet_hdr = kind == KIND_TAP ? vnet : 0;
  h->gso = kind == KIND_UDP ? (vnet & UDP_FLAG_GSO) != 0 : 0;
  h->gro = kind == KIND_UDP ? (vnet & UDP_FLAG_GRO) != 0 : 0;
  h->wait_ms = wait_ms;
  h->max_batch = (uint32_t)max_batch;
  h->ctr = ctr;
  /* TAP uses the iovec array to gather coalesced segments (up to 64 per write). */
  h->batch = ovl_batch_new(kind == KIND_UDP || max_batch > 64 ? (uint32_t)max_batch : 64);
  if (!h->batch) {
    free(h);
    return throw_errno(env, ENOMEM, "calloc");
  }
  if (h->gro) {
    const char *sc = "setsockopt(UDP_GRO)";
    int rc = ovl_udp_gro_enable(fd, h->batch, &sc);
    if (rc < 0) {
      /* create() owns fd: nothing else will close it. */
      close(fd);
      ovl_batch_free(h->batch);
      free(h);
      return throw_errno(env, -rc, sc);
    }
    if (vnet & UDP_FLAG_DEFER) ovl_udp_defer_enable(h->batch);
  }
  napi_value ext;
  if (napi_create_external(env, h, finalize_handle, NULL, &ext) != napi_ok) {
    close(fd);
    ovl_batch_free(h->batch);
    free(h);
    return throw_status(env, "napi_create_external");
  }
  CHECK(napi_create_reference(env, argv[6], 1, &h->ctr_ref));
  return ext;
}

/* setPool(handle, which (1 receive, 2 send, 3 both), data, off, len, family, addr, port, stride, capacity) */
static napi_value js_set_pool(napi_env env, napi_callback_info info) {
  ARGS(10);
  handle_t *h = argc >= 10 ? get_handle(env, argv[0]) : NULL;
  if (!h) return argc >= 10 ? NULL : (napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setPool: 10 arguments"), NULL);
  struct ovl_pool p;
  size_t n_off, n_len, n_fam, n_addr, n_port;
  int32_t which, stride, capacity;
  if (!get_i32(env, argv[1], &which) || which < 1 || which > 3 ||
      !ovl_napi_typed(env, argv[2], napi_uint8_array, (void **)&p.data, &p.data_len) ||
      !ovl_napi_typed(env, argv[3], napi_int32_array, (void **)&p.off, &n_off) ||
      !ovl_napi_typed(env, argv[4], napi_int32_array, (void **)&p.len, &n_len) ||
      !ovl_napi_typed(env, argv[5], napi_uint8_array, (void **)&p.family, &n_fam) ||
      !ovl_napi_typed(env, argv[6], napi_uint8_array, (void **)&p.addr, &n_addr) ||
      !ovl_napi_typed(env, argv[7], napi_uint16_array, (void **)&p.port, &n_port) || !get_i32(env, argv[8], &stride) ||
      !get_i32(env, argv[9], &capacity) || stride <= 0 || capacity <= 0 || capacity > stride)
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setPool(handle, which, data, off, len, family, addr, port, stride, capacity)"), NULL;
  p.count = (uint32_t)n_off;
  if (n_len < p.count || n_fam < p.count || n_port < p.count || n_addr < (size_t)p.count * 16 ||
      p.data_len < (size_t)p.count * (size_t)stride)
    return napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pool arrays are shorter than the slot count"), NULL;
  p.stride = (uint32_t)stride;
  p.capacity = (uint32_t)capacity;
  for (int w = RX; w <= TX; w++) {
    if (!(which & (1 << w))) continue;
    release_pool(h, w);
    for (int i = 0; i < POOL_REFS; i++) CHECK(napi_create_reference(env, argv[2 + i], 1, &h->pool_refs[w][i]));
    h->pool[w] = p;
    h->has_pool[w] = 1;
  }
  return NULL;
}

/* start(handle, rxSlots: Int32Array, ctl: Int32Array, onBatch(n)) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  ARGS(4);
  handle_t *h = argc >= 4 ? get_handle(env, argv[0]) : NULL;
  if (!h) return argc >= 4 ? NULL : (napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "start: 4 arguments"), NULL);
  size_t n_slots, n_ctl;
  int32_t *slots, *ctl;
  napi_valuetype t;
  if (!ovl_napi_typed(env, argv[1], napi_int32_array, (void **)&slots, &n_slots) ||
      !ovl_napi_typed(env, argv[2], napi_int32_array, (void **)&ctl, &n_ctl) || n_ctl < 1 ||
      napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function)
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "start(handle, rxSlots, ctl, onBatch)"), NULL;
  if (h->poll_init) return napi_throw_error(env, "ERR_ALREADY_STARTED", "already started"), NULL;
  if (!h->has_pool[RX]) return napi_throw_error(env, "ERR_NO_POOL", "setPool before start"), NULL;
  h->rx_slots = slots;
  h->rx_slots_len = (uint32_t)n_slots;
  h->ctl = ctl;
  /* Until the poll is initialised start() may be called again: a failure gives back what it took. */
  napi_value name;
  uv_loop_t *loop;
  if (napi_create_reference(env, argv[1], 1, &h->rx_slots_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &h->ctl_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &h->cb_ref) != napi_ok ||
      napi_create_string_utf8(env, h->kind == KIND_TAP ? "overlay:tap" : "overlay:udp", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &h->actx) != napi_ok || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_value r = throw_status(env, "start");
    release_receiver(h);
    return r;
  }
  int rc = uv_poll_init(loop, &h->poll, h->fd);
  if (rc < 0) {
    release_receiver(h);
    return throw_errno(env, -rc, "uv_poll_init");
  }
  h->poll.data = h;
  h->poll_init = 1;
  h->refs++;
  rc = uv_poll_start(&h->poll, UV_READABLE, on_poll);
  if (rc < 0) return throw_errno(env, -rc, "uv_poll_start");
  return NULL;
}

/* send(handle, slots: Int32Array, count) -> sent. TAP: write() per frame; UDP: sendmmsg. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  ARGS(3);
  handle_t *h = argc >= 3 ? get_handle(env, argv[0]) : NULL;
  if (!h) return argc >= 3 ? NULL : (napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "send: 3 arguments"), NULL);
  int32_t *slots, count;
  size_t n;
  if (!ovl_napi_typed(env, argv[1], napi_int32_array, (void **)&slots, &n) || !get_i32(env, argv[2], &count) || count < 0 ||
      (size_t)count > n)
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "send(handle, slots, count)"), NULL;
  if (!h->has_pool[TX]) return napi_throw_error(env, "ERR_NO_POOL", "setPool before send"), NULL;
  const char *sc = "write";
  int sent = h->kind == KIND_TAP
                 ? ovl_tap_write(h->fd, h->vnet_hdr, &h->pool[TX], slots, count, h->wait_ms, h->ctr, &sc)
                 : ovl_udp_send(h->fd, h->family, &h->gso, h->batch, &h->pool[TX], slots, count, h->wait_ms, h->ctr, &sc);
  return int_result(env, sent, sc);
}

/* writeGso(handle, slots: Int32Array, count, groups: Int32Array, ngroups) -> slots written. TAP with vnetHdr. */
static napi_value js_write_gso(napi_env env, napi_callback_info info) {
  ARGS(5);
  handle_t *h = argc >= 5 ? get_handle(env, argv[0]) : NULL;
  if (!h) return argc >= 5 ? NULL : (napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "writeGso: 5 arguments"), NULL);
  int32_t *slots, *groups, count, ngroups;
  size_t n, ng;
  if (!ovl_napi_typed(env, argv[1], napi_int32_array, (void **)&slots, &n) || !get_i32(env, argv[2], &count) || count < 0 ||
      (size_t)count > n || !ovl_napi_typed(env, argv[3], napi_int32_array, (void **)&groups, &ng) ||
      !get_i32(env, argv[4], &ngroups) || ngroups < 0 || (size_t)ngroups * 2 > ng)
    return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "writeGso(handle, slots, count, groups, ngroups)"), NULL;
  if (h->kind != KIND_TAP || !h->vnet_hdr) return napi_throw_error(env, "ERR_INVALID_STATE", "writeGso needs a TAP opened with vnetHdr"), NULL;
  if (!h->has_pool[TX]) return napi_throw_error(env, "ERR_NO_POOL", "setPool before send"), NULL;
  const char *sc = "writev";
  int sent = ovl_tap_write_gso(h->fd, h->batch, &h->pool[TX], slots, count, groups, ngroups, h->wait_ms, h->ctr, &sc);
  return int_result(env, sent, sc);
}

/* close(handle): stop polling, close the descriptor. Safe to call from inside onBatch. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  handle_t *h = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&h) != napi_ok || !h) return NULL;
  shutdown_handle(h);
  return NULL;
}

/* setErrorClass(ctor): errors are built as new ctor(code, message, errno, syscall). */
static napi_value js_set_error_class(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_ref *ec = error_class_ref(env);
  if (!ec) return NULL;
  if (*ec) napi_delete_reference(env, *ec);
  *ec = NULL;
  if (argc >= 1) CHECK(napi_create_reference(env, argv[0], 1, ec));
  return NULL;
}

/* errnoError(errno, syscall): the error object for an errno reported through onBatch. */
static napi_value js_errno_error(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t e;
  char sc[64] = "read";
  size_t l;
  if (argc < 1 || !get_i32(env, argv[0], &e)) return napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "errnoError(errno, syscall)"), NULL;
  if (argc >= 2) napi_get_value_string_utf8(env, argv[1], sc, sizeof(sc), &l);
  return make_errno_error(env, e, sc);
}

static napi_value init(napi_env env, napi_value exports) {
  instance_t *inst = calloc(1, sizeof(*inst));
  if (!inst || napi_set_instance_data(env, inst, free_instance, NULL) != napi_ok) return NULL;
  napi_property_descriptor props[] = {
      {"openTap", NULL, js_open_tap, NULL, NULL, NULL, napi_default, NULL},
      {"linkSet", NULL, js_link_set, NULL, NULL, NULL, napi_default, NULL},
      {"linkMtu", NULL, js_link_mtu, NULL, NULL, NULL, napi_default, NULL},
      {"openUdp", NULL, js_open_udp, NULL, NULL, NULL, napi_default, NULL},
      {"localPort", NULL, js_local_port, NULL, NULL, NULL, napi_default, NULL},
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"setPool", NULL, js_set_pool, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"writeGso", NULL, js_write_gso, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"setErrorClass", NULL, js_set_error_class, NULL, NULL, NULL, napi_default, NULL},
      {"errnoError", NULL, js_errno_error, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  if (!ovl_csum_register(env, exports)) return NULL;
  if (!ovl_aead_register(env, exports)) return NULL;
  napi_value n;
  napi_create_int32(env, OVL_COUNTERS, &n);
  napi_set_named_property(env, exports, "counterCount", n);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
