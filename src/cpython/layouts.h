/* Per-version layouts of the CPython structures aprof reads.
 *
 * Every piece of version-specific CPython knowledge is data in this table (src/cpython/layouts.c), one
 * entry per minor version, so that stripped builds (no DWARF) work. The values are derived from
 * the DWARF of debug builds by tools/layoutgen.c and checked against every interpreter on the
 * machine by tests/unit/test_layouts.c. On 3.13+ the target's own _Py_DebugOffsets override the
 * fields it publishes (see pyruntime.c).
 *
 * Offsets are in bytes. LAYOUT_ABSENT marks a field the version does not have.
 */
#ifndef APROF_LAYOUTS_H
#define APROF_LAYOUTS_H

#include <stddef.h>
#include <stdint.h>

#define LAYOUT_ABSENT (-1)
#define LAYOUT_NOT_BITFIELD 0xff

typedef int32_t loff; /* a field offset or LAYOUT_ABSENT */

/* How a frame records its position in the bytecode. */
typedef enum instr_kind {
    INSTR_LASTI_INDEX = 0, /* 3.10: int f_lasti, index in code units of the last instruction */
    INSTR_POINTER = 1,     /* 3.11+: pointer into co_code_adaptive (prev_instr / instr_ptr) */
} instr_kind;

typedef enum linetable_kind {
    LINETABLE_310 = 0, /* PEP 626 (bytecode delta, line delta) pairs */
    LINETABLE_311 = 1, /* 3.11+ location table */
} linetable_kind;

/* How a C-to-Python call (an evaluation loop entered from C: a task step, a callback) shows
 * in the frame chain. */
typedef enum entry_kind {
    ENTRY_EVERY_FRAME = 0, /* 3.10: every frame object is entered by its own evaluation */
    ENTRY_FLAG = 1,        /* 3.11: _PyInterpreterFrame.is_entry on the first frame */
    ENTRY_SHIM_FRAME = 2,  /* 3.12+: a shim frame owned by the C stack below it */
} entry_kind;

/* How a suspended generator/coroutine shows what it awaits (what _PyGen_yf looks at). */
typedef enum yf_kind {
    YF_NEXT_OPCODE = 0,  /* 3.10: the next instruction is YIELD_FROM (yf_op[0]) */
    YF_RESUME_OPARG = 1, /* 3.11/3.12: the next instruction is a RESUME form (yf_op) whose oparg
                          * is >= 2 ("after yield from / await") */
    YF_FRAME_STATE = 2,  /* 3.13+: gi_frame_state == fs_suspended_yield_from */
} yf_kind;

/* Where an instance of a type with Py_TPFLAGS_MANAGED_DICT keeps its attributes. */
typedef enum managed_dict_kind {
    MANAGED_DICT_NONE = 0,       /* 3.10: no managed dicts */
    MANAGED_DICT_VALUES_PTR = 1, /* 3.11: dict pointer at managed_dict, values at managed_values */
    MANAGED_DICT_TAGGED = 2,     /* 3.12: one word at managed_dict: low bit set = values - 1 */
    MANAGED_DICT_INLINE = 3,     /* 3.13+: dict pointer at managed_dict, values inline after the
                                  * object (Py_TPFLAGS_INLINE_VALUES) */
} managed_dict_kind;

/* Whether _PyRuntime starts with _Py_DebugOffsets, and what they are to aprof. */
enum debug_offsets_use {
    DEBUG_OFFSETS_NONE = 0,      /* 3.10-3.12 */
    DEBUG_OFFSETS_PREFERRED = 1, /* 3.13: they override the table when valid */
    DEBUG_OFFSETS_REQUIRED = 2,  /* 3.14+: the table only fills in what they do not publish;
                                  * a target whose offsets do not validate is not read */
};

/* Where asyncio keeps the tasks the asyncio reader lists. */
typedef enum task_registry_kind {
    TASK_REGISTRY_MODULE_SETS = 0, /* 3.10-3.13: asyncio.tasks._scheduled_tasks (WeakSet) and
                                    * _eager_tasks, found through sys.modules */
    TASK_REGISTRY_THREAD_LISTS = 1,/* 3.14+: C tasks on per-thread and per-interpreter intrusive
                                    * lists, where _asyncio's .AsyncioDebug section says */
} task_registry_kind;

/* What a version does that no struct member says: written by hand (layoutgen --emit copies
 * them from the previous table), each checked against the running interpreter by the probe of
 * tests/live/test_layouts.c (opcodes against dis, frame states against real generators,
 * managed dicts against real instances). */
