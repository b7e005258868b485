/* CUV: the one place Strands touches libuv's C header.
 *
 * Only what Swift cannot express lives here: the `syscall`-based thread
 * affinity (glibc hides CPU_SET and pthread_setaffinity_np behind _GNU_SOURCE,
 * which a Clang module cannot switch on after the C library module is built),
 * the listening socket that must carry SO_REUSEPORT before bind (libuv 1.44
 * has no flag for it), and casts between libuv's handle "subclasses".
 */
#ifndef CUV_SHIM_H
#define CUV_SHIM_H

#include <uv.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Pins the calling thread to one CPU. Returns 0 or a negative errno.
 * sched_setaffinity with pid 0 applies to the calling thread only. */
static inline int cuv_pin_current_thread(int cpu) {
    unsigned long mask[16] = {0}; /* 1,024 CPUs, as glibc's cpu_set_t. */
    if (cpu < 0 || cpu >= (int)(sizeof(mask) * 8)) return -EINVAL;
    mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    long rc = syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask);
    return rc == 0 ? 0 : -errno;
}

/* Restricts the calling thread (and threads and processes it starts later) to
 * the `count` CPUs listed. Returns 0 or a negative errno. */
static inline int cuv_set_affinity(const int *cpus, int count) {
    unsigned long mask[16] = {0};
    for (int i = 0; i < count; i++) {
        if (cpus[i] < 0 || cpus[i] >= (int)(sizeof(mask) * 8)) return -EINVAL;
        mask[cpus[i] / (8 * sizeof(unsigned long))] |= 1UL << (cpus[i] % (8 * sizeof(unsigned long)));
    }
    long rc = syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask);
    return rc == 0 ? 0 : -errno;
}

/* The number of CPUs this thread may run on (taskset narrows it). */
static inline int cuv_available_cpus(void) {
    unsigned long mask[16] = {0};
    long rc = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
    if (rc <= 0) return 1;
    int count = 0;
    for (long i = 0; i < rc / (long)sizeof(unsigned long); i++) count += __builtin_popcountl(mask[i]);
    return count > 0 ? count : 1;
}

/* The index of the n-th CPU (0-based) in this thread's affinity mask, or -1. */
static inline int cuv_nth_available_cpu(int n) {
    unsigned long mask[16] = {0};
    long rc = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
    if (rc <= 0) return -1;
    int bits = (int)(rc * 8);
    for (int cpu = 0; cpu < bits; cpu++) {
        if (mask[cpu / (8 * sizeof(unsigned long))] & (1UL << (cpu % (8 * sizeof(unsigned long))))) {
            if (n-- == 0) return cpu;
        }
    }
    return -1;
}

/* Opens a non-blocking TCP socket bound to `addr`, ready for uv_tcp_open and
 * uv_listen. With `reuseport`, several sockets (one per loop) share the port and
 * the kernel spreads incoming connections over them. Returns the fd or a
 * negative errno; the fd is closed on failure. */
static inline int cuv_bound_socket(const struct sockaddr *addr, int reuseport) {
    int family = addr->sa_family;
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) goto fail;
    if (bind(fd, addr, len) != 0) goto fail;
    return fd;
fail:;
    int err = errno;
    close(fd);
    return -err;
}

