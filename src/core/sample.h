/* The one data model of aprof. Readers produce samples; the aggregator, writers and TUI consume
 * them. Data flows one way: reader -> sample -> aggregator -> writers / TUI.
 *
 * All strings in a sample are interned (strtab), so they may be compared and hashed as pointers
 * and outlive the sample.
 */
#ifndef APROF_SAMPLE_H
#define APROF_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define APROF_MAX_FRAMES 2048

typedef enum frame_kind {
    FRAME_PYTHON = 0, /* a Python function: name is the (qualified) function name */
    FRAME_NATIVE = 1, /* a C frame: name is a symbol or library+offset */
    FRAME_TASK = 2,   /* a synthetic frame naming an asyncio task: "<task NAME>" */
    FRAME_MARK = 3,   /* a synthetic marker, e.g. "<idle>", "<truncated>" */
} frame_kind;

typedef struct aprof_frame {
    const char *name; /* interned */
    const char *file; /* interned; "" when unknown */
    int32_t line;     /* 0 when unknown */
    uint8_t kind;     /* frame_kind */
    uint8_t flags;    /* frame_flags */
    int32_t first_line; /* a Python function's first line (co_firstlineno); 0 when unknown */
} aprof_frame;

enum frame_flags {
    /* A Python frame that its C-level evaluation call (_PyEval_EvalFrameDefault) started with:
     * every frame on 3.10; on 3.11 the frame marked is_entry; on 3.12+ the frame just inside a
     * C-stack shim frame. Native-stack merging replaces one eval call by the Python frames from
     * its entry frame up to the next entry frame. */
    FRAMEF_ENTRY = 1u << 0,
};

typedef enum thread_state {
    TS_UNKNOWN = 0,
    TS_RUNNING,  /* R: on a CPU or runnable */
    TS_SLEEPING, /* S: interruptible wait */
    TS_DISK,     /* D: uninterruptible wait */
    TS_STOPPED,  /* T/t */
    TS_OTHER,
} thread_state;

enum thread_sample_flags {
    TSF_TORN = 1u << 0,      /* the stack changed while it was read: frames are not trustworthy */
    TSF_TRUNCATED = 1u << 1, /* more frames than APROF_MAX_FRAMES, or a broken chain: kept prefix */
    TSF_IDLE_LOOP = 1u << 2, /* an event loop thread waiting in its selector */
    TSF_NO_PYTHON = 1u << 3, /* thread has no Python frame right now */
    /* Torn, but its loop's running callback was found otherwise: by a probe of the task step
     * last seen running (one byte: is the step's coroutine still executing?), or by the second,
     * readable read of the thread a few microseconds later. `loop` is set, `callback_id` is the
     * identity of the run going on (the probed step's when it still runs), 0 when the probed
     * step has ended and nothing else is known. Frames stay untrustworthy. */
    TSF_STEP_PROBED = 1u << 4,
    /* Torn even after the retries, but not lost: frames hold the outer frames that two reads
     * found identical, then (TSF_MARKED) one FRAME_MARK "<unreadable>" frame, unless those
     * frames were found to reach the innermost one. Count it (it is busy time of that thread,
     * never idle time); its loop view (loop_idle, callback) is not known. */
    TSF_PARTIAL = 1u << 5,
    TSF_MARKED = 1u << 6, /* a TSF_PARTIAL stack that ends in the "<unreadable>" mark */
    /* The cyclic garbage collector was running in this thread (the interpreter's
     * gc.collecting flag set while its stack was read, and it held the GIL): its Python frames
     * are where the collection was triggered, followed by a FRAME_MARK "<GC>" frame (not with
     * --native, whose C frames show the collector's own functions). */
    TSF_GC = 1u << 7,
};

typedef enum loop_kind {
    LOOP_NONE = 0,
    LOOP_ASYNCIO = 1, /* asyncio's pure-Python event loop: BaseEventLoop frames on the stack */
    LOOP_NATIVE = 2,  /* a loop in C (uvloop): only a runner frame below the callbacks */
} loop_kind;

typedef struct aprof_thread_sample {
    pid_t tid;               /* kernel thread id (native_thread_id) */
    uint64_t py_thread_id;   /* threading.get_ident() value */
    const char *name;        /* interned; threading name, else /proc comm; never NULL */
    bool is_main;
    uint8_t state;           /* thread_state */
    int8_t holds_gil;        /* 1, 0, or -1 when unknown */
    uint32_t flags;          /* thread_sample_flags */
    uint32_t nframes;
    uint32_t cap_frames;
    aprof_frame *frames;     /* outermost first; owned by the sample */
    /* Event-loop view, for threads that run an asyncio or uvloop loop (loop != LOOP_NONE). */
    uint8_t loop;            /* loop_kind */
    uint8_t loop_idle;       /* 1: waiting for I/O in its selector (kernel and/or Python view) */
    int32_t callback_frame;  /* index in frames of the first frame of the running callback or
                              * task step (just inside Handle._run / the native loop), -1 */
    uint64_t callback_id;    /* identity of that callback run (the Handle object, or the
                              * coroutine for loops without Python Handles), 0 when idle */
    int32_t syscall;         /* syscall the thread is blocked in (/proc), -1 running, -2 unknown */
    uint64_t *owners;        /* parallel to frames: address of the generator or coroutine that
                              * owns frame i in the target, 0 for plain function frames; lets
                              * the asyncio layer find which task a frame belongs to */
} aprof_thread_sample;

typedef struct aprof_sample {
    pid_t pid;               /* the process sampled (a recording may follow several) */
    uint64_t t_ns;           /* CLOCK_MONOTONIC when the sample was started */
    uint64_t weight_ns;      /* time this sample stands for: since the previous sample */
    uint32_t cost_ns;        /* how long taking it took */
    uint32_t nthreads;
    aprof_thread_sample *threads; /* owned by the sample */
    uint32_t cap_threads;
} aprof_sample;

/* thread_state for a /proc run-state letter ('R', 'S', 'D', 'T', ...; 0: unknown). */
uint8_t thread_state_of_letter(char c);

/* Buffers are reused from sample to sample; free only at the end. */
void sample_init(aprof_sample *s);
void sample_reset(aprof_sample *s);
void sample_free(aprof_sample *s);
/* Append a thread (fields zeroed, nframes 0) with room for at least `max_frames` frames;
 * NULL on allocation failure. */
aprof_thread_sample *sample_add_thread(aprof_sample *s, uint32_t max_frames);

#endif