typedef struct py_facts {
    uint8_t entry;               /* entry_kind */
    uint8_t owner_cstack;        /* ENTRY_SHIM_FRAME: the frame owner value of a shim frame */
    uint8_t yf;                  /* yf_kind */
    uint8_t yf_op[3];            /* opcodes of yf (0: unused) */
    int8_t fs_created;           /* gi_frame_state / f_state of a generator not started */
    int8_t fs_suspended_yield_from; /* YF_FRAME_STATE: suspended in await / yield from */
    int8_t fs_completed;         /* returned; states >= it have no frame to read */
    int8_t fs_executing;         /* running now (0 up to 3.14, 4 in 3.15) */
    uint8_t yf_slot_depth;       /* the awaited object of a suspended coroutine is the value
                                  * stack's top minus this many slots (3.15: 2, the sent value's
                                  * slot is on top) */
    uint8_t managed_dict;        /* managed_dict_kind */
    loff managed_dict_offset;    /* from the object's start (negative: the pre-header) */
    loff managed_values_offset;  /* MANAGED_DICT_VALUES_PTR */
    uint8_t debug_offsets;       /* debug_offsets_use: _PyRuntime starts with _Py_DebugOffsets */
    uint8_t code_tag_bits;       /* low bits of a frame's code reference that tag it, not the
                                  * address (3.14+: f_executable is a _PyStackRef) */
    uint8_t task_registry;       /* task_registry_kind: where asyncio keeps its tasks */
} py_facts;

typedef struct py_layout {
    uint32_t version;          /* major << 8 | minor, e.g. 0x030b for 3.11 */
    const char *name;          /* "3.11" */
    uint8_t instr_kind;
    uint8_t linetable_kind;
    py_facts facts;

    struct {
        loff interpreters_head; /* _PyRuntimeState.interpreters.head */
        loff interpreters_main; /* _PyRuntimeState.interpreters.main */
        loff main_thread;       /* _PyRuntimeState.main_thread (pthread ident of the main thread) */
        loff gil_last_holder;   /* _PyRuntimeState.ceval.gil.last_holder (3.10/3.11) */
        loff gil_locked;        /* _PyRuntimeState.ceval.gil.locked (3.10/3.11) */
    } runtime;

    struct {
        loff next;             /* PyInterpreterState.next */
        loff threads_head;     /* PyInterpreterState.threads.head */
        loff threads_main;     /* PyInterpreterState.threads.main (3.12+) */
        loff modules;          /* PyInterpreterState.modules / .imports.modules (sys.modules) */
        loff gil;              /* PyInterpreterState.ceval.gil (3.12+: pointer to the GIL state) */
        loff gil_last_holder;  /* _gil_runtime_state.last_holder (3.12+, via interp.gil) */
        loff gil_locked;       /* _gil_runtime_state.locked (3.12+) */
        loff asyncio_tasks_head; /* C tasks of threads that ended (3.14+) */
        loff gc;               /* PyInterpreterState.gc: the cyclic GC's state */
    } interp;

    struct {
        loff collecting;       /* _gc_runtime_state.collecting: a collection is running */
    } gc;

    struct {
        loff prev;              /* PyThreadState.prev */
        loff next;              /* PyThreadState.next */
        loff interp;            /* PyThreadState.interp */
        loff thread_id;         /* PyThreadState.thread_id (pthread_t) */
        loff native_thread_id;  /* PyThreadState.native_thread_id (3.11+) */
        loff frame;             /* 3.10 .frame, 3.11/3.12 .cframe, 3.13 .current_frame */
        loff cframe_current_frame; /* _PyCFrame.current_frame (3.11/3.12), else ABSENT */
        loff cframe_previous;   /* _PyCFrame.previous (3.11/3.12), else ABSENT */
        loff datastack_chunk;   /* 3.11+ */
        loff datastack_top;     /* 3.11+ */
        loff datastack_limit;   /* 3.11+ */
        loff asyncio_running_loop; /* _PyThreadStateImpl.asyncio_running_loop (3.13+) */
        loff asyncio_running_task; /* _PyThreadStateImpl.asyncio_running_task (3.14+) */
        loff asyncio_tasks_head;   /* _PyThreadStateImpl.asyncio_tasks_head: its C tasks (3.14+) */
    } tstate;

    struct {
        loff previous;   /* f_back (3.10, PyFrameObject*) / previous (_PyInterpreterFrame*) */
        loff code;       /* f_code / f_executable */
        loff instr;      /* f_lasti (int) / prev_instr / instr_ptr */
        loff stacktop;   /* f_stackdepth (3.10) / stacktop (3.11-3.13, index into localsplus) */
        loff stackpointer; /* 3.14+: pointer to the value stack's top (replaces stacktop) */
        loff owner;      /* 3.11+ */
        loff is_entry;   /* 3.11 only */
        loff localsplus; /* f_localsplus / localsplus */
        loff valuestack; /* 3.10: f_valuestack (PyObject**) */
        loff state;      /* 3.10: f_state */
        loff gen;        /* 3.10: f_gen */
    } frame;

    struct {
        loff filename, name, qualname, linetable, firstlineno, flags;
        loff code;          /* 3.10: co_code (bytes object) */
        loff code_adaptive; /* 3.11+: inline bytecode */
        loff size;          /* ob_size: 3.11+ number of code units */
        loff firsttraceable;/* 3.11/3.12 _co_firsttraceable */
        loff framesize;     /* 3.12+ co_framesize: the slots its frames take on the data stack */
        loff nlocalsplus, stacksize; /* 3.11: those slots are localsplus/8 + these two */
    } code;

    struct { loff previous, data; } chunk;      /* _PyStackChunk (3.11+): data-stack chunk */

    struct {
        loff length, state, ascii_data, compact_data; /* PyASCIIObject / PyCompactUnicodeObject */
        uint8_t kind_shift, compact_bit, ascii_bit;    /* bit positions in state */
    } unicode;

    struct { loff size, sval; } bytes;
    struct { loff size, items; } tuple;
    struct { loff size, items; } list;
    struct { loff type; } object;               /* ob_type */
    struct { loff name, basicsize, flags, dictoffset, mro, dict, ht_cached_keys, ht_qualname; } type;
    struct { loff size_or_tag, digits; uint8_t tagged; } longobj; /* 3.12+: lv_tag */

    struct {
        loff used, keys, values;          /* PyDictObject */
        loff dk_size;                     /* 3.10: dk_size (Py_ssize_t); 3.11+: dk_log2_size (u8) */
        loff dk_kind;                     /* 3.11+: dk_kind (u8) */
        loff dk_nentries, dk_indices;
        uint8_t dk_size_is_log2;
        uint8_t entry_size;               /* PyDictKeyEntry */
        uint8_t unicode_entry_size;       /* PyDictUnicodeEntry (3.11+), else 0 */
        loff values_values;               /* offset of the array inside PyDictValues (3.11+) */
        loff values_capacity, values_valid; /* PyDictValues uint8 capacity, valid (3.13+) */
    } dict;

    struct { loff fill, used, mask, table; uint8_t entry_size; } set;

    struct {
        loff frame;        /* 3.10: gi_frame (PyFrameObject*) */
        loff frame_state;  /* 3.11+: gi_frame_state (int8) */
        loff iframe;       /* 3.11+: gi_iframe (embedded _PyInterpreterFrame) */
        loff code;         /* gi_code (3.10-3.12) */
        loff name, qualname;
    } gen;

    struct { loff object; } weakref;              /* PyWeakReference.wr_object */
    struct { loff closure, qualname, code; } func; /* PyFunctionObject */
    struct { loff ref; } cell;                    /* PyCellObject.ob_ref */
    struct { loff ml, self; } cfunc;              /* PyCFunctionObject m_ml, m_self */
    struct { loff name; } methoddef;              /* PyMethodDef.ml_name */
    struct { loff func, self; } method;           /* PyMethodObject im_func, im_self */

    struct {                                      /* _asyncio FutureObj / TaskObj */
        loff fut_loop, fut_callback0, fut_context0, fut_callbacks, fut_result, fut_exception;
        loff fut_state, fut_cancel_msg;
        loff task_fut_waiter, task_coro, task_name, task_context;
        loff task_must_cancel, task_log_destroy_pending;
        loff task_sizeof;
        loff task_node;    /* 3.14+: TaskObj.task_node, its link in a thread's task list */
        /* 3.13+ task_must_cancel / task_log_destroy_pending are 1-bit bitfields: the loff above
         * is then the byte holding the bit and these give the bit index in that byte;
         * LAYOUT_NOT_BITFIELD when the field is a whole int (3.10-3.12). */
        uint8_t task_must_cancel_bit, task_log_destroy_pending_bit;
    } asyncio;
} py_layout;

