#include "record_segments.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int segment_path(char *out, size_t cap, const char *template_path, const char *ext,
                 uint64_t wall_ns)
{
    time_t secs = (time_t)(wall_ns / 1000000000ull);
    struct tm tm;
    char stamp[32];
    if (!gmtime_r(&secs, &tm) || !strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm))
        return 0;
    size_t len = strlen(template_path), elen = strlen(ext);
    const char *slash = strrchr(template_path, '/');
    const char *base = slash ? slash + 1 : template_path;
    /* "out.json" -> "out" + ".json"; a name that is only the extension keeps it whole */
    if (len > elen + 1 && (size_t)(template_path + len - base) > elen + 1 &&
        template_path[len - elen - 1] == '.' && strcmp(template_path + len - elen, ext) == 0) {
        int n = snprintf(out, cap, "%.*s-%s.%s", (int)(len - elen - 1), template_path, stamp, ext);
        return n > 0 && (size_t)n < cap;
    }
    int n = snprintf(out, cap, "%s-%s", template_path, stamp);
    return n > 0 && (size_t)n < cap;
}
