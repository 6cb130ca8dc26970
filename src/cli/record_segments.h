/* record --segment: the names of the files of a segmented recording. Each segment is a
 * complete profile of its own, named after the UTC time its first sample was taken:
 *     -o out.json   ->  out-20261206T012345Z.json, out-20261206T012445Z.json, ...
 *     (no -o)       ->  aprof-PID-20261206T012345Z.json */
#ifndef APROF_RECORD_SEGMENTS_H
#define APROF_RECORD_SEGMENTS_H

#include <stddef.h>
#include <stdint.h>

/* The file of the segment that started at wall_ns (CLOCK_REALTIME, ns): template (the -o path)
 * with "-TIME" inserted before its extension `ext` ("json", "pb.gz"...) when it ends with it,
 * else appended. false if it does not fit. */
int segment_path(char *out, size_t cap, const char *template_path, const char *ext,
                 uint64_t wall_ns);

#endif
