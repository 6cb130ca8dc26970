#include "threadstate.h"

#include <stdio.h>
#include <string.h>

thread_activity threadstate_activity(const aprof_thread_sample *t)
{
    switch (t->state) {
    case TS_RUNNING: return t->syscall >= 0 ? ACT_SYSCALL : ACT_RUNNING;
    case TS_SLEEPING:
    case TS_DISK: return ACT_SLEEPING;
    default: return ACT_UNKNOWN;
    }
}

const char *threadstate_activity_name(thread_activity a)
{
    switch (a) {
    case ACT_RUNNING: return "running";
    case ACT_SYSCALL: return "in syscall";
    case ACT_SLEEPING: return "sleeping";
    default: return "unknown state";
    }
}

int threadstate_marks_init(threadstate_marks *m, strtab *st)
{
    for (int a = 0; a < ACT_COUNT; a++) {
        for (int g = 0; g < 2; g++) {
            char buf[64];
            snprintf(buf, sizeof(buf), "<%s%s>", threadstate_activity_name((thread_activity)a),
                     g ? ", GIL" : "");
            m->name[a][g] = strtab_intern_cstr(st, buf);
            if (!m->name[a][g])
                return -1;
        }
    }
    return 0;
}

void threadstate_prepend_mark(const threadstate_marks *m, aprof_thread_sample *t)
{
    if (t->cap_frames == 0)
        return;
    uint32_t keep = t->nframes < t->cap_frames ? t->nframes : t->cap_frames - 1;
    if (keep < t->nframes)
        t->flags |= TSF_TRUNCATED;
    memmove(t->frames + 1, t->frames, keep * sizeof(*t->frames));
    memmove(t->owners + 1, t->owners, keep * sizeof(*t->owners));
    const char *name = m->name[threadstate_activity(t)][t->holds_gil == 1];
    t->frames[0] = (aprof_frame){name, "", 0, FRAME_MARK, 0};
    t->owners[0] = 0;
    t->nframes = keep + 1;
    if (t->callback_frame >= 0)
        t->callback_frame = (uint32_t)t->callback_frame + 1 < t->nframes ? t->callback_frame + 1 : -1;
}

void threadstate_count(threadstate_counts *c, const aprof_thread_sample *t)
{
    c->total++;
    c->activity[threadstate_activity(t)]++;
    if (t->holds_gil >= 0) {
        c->gil_known++;
        c->gil_held += t->holds_gil == 1;
    }
}

void threadstate_format(const threadstate_counts *c, char *buf, size_t len)
{
    if (!len)
        return;
    buf[0] = 0;
    if (!c->total)
        return;
    size_t n = 0;
    for (int a = ACT_RUNNING; a < ACT_COUNT; a++) {
        int w = snprintf(buf + n, len - n, "%s%s %.1f%%", n ? ", " : "",
                         threadstate_activity_name((thread_activity)a),
                         100.0 * (double)c->activity[a] / (double)c->total);
        if (w < 0 || (size_t)w >= len - n)
            return;
        n += (size_t)w;
    }
    if (c->activity[ACT_UNKNOWN]) {
        int w = snprintf(buf + n, len - n, ", unknown %.1f%%",
                         100.0 * (double)c->activity[ACT_UNKNOWN] / (double)c->total);
        if (w < 0 || (size_t)w >= len - n)
            return;
        n += (size_t)w;
    }
    if (c->gil_known)
        snprintf(buf + n, len - n, "; GIL held %.1f%%",
                 100.0 * (double)c->gil_held / (double)c->gil_known);
}
