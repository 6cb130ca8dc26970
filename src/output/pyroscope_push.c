#include "pyroscope_push.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 3000
#define IO_TIMEOUT_MS 10000
#define BACKOFF_MIN_S 0.5
#define BACKOFF_MAX_S 30.0
#define BOUNDARY "aprof-profile-boundary-7d3f1a"

typedef struct push_item {
    char *body;
    size_t len;
    uint64_t from_s, until_s;
} push_item;

struct pyroscope_push {
    char host[256], port[16], base[512];
    char *name_q;         /* the name, URL-encoded */
    double rate;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    push_item queue[PUSH_QUEUE_MAX];
    size_t head, count;   /* ring */
    bool stopping;
    struct timespec deadline; /* while stopping: give up after this (CLOCK_MONOTONIC) */
    push_stats stats;
};

/* ---- URL ----------------------------------------------------------------------------------- */

static bool parse_url(pyroscope_push *p, const char *url, char *err, size_t cap)
{
    if (strncmp(url, "https://", 8) == 0) {
        snprintf(err, cap, "--push %s: https is not supported; give the server's http:// "
                           "address (or a local agent's)", url);
        return false;
    }
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, cap, "--push %s: not an http:// URL", url);
        return false;
    }
    const char *h = url + 7, *end = h + strcspn(h, "/?#");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    const char *host_end = colon ? colon : end;
    if (host_end == h || (size_t)(host_end - h) >= sizeof(p->host)) {
        snprintf(err, cap, "--push %s: no host", url);
        return false;
    }
    memcpy(p->host, h, (size_t)(host_end - h));
    p->host[host_end - h] = 0;
    if (colon) {
        size_t n = (size_t)(end - colon - 1);
        char *stop = NULL;
        char buf[16] = {0};
        if (n == 0 || n >= sizeof(buf)) {
            snprintf(err, cap, "--push %s: bad port", url);
            return false;
        }
        memcpy(buf, colon + 1, n);
        long port = strtol(buf, &stop, 10);
        if (*stop || port <= 0 || port > 65535) {
            snprintf(err, cap, "--push %s: bad port", url);
            return false;
        }
        snprintf(p->port, sizeof(p->port), "%ld", port);
    } else {
        snprintf(p->port, sizeof(p->port), "80");
    }
    /* the base path, without a trailing slash: BASE/ingest */
    size_t plen = strcspn(end, "?#");
    while (plen > 0 && end[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(p->base)) {
        snprintf(err, cap, "--push %s: path too long", url);
        return false;
    }
    memcpy(p->base, end, plen);
    p->base[plen] = 0;
    return true;
}

bool pyroscope_push_check_url(const char *url, char *err, size_t err_cap)
{
    pyroscope_push probe;
    return parse_url(&probe, url, err, err_cap);
}

static char *url_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(3 * strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~') {
            *o++ = (char)*c;
        } else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o = 0;
    return out;
}

/* ---- one HTTP request ---------------------------------------------------------------------- */

static int connect_to(const pyroscope_push *p, char *err, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(p->host, p->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, cap, "%s: %s", p->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                snprintf(err, cap, "%s:%s: %s", p->host, p->port, strerror(errno));
                close(fd);
                fd = -1;
                continue;
            }
            struct pollfd pfd = {fd, POLLOUT, 0};
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) != 1 ||
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
                snprintf(err, cap, "%s:%s: %s", p->host, p->port,
                         soerr ? strerror(soerr) : "connection timed out");
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(res);
    return fd;
}

static bool send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, IO_TIMEOUT_MS) != 1)
            return false;
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return false;
        buf += w;
        len -= (size_t)w;
    }
    return true;
}

/* POST one profile. The HTTP status, or 0 when there was no answer (err says why). */
static int post(const pyroscope_push *p, const push_item *it, char *err, size_t cap)
{
    char head[2048], part[256];
    int plen = snprintf(part, sizeof(part),
                        "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"profile\"; "
                        "filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream"
                        "\r\n\r\n");
    const char *tail = "\r\n--" BOUNDARY "--\r\n";
    size_t body_len = (size_t)plen + it->len + strlen(tail);
    int hlen = snprintf(head, sizeof(head),
                        "POST %s/ingest?name=%s&from=%llu&until=%llu&format=pprof"
                        "&sampleRate=%.0f&spyName=aprof&units=samples&aggregationType=sum "
                        "HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: aprof/" APROF_VERSION "\r\n"
                        "Content-Type: multipart/form-data; boundary=" BOUNDARY "\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                        p->base, p->name_q, (unsigned long long)it->from_s,
                        (unsigned long long)it->until_s, p->rate, p->host, p->port, body_len);
    if (hlen <= 0 || (size_t)hlen >= sizeof(head)) {
        snprintf(err, cap, "request too long");
        return 0;
    }
    int fd = connect_to(p, err, cap);
    if (fd < 0)
        return 0;
    int status = 0;
    if (!send_all(fd, head, (size_t)hlen) || !send_all(fd, part, (size_t)plen) ||
        !send_all(fd, it->body, it->len) || !send_all(fd, tail, strlen(tail))) {
        snprintf(err, cap, "%s:%s: sending failed", p->host, p->port);
    } else {
        char resp[512];
        size_t got = 0;
        while (got < sizeof(resp) - 1 && !memchr(resp, '\n', got)) {
            struct pollfd pfd = {fd, POLLIN, 0};
            if (poll(&pfd, 1, IO_TIMEOUT_MS) != 1)
                break;
            ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        resp[got] = 0;
        if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
            status = 0;
            snprintf(err, cap, "%s:%s: no HTTP answer", p->host, p->port);
        } else if (status < 200 || status > 299) {
            snprintf(err, cap, "%s:%s: HTTP %d", p->host, p->port, status);
        }
    }
    close(fd);
    return status;
}

