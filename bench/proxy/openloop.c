/*
 * Open-loop HTTP/1.1 load for bench:proxy (built by bench/proxy/run.ts with gcc).
 *
 * Requests arrive at Poisson times of a fixed rate, whatever the server does (an open system:
 * clients that do not wait for each other), and each is sent on a free kept-alive connection of
 * a fixed set; one that finds no free connection waits in a queue. Its latency runs from its
 * arrival time to the last byte of its response, so time spent waiting for a connection counts
 * (no "coordinated omission", the flaw of closed-loop tools such as wrk when used for latency at
 * a given rate). wrk's own way to lower the rate, a pause per connection, has its connections'
 * 1 ms timers fire together: bursts of one request per connection, then silence.
 *
 * Usage: openloop HOST PORT RATE SECONDS CONNECTIONS TARGET HOSTHEADER [WARMUP_SECONDS] [SEED]
 * Prints one JSON line: requests, errors, achieved rate, latency percentiles in ms.
 * Responses must carry Content-Length (the replica's, nginx's and our proxy's do).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384

typedef struct {
  int fd;
  int busy;
  int64_t arrival; /* arrival time (ns) of the request on this connection */
  char head[HEAD_MAX];
  size_t head_len;
  int in_body;
  int64_t body_left;
  int status;
  int close; /* the response said Connection: close */
} conn_t;

static const char *host_arg, *port_arg;
static char request[2048];
static size_t request_len;

static void die(const char *what) {
  fprintf(stderr, "openloop: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static uint64_t rng;
static double uniform(void) { /* xorshift64*, in (0, 1) */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return ((rng * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0) + 1e-300;
}

static int open_conn(void) {
  struct addrinfo hints = {0}, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host_arg, port_arg, &hints, &ai) != 0) {
    fprintf(stderr, "openloop: cannot resolve %s\n", host_arg);
    exit(1);
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) die("connect");
  freeaddrinfo(ai);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) die("fcntl");
  return fd;
}

/* Replaces connection i's socket with a new one. */
static void reconnect(int ep, conn_t *cn, uint32_t i) {
  epoll_ctl(ep, EPOLL_CTL_DEL, cn->fd, NULL);
  close(cn->fd);
  cn->fd = open_conn();
  struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, cn->fd, &e) != 0) die("epoll_ctl");
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)ceil(p * n) - 1;
  if (i >= n) i = n - 1;
  return v[i] / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 8) {
    fprintf(stderr,
            "usage: openloop HOST PORT RATE SECONDS CONNECTIONS TARGET HOSTHEADER [WARMUP] [SEED]\n");
    return 2;
  }
  host_arg = argv[1];
  port_arg = argv[2];
  double rate = atof(argv[3]), seconds = atof(argv[4]);
  int nconn = atoi(argv[5]);
  double warmup = argc > 8 ? atof(argv[8]) : 0;
  rng = argc > 9 ? strtoull(argv[9], 0, 10) : 88172645463325252ULL;
  if (rng == 0) rng = 1;
  if (rate <= 0 || seconds <= 0 || nconn < 1 || nconn > 4096) {
    fprintf(stderr, "openloop: RATE and SECONDS must be > 0, CONNECTIONS 1..4096\n");
    return 2;
  }
  request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                                 argv[6], argv[7]);
  if (request_len >= sizeof request) {
    fprintf(stderr, "openloop: request too long\n");
    return 2;
  }
  prctl(PR_SET_TIMERSLACK, 1UL);

  conn_t *c = calloc((size_t)nconn, sizeof *c);
  /* Free connections: a ring, taken from the front (FIFO, every connection in turn) or, with
   * OPENLOOP_LIFO=1, from the back (the most recently freed first). */
  int *ring = malloc(sizeof(int) * (size_t)nconn);
  long fhead = 0, ftail = 0;
  int lifo = getenv("OPENLOOP_LIFO") != NULL;
