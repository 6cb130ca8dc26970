/* Reading back the files aprof wrote into a recording (recording.h), for `aprof diff`: a
 * speedscope file, a pprof file (gzipped or not) or a --summary file, told apart by their
 * contents. Files are untrusted: a malformed one is refused with one line, never half-read. */
#ifndef APROF_RECORDING_READ_H
#define APROF_RECORDING_READ_H

#include "recording.h"
#include "status.h"

/* Read one file into r, or add it to r (a profile and a summary of the same run).
 * APROF_E_BAD_INPUT for a file that is not one of them or is malformed, with the reason in err
 * (r is then incomplete: free it). */
aprof_status recording_add_file(recording *r, const char *path, aprof_error *err);

#endif