/* ---- the sending thread -------------------------------------------------------------------- */

static void add_seconds(struct timespec *ts, double s)
{
    ts->tv_sec += (time_t)s;
    ts->tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool past(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* The sender owns the profile it is sending (taken off the queue), so that a full queue can
 * drop its oldest entry at any time. */
static void *sender(void *arg)
{
    pyroscope_push *p = arg;
    double backoff = 0;
    push_item cur = {0};
    bool have = false;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (!have) {
            while (p->count == 0 && !p->stopping)
                pthread_cond_wait(&p->wake, &p->lock);
            if (p->count == 0)
                break; /* stopping, nothing left */
            cur = p->queue[p->head];
            p->head = (p->head + 1) % PUSH_QUEUE_MAX;
            p->count--;
            have = true;
        }
        if (p->stopping && past(&p->deadline))
            break;
        pthread_mutex_unlock(&p->lock);
        char err[256] = "";
        int status = post(p, &cur, err, sizeof(err));
        pthread_mutex_lock(&p->lock);
        bool done = status >= 200 && status < 500;
        if (status >= 200 && status < 300)
            p->stats.sent++;
        else if (done)
            p->stats.rejected++;
        else
            p->stats.failures++;
        if (err[0])
            snprintf(p->stats.last_error, sizeof(p->stats.last_error), "%s", err);
        if (done) {
            free(cur.body);
            have = false;
            backoff = 0;
            continue;
        }
        backoff = backoff ? backoff * 2 : BACKOFF_MIN_S;
        if (backoff > BACKOFF_MAX_S)
            backoff = BACKOFF_MAX_S;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        add_seconds(&until, backoff);
        while (!past(&until) && !(p->stopping && past(&p->deadline)))
            pthread_cond_timedwait(&p->wake, &p->lock,
                                   p->stopping && (p->deadline.tv_sec < until.tv_sec ||
                                                   (p->deadline.tv_sec == until.tv_sec &&
                                                    p->deadline.tv_nsec < until.tv_nsec))
                                       ? &p->deadline : &until);
    }
    if (have) {
        free(cur.body);
        p->stats.dropped++;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

pyroscope_push *pyroscope_push_start(const char *url, const char *name, double sample_rate,
                                     char *err, size_t err_cap)
{
    pyroscope_push *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    if (!parse_url(p, url, err, err_cap)) {
        free(p);
        return NULL;
    }
    p->rate = sample_rate;
    p->name_q = url_encode(name);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (!p->name_q || pthread_mutex_init(&p->lock, NULL) != 0 ||
        pthread_cond_init(&p->wake, &ca) != 0 || pthread_create(&p->thread, NULL, sender, p) != 0) {
        pthread_condattr_destroy(&ca);
        snprintf(err, err_cap, "cannot start the --push thread: %s", strerror(errno));
        free(p->name_q);
        free(p);
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    return p;
}

void pyroscope_push_enqueue(pyroscope_push *p, char *body, size_t len, uint64_t from_s,
                            uint64_t until_s)
{
    pthread_mutex_lock(&p->lock);
    if (p->count == PUSH_QUEUE_MAX) { /* drop the oldest */
        free(p->queue[p->head].body);
        p->head = (p->head + 1) % PUSH_QUEUE_MAX;
        p->count--;
        p->stats.dropped++;
    }
    p->queue[(p->head + p->count) % PUSH_QUEUE_MAX] = (push_item){body, len, from_s, until_s};
    p->count++;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void pyroscope_push_stats(pyroscope_push *p, push_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    pthread_mutex_unlock(&p->lock);
}

void pyroscope_push_finish(pyroscope_push *p, double grace_s, push_stats *out)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    clock_gettime(CLOCK_MONOTONIC, &p->deadline);
    add_seconds(&p->deadline, grace_s);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->count; i++) {
        free(p->queue[(p->head + i) % PUSH_QUEUE_MAX].body);
        p->stats.dropped++;
    }
    if (out)
        *out = p->stats;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->name_q);
    free(p);
}
