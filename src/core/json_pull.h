/* A pull (streaming) JSON reader: one token at a time, for files too large to hold as a tree
 * (a long recording's speedscope file has millions of frame indices). It checks the whole
 * grammar as it goes (commas, colons, nesting, string escapes, number syntax); nesting is
 * bounded by JSON_PULL_MAX_DEPTH. A malformed document gives JT_ERROR with a message and the
 * byte offset, never a read outside the text. */
#ifndef APROF_JSON_PULL_H
#define APROF_JSON_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_PULL_MAX_DEPTH 64

typedef enum jtok {
    JT_ERROR = 0,
    JT_EOF,          /* the one top-level value is complete and only whitespace follows */
    JT_BEGIN_OBJECT,
    JT_END_OBJECT,
    JT_BEGIN_ARRAY,
    JT_END_ARRAY,
    JT_KEY,          /* an object member's name: in str */
    JT_STRING,       /* in str (NUL-terminated; an embedded \u0000 ends it early) */
    JT_NUMBER,       /* in num */
    JT_TRUE,
    JT_FALSE,
    JT_NULL,
} jtok;

typedef struct json_pull {
    const char *text, *p, *end;
    int depth;
    char stack[JSON_PULL_MAX_DEPTH]; /* '{' or '[' per open container */
    bool need_value;                 /* after a key's colon, or at the top */
    bool had_item;                   /* the innermost container has at least one item */
    bool done;                       /* the top-level value is complete */
    char *str;                       /* the current string or key, decoded */
    size_t str_len, str_cap;
    double num;
    char err[128];                   /* JT_ERROR: what and where */
} json_pull;

void json_pull_init(json_pull *j, const char *text, size_t len);
void json_pull_free(json_pull *j);
jtok json_next(json_pull *j);
/* After a token that begins a value (JT_BEGIN_*: its whole content; a scalar: nothing more),
 * skip to its end. false on a malformed document. */
bool json_skip(json_pull *j, jtok begun);

#endif