#define PUSH_FREE(i) (ring[ftail++ % nconn] = (i))
#define NFREE (ftail - fhead)
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < nconn; i++) {
    c[i].fd = open_conn();
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &e) != 0) die("epoll_ctl");
    PUSH_FREE(i);
  }
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct epoll_event te = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &te);

  size_t cap = (size_t)(rate * (seconds + warmup) * 1.5) + 1024;
  int64_t *lat = malloc(sizeof(int64_t) * cap);
  size_t nlat = 0;
  size_t qcap = cap;
  int64_t *queue = malloc(sizeof(int64_t) * qcap); /* arrival times waiting for a connection */
  size_t qhead = 0, qtail = 0, maxq = 0;
  long sent = 0, errors = 0, non2xx = 0, reconnects = 0;

  /* OPENLOOP_TRACE=FILE: one line per request, arrival and latency in microseconds. */
  FILE *trace = getenv("OPENLOOP_TRACE") ? fopen(getenv("OPENLOOP_TRACE"), "w") : NULL;
  int64_t t0 = now_ns();
  int64_t t_measure = t0 + (int64_t)(warmup * 1e9);
  int64_t t_end = t_measure + (int64_t)(seconds * 1e9);
  int64_t hard_end = t_end + 10LL * 1000000000LL;
  double mean_gap = 1e9 / rate;
  int64_t next = t0 + (int64_t)(-log(uniform()) * mean_gap);
  int busy = 0;

  for (;;) {
    int64_t now = now_ns();
    while (next <= now && next < t_end) {
      if (qtail - qhead >= qcap) {
        fprintf(stderr, "openloop: queue overflow\n");
        return 1;
      }
      queue[qtail++ % qcap] = next;
      next += (int64_t)(-log(uniform()) * mean_gap);
    }
    if (qtail - qhead > maxq) maxq = qtail - qhead;
    while (qhead < qtail && NFREE > 0) {
      int i = lifo ? ring[--ftail % nconn] : ring[fhead++ % nconn];
      c[i].busy = 1;
      c[i].arrival = queue[qhead++ % qcap];
      c[i].head_len = 0;
      c[i].in_body = 0;
      ssize_t w = write(c[i].fd, request, request_len);
      if (w != (ssize_t)request_len) die("write (short)");
      sent++;
      busy++;
    }
    if ((now >= t_end && qhead == qtail && busy == 0) || now >= hard_end) break;
    if (next < t_end) {
      struct itimerspec its = {0};
      its.it_value.tv_sec = next / 1000000000LL;
      its.it_value.tv_nsec = next % 1000000000LL;
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    }
    struct epoll_event ev[64];
    int n = epoll_wait(ep, ev, 64, next < t_end ? -1 : 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int k = 0; k < n; k++) {
      uint32_t i = ev[k].data.u32;
      if (i == UINT32_MAX) {
        uint64_t x;
        (void)!read(tfd, &x, sizeof x);
        continue;
      }
      conn_t *cn = &c[i];
      char buf[65536];
      ssize_t r = read(cn->fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) { /* closed: an error if a response was due; a new connection in its place */
        reconnect(ep, cn, i);
        reconnects++;
        if (cn->busy) { /* else it is on the free list already */
          errors++;
          busy--;
          cn->busy = 0;
          PUSH_FREE((int)i);
        }
        continue;
      }
      if (!cn->busy) {
        fprintf(stderr, "openloop: bytes with no request outstanding\n");
        return 1;
      }
      size_t off = 0;
      if (!cn->in_body) {
        size_t take = (size_t)r;
        if (take > HEAD_MAX - 1 - cn->head_len) take = HEAD_MAX - 1 - cn->head_len;
        if (take == 0) {
          fprintf(stderr, "openloop: response head over %d bytes\n", HEAD_MAX);
          return 1;
        }
        memcpy(cn->head + cn->head_len, buf, take);
        size_t before = cn->head_len;
        cn->head_len += take;
        cn->head[cn->head_len] = 0;
        char *end = strstr(cn->head, "\r\n\r\n");
        if (end == NULL) {
          if (take < (size_t)r) {
            fprintf(stderr, "openloop: response head over %d bytes\n", HEAD_MAX);
            return 1;
          }
          continue;
        }
        size_t hl = (size_t)(end - cn->head) + 4;
        off = hl - before;
        cn->status = atoi(cn->head + 9);
        int64_t len = -1;
        cn->close = 0;
        for (char *p = strstr(cn->head, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
          if (strncasecmp(p + 2, "content-length:", 15) == 0) len = atoll(p + 17);
          if (strncasecmp(p + 2, "connection: close", 17) == 0) cn->close = 1;
        }
        if (len < 0) {
          fprintf(stderr, "openloop: response without Content-Length\n");
          return 1;
        }
        cn->in_body = 1;
        cn->body_left = len;
      }
      cn->body_left -= r - (ssize_t)off;
      if (cn->body_left > 0) continue;
      if (cn->body_left < 0) {
        fprintf(stderr, "openloop: %lld bytes after the response to:\n%.*s\n",
                (long long)-cn->body_left, (int)cn->head_len, cn->head);
        return 1;
      }
      int64_t done = now_ns();
      if (cn->arrival >= t_measure) {
        if (trace) fprintf(trace, "%lld %lld\n", (long long)(cn->arrival - t0) / 1000,
                           (long long)(done - cn->arrival) / 1000);
        lat[nlat++] = done - cn->arrival;
        if (cn->status != 200) non2xx++;
      }
      if (cn->close) { /* nginx, say, after keepalive_requests (1000) */
        reconnect(ep, cn, i);
        reconnects++;
      }
      cn->busy = 0;
      busy--;
      PUSH_FREE((int)i);
    }
  }
  qsort(lat, nlat, sizeof *lat, cmp64);
  printf("{\"rate\":%.1f,\"achieved\":%.1f,\"requests\":%zu,\"sent\":%ld,\"errors\":%ld,"
         "\"non2xx\":%ld,\"reconnects\":%ld,\"maxQueue\":%zu,\"p50Ms\":%.4f,\"p90Ms\":%.4f,"
         "\"p99Ms\":%.4f,\"p999Ms\":%.4f,\"maxMs\":%.4f}\n",
         rate, nlat / seconds, nlat, sent, errors, non2xx, reconnects, maxq,
         pct(lat, nlat, 0.5), pct(lat, nlat, 0.9), pct(lat, nlat, 0.99), pct(lat, nlat, 0.999),
         nlat ? lat[nlat - 1] / 1e6 : 0);
  return 0;
}