/* The object a reference names: a frame's code, a value-stack slot (3.14+: _PyStackRef, whose
 * tag bits are cleared). */
static inline uint64_t layout_ref_address(const py_layout *L, uint64_t raw)
{
    return raw & ~(uint64_t)L->facts.code_tag_bits;
}

/* Layout for major.minor, or NULL when unsupported. */
const py_layout *layout_for_version(unsigned major, unsigned minor);

/* Supported range, for messages. */
#define APROF_PY_MIN_MINOR 10
#define APROF_PY_MAX_MINOR 15

typedef enum layout_field_kind {
    LF_OFFSET = 0, /* loff byte offset (or sizeof:), LAYOUT_ABSENT when the version lacks it */
    LF_SIZE8 = 1,  /* uint8_t size (sizeof:), 0 when absent */
    LF_BIT8 = 2,   /* uint8_t bit index within the byte at the field's offset, or
                    * LAYOUT_NOT_BITFIELD when absent */
} layout_field_kind;

/* Field descriptors so that tools and tests can walk the table generically: each names the
 * DWARF path of the field for a version ("struct.member.member", or "sizeof:struct"). */
typedef struct layout_field {
    const char *key;      /* stable name, e.g. "tstate.native_thread_id" */
    size_t offset;        /* offsetof(py_layout, ...) */
    const char *dwarf[6]; /* DWARF path per minor version 10..15; NULL when ABSENT there */
    const char *module;   /* NULL: libpython / python binary; "_asyncio": the extension module */
    uint8_t kind;         /* layout_field_kind: type of the py_layout member and its ABSENT value */
} layout_field;

extern const layout_field layout_fields[];
extern const size_t layout_field_count;
extern const py_layout *const layout_table[];
extern const size_t layout_table_count;

#endif
