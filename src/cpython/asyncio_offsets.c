/* _Py_AsyncioModuleDebugOffsets validation and layout override (see asyncio_offsets.h). */
#include "asyncio_offsets.h"

#include <stdint.h>
#include <string.h>

#define MAX_STRUCT (1u << 20) /* PyInterpreterState is about 220 KiB; nothing is near 1 MiB */

/* One published value: its byte offset in the struct, the offset of its table's size (the
 * value must lie inside; IS_SIZE: it is that size), and the py_layout field it sets. */
#define IS_SIZE UINT16_MAX
typedef struct aoff_field {
    uint16_t src;
    uint16_t size_src;
    size_t dst; /* offsetof(py_layout, ...), a loff */
} aoff_field;

#define AF(src_, size_src_, member) { src_, size_src_, offsetof(py_layout, member) }
#define CHECK_ONLY SIZE_MAX /* dst of a value aprof does not use: it is only validated */
#define AV(src_, size_src_) { src_, size_src_, CHECK_ONLY }

/* 3.14.x: 13 uint64 (task object 0-48, interpreter state 56-64, thread state 72-96). */
static const aoff_field fields_3_14[] = {
    AF(0, IS_SIZE, asyncio.task_sizeof),
    AF(8, 0, asyncio.task_name),
    AV(16, 0), /* task_awaited_by */
    AV(24, 0), /* task_is_task */
    AV(32, 0), /* task_awaited_by_is_set */
    AF(40, 0, asyncio.task_coro),
    AF(48, 0, asyncio.task_node),
    AV(56, IS_SIZE),
    AF(64, 56, interp.asyncio_tasks_head),
    AV(72, IS_SIZE),
    AF(80, 72, tstate.asyncio_running_loop),
    AF(88, 72, tstate.asyncio_running_task),
    AF(96, 72, tstate.asyncio_tasks_head),
};

typedef struct aoff_spec {
    unsigned minor;
    size_t struct_size;
    uint16_t task_size, interp_size, tstate_size; /* where the three struct sizes are */
    const aoff_field *fields;
    size_t nfields;
} aoff_spec;

static const aoff_spec specs[] = {
    { 14, 104, 0, 56, 72, fields_3_14, sizeof fields_3_14 / sizeof fields_3_14[0] },
    /* 3.15.x: the same struct (symbol renamed _Py_AsyncioDebug), checked against the DWARF of
     * Debian's python3.15d */
    { 15, 104, 0, 56, 72, fields_3_14, sizeof fields_3_14 / sizeof fields_3_14[0] },
};

static uint64_t get_u64(const unsigned char *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, sizeof v);
    return v;
}

bool asyncio_offsets_apply(const void *bytes, size_t len, const py_layout *in, py_layout *out)
{
    *out = *in;
    const aoff_spec *spec = NULL;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (specs[i].minor == (in->version & 0xffu))
            spec = &specs[i];
    if (!spec || !bytes || len < spec->struct_size)
        return false;
    const unsigned char *b = bytes;
    /* the three sizes first: plausible, and the thread state's and interpreter's at least as
     * large as the fields the interpreter's own offsets put in them */
    uint64_t task_size = get_u64(b, spec->task_size), interp_size = get_u64(b, spec->interp_size),
             ts_size = get_u64(b, spec->tstate_size);
    if (task_size == 0 || task_size > 4096 || interp_size == 0 || interp_size > MAX_STRUCT ||
        ts_size == 0 || ts_size > MAX_STRUCT || ts_size <= (uint64_t)in->tstate.datastack_chunk ||
        interp_size <= (uint64_t)in->interp.threads_head)
        return false;
    for (size_t i = 0; i < spec->nfields; i++) {
        const aoff_field *f = &spec->fields[i];
        uint64_t v = get_u64(b, f->src);
        if (f->size_src != IS_SIZE && v + 1 > get_u64(b, f->size_src))
            return false; /* the field must lie inside its struct */
    }
    for (size_t i = 0; i < spec->nfields; i++) {
        if (spec->fields[i].dst == CHECK_ONLY)
            continue;
        loff v = (loff)get_u64(b, spec->fields[i].src);
        memcpy((unsigned char *)out + spec->fields[i].dst, &v, sizeof v);
    }
    return true;
}
