/* Atomic output files.
 *
 * outfile_open() creates a fresh temporary file in the destination's directory; the caller writes
 * through outfile_stream(); outfile_commit() flushes, fsyncs and renames it over the destination,
 * so a reader sees either the old file or the complete new one, never a partial write. On any
 * failure, and on outfile_abort(), the temporary file is removed and the destination is left as
 * it was. The path "-" means standard output, and a path naming something other than a regular
 * file (/dev/null, a FIFO) is written in place: renaming over those would replace them. A destination
 * that is a symbolic link is replaced by the new file (the link's target is left alone).
 *
 * Every function returns 0, or -1 with errno set (EACCES, ENOENT, ENOTDIR, EISDIR, ENOSPC, ...)
 * so that the CLI can print one line with strerror() and exit with EXIT_OUTPUT.
 */
#ifndef APROF_OUTFILE_H
#define APROF_OUTFILE_H

#include <stdbool.h>
#include <stdio.h>

typedef struct outfile {
    FILE *fp;       /* the stream to write; NULL when not open */
    char *path;     /* destination */
    char *tmp_path; /* temporary file beside it; NULL for standard output */
    bool is_stdout;
    bool direct;    /* the destination is a device, FIFO or socket: written in place */
} outfile;

/* Opens a temporary file for `path`. Fails early (before anything is written) when the directory
 * does not exist or is not writable, or when path names a directory. */
int outfile_open(outfile *o, const char *path);

FILE *outfile_stream(outfile *o);

/* Flush, fsync, rename over the destination. Closes the outfile whether it succeeds or not. */
int outfile_commit(outfile *o);

/* Discards everything written; the destination is untouched. Safe on a closed outfile. */
void outfile_abort(outfile *o);

#endif
