/* synth_profile: builds an aggregate from synthetic, deterministic samples and writes it with the
 * real writers, so that the output can be checked against the speedscope schema and loaded in
 * the speedscope app without a live Python process.
 *
 *   synth_profile OUT.speedscope.json [OUT.collapsed.txt]
 *
 * Three threads (one starting late, one torn sample that must be dropped), recursion, native and
 * synthetic frames, a frame name with quotes, control characters and invalid UTF-8, and a
 * synthetic "asyncio: awaiting" profile. On stdout, what was fed in, one line per profile:
 *   profile <samples> <total_ns> <name>
 * Exit status 0, or 7 (EXIT_OUTPUT) when a file cannot be written.
 */
#include "aggregate.h"
#include "exitcodes.h"
#include "outfile.h"
#include "writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSAMPLES 600
#define INTERVAL_NS 10000000ull /* 100 Hz */

static strtab *st;

static aprof_frame fr(const char *name, const char *file, int line, frame_kind kind)
{
    return (aprof_frame){strtab_intern_cstr(st, name), strtab_intern_cstr(st, file), line,
                         (uint8_t)kind};
}

static void push(aprof_thread_sample *t, aprof_frame f)
{
    if (t->nframes < t->cap_frames)
        t->frames[t->nframes++] = f;
}

static aprof_thread_sample *thread(aprof_sample *s, pid_t tid, const char *name)
{
    aprof_thread_sample *t = sample_add_thread(s, 64);
    if (!t) {
        fprintf(stderr, "synth_profile: out of memory\n");
        exit(EXIT_INTERNAL);
    }
    t->tid = tid;
    t->name = strtab_intern_cstr(st, name);
    t->state = TS_RUNNING;
    return t;
}

static void main_thread_stack(aprof_thread_sample *t, unsigned i)
{
    push(t, fr("<module>", "/app/server.py", 88, FRAME_PYTHON));
    push(t, fr("main", "/app/server.py", 71, FRAME_PYTHON));
    switch (i % 10) {
    case 0: case 1: case 2: case 3: /* 40%: parsing */
        push(t, fr("handle_request", "/app/server.py", 40, FRAME_PYTHON));
        push(t, fr("parse", "/app/parser.py", 12 + (int)(i % 3), FRAME_PYTHON));
        push(t, fr("json.loads", "/usr/lib/python3.12/json/__init__.py", 346, FRAME_PYTHON));
        break;
    case 4: case 5: case 6: { /* 30%: recursive fib of varying depth */
        push(t, fr("handle_request", "/app/server.py", 44, FRAME_PYTHON));
        unsigned depth = 2 + i % 7;
        for (unsigned d = 0; d < depth; d++)
            push(t, fr("fib", "/app/compute.py", d ? 9 : 7, FRAME_PYTHON));
        break;
    }
    case 7: /* 10%: native code */
        push(t, fr("compress", "/app/store.py", 20, FRAME_PYTHON));
        push(t, fr("zlib.compress", "", 0, FRAME_NATIVE));
        push(t, fr("deflate", "/usr/lib/x86_64-linux-gnu/libz.so.1", 0, FRAME_NATIVE));
        break;
    case 8: /* 10%: a hostile name from a remote process */
        push(t, fr("handle_request", "/app/server.py", 40, FRAME_PYTHON));
        push(t, fr("we\"ird\n\x01name\xff;semi\\ \xe2\x82\xac", "/app/we;ird.py", 3, FRAME_PYTHON));
        break;
    default: /* 10%: idle */
        push(t, fr("select", "/usr/lib/python3.12/selectors.py", 468, FRAME_PYTHON));
        push(t, fr("<idle>", "", 0, FRAME_MARK));
    }
}