/* A client socket bound to a local address before its connect, its port chosen at connect time
 * (IP_BIND_ADDRESS_NO_PORT): so the kernel picks a port free for the whole 4-tuple, and does not walk
 * every bound socket at bind time (a bind to port 0 slows down with tens of thousands of them). */
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
static inline int cuv_client_socket(const struct sockaddr *addr) {
    int family = addr->sa_family;
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int on = 1;
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof(on));  /* Linux 4.2 and later */
    if (bind(fd, addr, len) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* getaddrinfo's EAI_* codes as libuv's UV_EAI_* codes (libuv keeps its own
 * translation private). */
static inline int cuv_translate_eai(int rc) {
    switch (rc) {
    case 0: return 0;
    case EAI_AGAIN: return UV_EAI_AGAIN;
    case EAI_BADFLAGS: return UV_EAI_BADFLAGS;
    case EAI_FAIL: return UV_EAI_FAIL;
    case EAI_FAMILY: return UV_EAI_FAMILY;
    case EAI_MEMORY: return UV_EAI_MEMORY;
    case EAI_NONAME: return UV_EAI_NONAME;
    case EAI_SERVICE: return UV_EAI_SERVICE;
    case EAI_SOCKTYPE: return UV_EAI_SOCKTYPE;
#ifdef EAI_NODATA
    case EAI_NODATA: return UV_EAI_NODATA;
#endif
    case EAI_SYSTEM: return -errno;
    default: return UV_EAI_FAIL;
    }
}

/* The port a bound socket got (after binding port 0), or a negative errno. */
static inline int cuv_socket_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Fills `buf` from the kernel's CSPRNG (getrandom(2)); returns 0 or a negative errno. */
static inline int cuv_random_bytes(void *buf, size_t len) {
    unsigned char *p = buf;
    while (len > 0) {
        long n = syscall(SYS_getrandom, p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The thread behind cuv_terminate_with_parent: waits until the parent's pidfd turns readable (the
 * parent process has exited), then sends this process SIGTERM. */
static inline void *cuv_watch_parent(void *arg) {
    struct pollfd parent = { .fd = (int)(intptr_t)arg, .events = POLLIN };
    while (poll(&parent, 1, -1) < 0 && errno == EINTR) {}
    kill(getpid(), SIGTERM);
    return NULL;
}

/* Has this process get SIGTERM once `parent`, the process that started it, ends. With a pidfd (Linux
 * 5.3+) a small thread waits on the parent process itself. The fallback, PR_SET_PDEATHSIG, fires when
 * the *thread* that started this process ends, which in a parent with a thread pool can be long
 * before the parent does. Returns 0, -ESRCH when `parent` is not (or no longer) this process's
 * parent, or another negative errno. */
static inline int cuv_terminate_with_parent(int parent) {
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, parent, 0);  /* close-on-exec by definition */
    if (fd >= 0) {
        if (getppid() != parent) {
            close(fd);
            return -ESRCH;
        }
        pthread_t thread;
        if (pthread_create(&thread, NULL, cuv_watch_parent, (void *)(intptr_t)fd) == 0) {
            pthread_detach(thread);
            return 0;
        }
        close(fd);
    } else if (errno == ESRCH) {
        return -ESRCH;
    }
#endif
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) return -errno;
    return getppid() == parent ? 0 : -ESRCH;
}

/* A write to a socket the peer has reset raises SIGPIPE, whose default action
 * kills the process; a network server wants EPIPE from write(2) instead.
 * Ignores SIGPIPE unless the application installed its own handler. */
static inline void cuv_ignore_sigpipe(void) {
    struct sigaction current;
    if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
}

static inline int cuv_close_fd(int fd) { return close(fd) == 0 ? 0 : -errno; }

/* Raises the soft open-file limit to the hard limit; returns the new soft
 * limit, or a negative errno. */
static inline long cuv_raise_open_file_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -errno;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -errno;
    }
    return (long)rl.rlim_cur;
}

/* libuv's handle types share a common prefix; these casts are how C code
 * "upcasts" and Swift cannot spell them without a round trip through raw
 * pointers. */
static inline uv_handle_t *cuv_tcp_as_handle(uv_tcp_t *t) { return (uv_handle_t *)t; }
static inline uv_stream_t *cuv_tcp_as_stream(uv_tcp_t *t) { return (uv_stream_t *)t; }
static inline uv_handle_t *cuv_timer_as_handle(uv_timer_t *t) { return (uv_handle_t *)t; }
static inline uv_handle_t *cuv_signal_as_handle(uv_signal_t *s) { return (uv_handle_t *)s; }
static inline uv_handle_t *cuv_check_as_handle(uv_check_t *c) { return (uv_handle_t *)c; }
static inline uv_handle_t *cuv_async_as_handle(uv_async_t *a) { return (uv_handle_t *)a; }
static inline uv_handle_t *cuv_idle_as_handle(uv_idle_t *i) { return (uv_handle_t *)i; }
static inline uv_tcp_t *cuv_stream_as_tcp(uv_stream_t *s) { return (uv_tcp_t *)s; }

/* The TCP payload bytes the peer has acknowledged and the bytes received on a
 * connected socket, from the kernel's TCP_INFO (Linux 4.1 and later). glibc's
 * <netinet/tcp.h> declares an older struct tcp_info without these fields, and
 * <linux/tcp.h> cannot be included beside it, so they are read at their fixed
 * offsets in the kernel's struct (an ABI that only ever grows at the end).
 * Returns 0, or a negative errno (-ENOTSUP for a kernel without them). */
static inline int cuv_tcp_byte_counts(int fd, uint64_t *acked, uint64_t *received) {
    unsigned char info[232];
    socklen_t length = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &length) != 0) return -errno;
    if (length < 136) return -ENOTSUP;
    __builtin_memcpy(acked, info + 120, sizeof *acked);
    __builtin_memcpy(received, info + 128, sizeof *received);
    return 0;
}

/* glibc's malloc_trim: gives the free pages malloc holds back to the system (malloc.h is not part of
 * Swift's Glibc module). */
static inline int cuv_release_free_memory(void) {
#ifdef __GLIBC__
    return malloc_trim(0);
#else
    return 0;
#endif
}

#endif
