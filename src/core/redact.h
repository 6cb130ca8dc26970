/* --redact: stable placeholders for what identifies people and projects in a profile that is
 * shared outside the team (docs/record.md#redact). Pure functions; the readers apply them where
 * the strings enter aprof, so every output shows the same placeholder.
 *
 *  - a path under a home directory, /home/USER/... or /root/...: ~/... (who owns it goes;
 *    the path inside the home directory stays, since file:line is what a profile is for);
 *  - a task name: task-XXXXXXXX, 8 hex digits of the name's FNV-1a hash (the same name gives
 *    the same placeholder in every run, so two profiles still compare); asyncio's default
 *    names (Task-N) carry nothing and stay;
 *  - a command line: REDACT_COMMAND_LINE. */
#ifndef APROF_REDACT_H
#define APROF_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define REDACT_COMMAND_LINE "<command line>"

/* Write the redacted form of path to out (cap > 0, always terminated); true if it changed. */
bool redact_path(const char *path, char *out, size_t cap);

/* Write the redacted form of a task name to out (cap > 0); true if it changed. */
bool redact_task_name(const char *name, char *out, size_t cap);

/* asyncio's default task name: "Task-" and decimal digits. */
bool task_name_is_default(const char *name);

/* Names that differ only in a trailing counter are one kind of task: "Task-17", "w-730",
 * "conn_41", "job.3", "req#9" (a separator - _ . : # or space after at least one character,
 * then decimal digits). Returns the length of the part kept, separator included ("w-" of
 * "w-730"), or 0 when the name has no such counter. */
size_t task_name_group_len(const char *name);

#endif
