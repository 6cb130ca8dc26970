/* Output writers. Each writes the whole aggregate to an open stream and returns 0, or -1 with
 * errno set when the stream failed. Callers open files through outfile.h (atomic replace). */
#ifndef APROF_WRITERS_H
#define APROF_WRITERS_H

#include "aggregate.h"

#include <stdio.h>

typedef struct writer_meta {
    const char *name;        /* profile file name shown by speedscope, e.g. "aprof: python app.py (pid 42)" */
    const char *exporter;    /* "aprof@0.1.0" */
} writer_meta;

/* speedscope file format (https://www.speedscope.app/file-format-schema.json): one "sampled"
 * profile per agg profile, unit seconds, frames shared. */
int write_speedscope(const agg *a, const writer_meta *meta, FILE *out);

/* Brendan Gregg's folded stacks: "thread;frame;frame count" lines, frames "name (file:line)".
 * The count is the number of samples. */
int write_collapsed(const agg *a, FILE *out);

#endif
