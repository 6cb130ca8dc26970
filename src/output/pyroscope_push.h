/* record --push URL: sending each segment's pprof profile to a Grafana Pyroscope server
 * (its /ingest HTTP API) from a thread of its own, so that a server that is down or slow never
 * slows sampling.
 *
 * Segments wait in a bounded queue; when it is full the oldest is dropped (and counted). A
 * failed send is retried with exponential backoff (0.5 s doubling to 30 s); a server that
 * answers 4xx rejected that profile, which is dropped (and counted). Plain http:// only.
 *
 * Each request: POST BASE/ingest?name=NAME{LABELS}&from=S&until=S&format=pprof&sampleRate=HZ
 *   &spyName=aprof&units=samples&aggregationType=sum, body multipart/form-data with the gzipped
 *   profile.proto in the field "profile". */
#ifndef APROF_PYROSCOPE_PUSH_H
#define APROF_PYROSCOPE_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PUSH_QUEUE_MAX 16

typedef struct pyroscope_push pyroscope_push;

typedef struct push_stats {
    uint64_t sent;        /* accepted by the server (2xx) */
    uint64_t rejected;    /* answered 4xx: dropped */
    uint64_t dropped;     /* pushed out of the full queue, or left unsent at the end */
    uint64_t failures;    /* attempts that failed (connection, timeout, 5xx) */
    char last_error[256]; /* the latest failure, "" if none */
} push_stats;

/* Is URL one pyroscope_push_start takes? false with a one-line reason in err. */
bool pyroscope_push_check_url(const char *url, char *err, size_t err_cap);

/* Parse URL (http://HOST[:PORT][/PATH]) and start the sending thread. name: the application
 * name with its labels, as Pyroscope expects it: "aprof.python3{pid=42}". NULL with a one-line
 * reason in err (a bad or https URL) or errno ENOMEM. */
pyroscope_push *pyroscope_push_start(const char *url, const char *name, double sample_rate,
                                     char *err, size_t err_cap);

/* Queue one profile covering [from_s, until_s] (Unix seconds); takes ownership of body
 * (malloc'd). Never blocks on the network. */
void pyroscope_push_enqueue(pyroscope_push *p, char *body, size_t len, uint64_t from_s,
                            uint64_t until_s);

/* A copy of the counters so far (thread-safe). */
void pyroscope_push_stats(pyroscope_push *p, push_stats *out);

/* Send what is queued for at most `grace_s` seconds more, stop the thread, free everything.
 * *out (optional): the final counters; what could not be sent counts as dropped. */
void pyroscope_push_finish(pyroscope_push *p, double grace_s, push_stats *out);

#endif