static int write_file(const char *path, const agg *a, int speedscope)
{
    outfile o;
    writer_meta meta = {"aprof synthetic profile", "aprof@" APROF_VERSION};
    if (outfile_open(&o, path) < 0) {
        fprintf(stderr, "synth_profile: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = speedscope ? write_speedscope(a, &meta, outfile_stream(&o))
                        : write_collapsed(a, outfile_stream(&o));
    if (rc < 0) {
        int e = errno;
        outfile_abort(&o);
        fprintf(stderr, "synth_profile: cannot write %s: %s\n", path, strerror(e));
        return -1;
    }
    if (outfile_commit(&o) < 0) {
        fprintf(stderr, "synth_profile: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: synth_profile OUT.speedscope.json [OUT.collapsed.txt]\n");
        return EXIT_USAGE;
    }
    st = strtab_new();
    agg *a = st ? agg_new(st) : NULL;
    if (!a) {
        fprintf(stderr, "synth_profile: out of memory\n");
        return EXIT_INTERNAL;
    }
    agg_profile *awaiting = agg_profile_get(a, "asyncio: awaiting", 0);
    uint64_t fed_main = 0, fed_worker = 0, fed_io = 0, fed_await = 0;
    size_t n_main = 0, n_worker = 0, n_io = 0, n_await = 0;
    aprof_sample s;
    sample_init(&s);
    uint64_t t = 123456789000000ull; /* a CLOCK_MONOTONIC-like start */
    for (unsigned i = 0; i < NSAMPLES; i++) {
        sample_reset(&s);
        s.weight_ns = INTERVAL_NS + (i % 5) * 100000u; /* jitter, as real sampling has */
        t += s.weight_ns; /* a sample stands for the time since the previous one */
        s.t_ns = t;
        aprof_thread_sample *m = thread(&s, 4242, "MainThread");
        m->is_main = true;
        main_thread_stack(m, i);
        n_main++;
        fed_main += s.weight_ns;
        if (i >= NSAMPLES / 4) { /* a worker that starts late */
            aprof_thread_sample *w = thread(&s, 4243, "worker-1");
            push(w, fr("Thread.run", "/usr/lib/python3.12/threading.py", 1010, FRAME_PYTHON));
            push(w, fr("spin", "/app/cpu_split.py", 5 + (int)(i % 2), FRAME_PYTHON));
            n_worker++;
            fed_worker += s.weight_ns;
        }
        aprof_thread_sample *io = thread(&s, 4244, "io");
        push(io, fr("Thread.run", "/usr/lib/python3.12/threading.py", 1010, FRAME_PYTHON));
        push(io, fr("read_socket", "/app/net.py", 33, FRAME_PYTHON));
        if (i % 50 == 7) {
            io->flags |= TSF_TORN; /* dropped by agg_add_sample */
        } else {
            n_io++;
            fed_io += s.weight_ns;
        }
        if (agg_add_sample(a, &s) < 0) {
            fprintf(stderr, "synth_profile: out of memory\n");
            return EXIT_INTERNAL;
        }
        if (i % 3 == 0) {
            aprof_frame task[3] = {fr("<task fetch-7>", "", 0, FRAME_TASK),
                                   fr("fetch", "/app/client.py", 21, FRAME_PYTHON),
                                   fr("sleep", "/usr/lib/python3.12/asyncio/tasks.py", 665,
                                      FRAME_PYTHON)};
            if (agg_profile_add(a, awaiting, task, 3, s.t_ns, s.weight_ns) < 0)
                return EXIT_INTERNAL;
            n_await++;
            fed_await += s.weight_ns;
        }
    }
    sample_free(&s);
    printf("profile %zu %llu Thread 4242 \"MainThread\"\n", n_main, (unsigned long long)fed_main);
    printf("profile %zu %llu asyncio: awaiting\n", n_await, (unsigned long long)fed_await);
    printf("profile %zu %llu Thread 4244 \"io\"\n", n_io, (unsigned long long)fed_io);
    printf("profile %zu %llu Thread 4243 \"worker-1\"\n", n_worker, (unsigned long long)fed_worker);

    int rc = write_file(argv[1], a, 1);
    if (rc == 0 && argc == 3)
        rc = write_file(argv[2], a, 0);
    agg_free(a);
    strtab_free(st);
    return rc == 0 ? EXIT_OK : EXIT_OUTPUT;
}
