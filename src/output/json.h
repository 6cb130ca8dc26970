/* A small streaming JSON writer.
 *
 * Values are written straight to a FILE as they are produced; the writer only remembers, per open
 * container, whether a separator is due. Strings come from remote processes and may hold any
 * bytes: the output is always valid JSON in valid UTF-8 (control characters escaped, invalid
 * UTF-8 sequences replaced by U+FFFD). Numbers never depend on the C locale.
 *
 * Errors are sticky: after the first failure every call is a no-op and json_finish() reports it.
 */
#ifndef APROF_JSON_H
#define APROF_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 64
#define JSON_BUF_SIZE 8192

typedef struct json_writer {
    FILE *out;
    size_t len;                     /* bytes pending in buf */
    char buf[JSON_BUF_SIZE];        /* own buffer: one fwrite per 8 KiB, not one call per byte */
    int depth;
    bool after_key;                 /* a key was written; the next value needs no comma */
    bool has_items[JSON_MAX_DEPTH]; /* the container at this depth already has a member */
    bool is_object[JSON_MAX_DEPTH];
    int error;                      /* first errno seen, 0 while all is well */
} json_writer;

void json_init(json_writer *w, FILE *out);

void json_begin_object(json_writer *w);
void json_end_object(json_writer *w);
void json_begin_array(json_writer *w);
void json_end_array(json_writer *w);

/* An object member's key; the next call must write its value. */
void json_key(json_writer *w, const char *key);

void json_string(json_writer *w, const char *s); /* NULL writes "" */
void json_string_n(json_writer *w, const char *s, size_t len);
void json_int(json_writer *w, int64_t v);
void json_uint(json_writer *w, uint64_t v);
void json_bool(json_writer *w, bool v);
/* Shortest decimal that reads back as v; non-finite values (not representable in JSON) as 0. */
void json_double(json_writer *w, double v);
/* ns / 1e9 written exactly as a decimal number of seconds ("1.5", "0.000001"). */
void json_seconds_ns(json_writer *w, uint64_t ns);
/* ns / 1e3 written exactly as a decimal number of microseconds (trace event times). */
void json_micros_ns(json_writer *w, uint64_t ns);

/* Shorthands for one object member. */
void json_kv_string(json_writer *w, const char *key, const char *s);
void json_kv_int(json_writer *w, const char *key, int64_t v);
void json_kv_uint(json_writer *w, const char *key, uint64_t v);
void json_kv_double(json_writer *w, const char *key, double v);

/* Flushes and checks the stream and the nesting. 0, or -1 with errno set. */
int json_finish(json_writer *w);

/* Length of the valid UTF-8 sequence starting at s (n bytes available), or 0 when it is not
 * valid; then *skip is the number of bytes that one U+FFFD replaces (the maximal subpart, >= 1).
 * Rejects overlong forms, surrogates and code points above U+10FFFF. n must be >= 1. */
size_t utf8_valid_len(const unsigned char *s, size_t n, size_t *skip);

#endif
