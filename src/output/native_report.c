#include "native_report.h"

#include "native_stack.h"

void native_report_print(const native_report *r, FILE *out)
{
    if (r->states && r->states->total) {
        char states[256];
        threadstate_format(r->states, states, sizeof(states));
        fprintf(out, "aprof: threads %s", states);
        if (r->gil_only)
            fprintf(out, "; %llu thread samples not holding the GIL skipped (--gil)",
                    (unsigned long long)r->not_gil);
        fputc('\n', out);
    }
    const native_stack *n = r->s ? r->s->native : NULL;
    if (n) {
        const native_stack_stats *ns = &n->stats;
        native_sleepers_stats zs = native_sleepers_get_stats(n->sleepers);
        fprintf(out, "aprof: native stacks (%s): %llu merged, %llu unmerged, %llu not unwound; "
                "target stopped %.1f us per sample (max %.1f us); %llu stacks of threads asleep "
                "in a syscall not stopped again, %llu of them woke while read (no native frames)\n",
                unwinder_kind_name(unwinder_get_kind(n->uw)), (unsigned long long)ns->merged,
                (unsigned long long)ns->unmerged,
                (unsigned long long)(ns->not_stopped + ns->unwind_failures),
                ns->samples ? (double)ns->stopped_ns_total / 1e3 / (double)ns->samples : 0.0,
                (double)ns->stopped_ns_max / 1e3,
                (unsigned long long)(zs.reused + ns->sleepers_woke),
                (unsigned long long)ns->sleepers_woke);
        if (ns->freeze_failures)
            fprintf(out, "aprof: %llu samples were taken without stopping the target: they have "
                    "no native frames\n", (unsigned long long)ns->freeze_failures);
    }
}

uint64_t native_report_stopped_ns(const native_report *r)
{
    return r->s && r->s->native ? r->s->native->stats.stopped_ns_total : 0;
}

void native_report_json(const native_report *r, json_writer *w)
{
    if (r->states) {
        json_key(w, "thread_states");
        json_begin_object(w);
        json_kv_uint(w, "thread_samples", r->states->total);
        json_kv_uint(w, "running", r->states->activity[ACT_RUNNING]);
        json_kv_uint(w, "in_syscall", r->states->activity[ACT_SYSCALL]);
        json_kv_uint(w, "sleeping", r->states->activity[ACT_SLEEPING]);
        json_kv_uint(w, "unknown", r->states->activity[ACT_UNKNOWN]);
        json_kv_uint(w, "gil_known", r->states->gil_known);
        json_kv_uint(w, "gil_held", r->states->gil_held);
        if (r->gil_only)
            json_kv_uint(w, "not_holding_gil_skipped", r->not_gil);
        json_end_object(w);
    }
    const native_stack *n = r->s ? r->s->native : NULL;
    if (n) {
        const native_stack_stats *ns = &n->stats;
        json_key(w, "native");
        json_begin_object(w);
        json_kv_string(w, "unwinder", unwinder_kind_name(unwinder_get_kind(n->uw)));
        json_kv_uint(w, "samples", ns->samples);
        json_kv_uint(w, "thread_stacks", ns->thread_stacks);
        json_kv_uint(w, "merged", ns->merged);
        json_kv_uint(w, "unmerged", ns->unmerged);
        json_kv_uint(w, "not_stopped", ns->not_stopped);
        json_kv_uint(w, "unwind_failures", ns->unwind_failures);
        json_kv_uint(w, "freeze_failures", ns->freeze_failures);
        native_sleepers_stats zs = native_sleepers_get_stats(n->sleepers);
        json_kv_uint(w, "asleep_not_stopped", zs.reused + ns->sleepers_woke);
        json_kv_uint(w, "asleep_woke_while_read", ns->sleepers_woke);
        json_key(w, "stopped_us_mean");
        json_double(w, ns->samples ? (double)ns->stopped_ns_total / 1e3 / (double)ns->samples : 0.0);
        json_key(w, "stopped_us_max");
        json_double(w, (double)ns->stopped_ns_max / 1e3);
        json_end_object(w);
    }
}
