/* Per-version CPython layouts (see layouts.h): where each field is, per version, as DWARF paths
 * (layout_fields[]). The tables of numbers are in layout_tables.c.
 *
 * The numbers in those tables are generated, not hand-written: `layoutgen --emit MINOR
 * LIBPYTHON ASYNCIO_SO` prints them from the DWARF of a debug-info build, following the
 * descriptors in layout_fields[], and `layoutgen --check` (run by tests/live/test_layouts.c)
 * compares every one of them with the DWARF of each interpreter on the machine.
 * docs/layouts.md has the exact commands. Only the handful of fields without a DWARF
 * counterpart (version, name, instr_kind, linetable_kind, longobj.tagged, dict.dk_size_is_log2,
 * and the facts: py_facts) are written by hand.
 */
#include "layouts.h"

#include <stddef.h>

/* DWARF paths (tools/layoutgen.c syntax): "Type.member.member" is a byte offset, "sizeof:Type"
 * a size, "bit:Type.member" the bit index of a bitfield within the byte at its offset. Types are
 * struct tags or typedef names. NULL: the version has no such field. */
#define F_6(kind_, key_, p10, p11, p12, p13, p14, p15, mod_) \
    { #key_, offsetof(py_layout, key_), { p10, p11, p12, p13, p14, p15 }, mod_, kind_ }
/* Most fields keep their 3.14 path in 3.15 (layoutgen --check 15 proves each one resolves);
 * F6 names a 3.15 path that differs. */
#define F_(kind_, key_, p10, p11, p12, p13, p14, mod_) \
    F_6(kind_, key_, p10, p11, p12, p13, p14, p14, mod_)
#define F6(key_, p10, p11, p12, p13, p14, p15) \
    F_6(LF_OFFSET, key_, p10, p11, p12, p13, p14, p15, NULL)
#define F(key_, p10, p11, p12, p13, p14) F_(LF_OFFSET, key_, p10, p11, p12, p13, p14, NULL)
#define FALL(key_, p) F(key_, p, p, p, p, p)
#define F8(key_, p10, p11, p12, p13, p14) F_(LF_SIZE8, key_, p10, p11, p12, p13, p14, NULL)
#define FBIT(key_, p) F_(LF_BIT8, key_, p, p, p, p, p, NULL)
#define FA(key_, p10, p11, p12, p13, p14) F_(LF_OFFSET, key_, p10, p11, p12, p13, p14, "_asyncio")
#define FAALL(key_, p) FA(key_, p, p, p, p, p)

const layout_field layout_fields[] = {
    /* _PyRuntimeState */
    FALL(runtime.interpreters_head, "_PyRuntimeState.interpreters.head"),
    FALL(runtime.interpreters_main, "_PyRuntimeState.interpreters.main"),
    FALL(runtime.main_thread, "_PyRuntimeState.main_thread"),
    F(runtime.gil_last_holder, "_PyRuntimeState.ceval.gil.last_holder",
      "_PyRuntimeState.ceval.gil.last_holder", NULL, NULL, NULL),
    F(runtime.gil_locked, "_PyRuntimeState.ceval.gil.locked", "_PyRuntimeState.ceval.gil.locked",
      NULL, NULL, NULL),

    /* PyInterpreterState */
    FALL(interp.next, "PyInterpreterState.next"),
    F(interp.threads_head, "PyInterpreterState.tstate_head", "PyInterpreterState.threads.head",
      "PyInterpreterState.threads.head", "PyInterpreterState.threads.head",
      "PyInterpreterState.threads.head"),
    F(interp.threads_main, NULL, NULL, "PyInterpreterState.threads_main",
      "PyInterpreterState.threads.main", "PyInterpreterState.threads.main"),
    F(interp.modules, "PyInterpreterState.modules", "PyInterpreterState.modules",
      "PyInterpreterState.imports.modules", "PyInterpreterState.imports.modules",
      "PyInterpreterState.imports.modules"),
    F(interp.gil, NULL, NULL, "PyInterpreterState.ceval.gil", "PyInterpreterState.ceval.gil",
      "PyInterpreterState.ceval.gil"),
    F(interp.gil_last_holder, NULL, NULL, "_gil_runtime_state.last_holder",
      "_gil_runtime_state.last_holder", "_gil_runtime_state.last_holder"),
    F(interp.asyncio_tasks_head, NULL, NULL, NULL, NULL, "PyInterpreterState.asyncio_tasks_head"),
    F(interp.gil_locked, NULL, NULL, "_gil_runtime_state.locked", "_gil_runtime_state.locked",
      "_gil_runtime_state.locked"),
    FALL(interp.gc, "PyInterpreterState.gc"),

    /* struct _gc_runtime_state */
    FALL(gc.collecting, "_gc_runtime_state.collecting"),

    /* PyThreadState */
    FALL(tstate.prev, "PyThreadState.prev"),
    FALL(tstate.next, "PyThreadState.next"),
    FALL(tstate.interp, "PyThreadState.interp"),
    FALL(tstate.thread_id, "PyThreadState.thread_id"),
    F(tstate.native_thread_id, NULL, "PyThreadState.native_thread_id",
      "PyThreadState.native_thread_id", "PyThreadState.native_thread_id",
      "PyThreadState.native_thread_id"),
    F(tstate.frame, "PyThreadState.frame", "PyThreadState.cframe", "PyThreadState.cframe",
      "PyThreadState.current_frame", "PyThreadState.current_frame"),
    F(tstate.cframe_current_frame, NULL, "_PyCFrame.current_frame", "_PyCFrame.current_frame",
      NULL, NULL),
    F(tstate.cframe_previous, NULL, "_PyCFrame.previous", "_PyCFrame.previous", NULL, NULL),
    F(tstate.datastack_chunk, NULL, "PyThreadState.datastack_chunk",
      "PyThreadState.datastack_chunk", "PyThreadState.datastack_chunk",
      "PyThreadState.datastack_chunk"),
    F(tstate.datastack_top, NULL, "PyThreadState.datastack_top", "PyThreadState.datastack_top",
      "PyThreadState.datastack_top", "PyThreadState.datastack_top"),
    F(tstate.datastack_limit, NULL, "PyThreadState.datastack_limit",
      "PyThreadState.datastack_limit", "PyThreadState.datastack_limit",
      "PyThreadState.datastack_limit"),
    F(tstate.asyncio_running_task, NULL, NULL, NULL, NULL,
      "_PyThreadStateImpl.asyncio_running_task"),
    F(tstate.asyncio_tasks_head, NULL, NULL, NULL, NULL, "_PyThreadStateImpl.asyncio_tasks_head"),
    F(tstate.asyncio_running_loop, NULL, NULL, NULL, "_PyThreadStateImpl.asyncio_running_loop",
      "_PyThreadStateImpl.asyncio_running_loop"),

    /* PyFrameObject (3.10) / _PyInterpreterFrame (3.11+) */
    F(frame.previous, "_frame.f_back", "_PyInterpreterFrame.previous",
      "_PyInterpreterFrame.previous", "_PyInterpreterFrame.previous",
      "_PyInterpreterFrame.previous"),
    F(frame.code, "_frame.f_code", "_PyInterpreterFrame.f_code", "_PyInterpreterFrame.f_code",
      "_PyInterpreterFrame.f_executable", "_PyInterpreterFrame.f_executable"),
    F(frame.instr, "_frame.f_lasti", "_PyInterpreterFrame.prev_instr",
      "_PyInterpreterFrame.prev_instr", "_PyInterpreterFrame.instr_ptr",
      "_PyInterpreterFrame.instr_ptr"),
    F(frame.stacktop, "_frame.f_stackdepth", "_PyInterpreterFrame.stacktop",
      "_PyInterpreterFrame.stacktop", "_PyInterpreterFrame.stacktop", NULL),
    F(frame.stackpointer, NULL, NULL, NULL, NULL, "_PyInterpreterFrame.stackpointer"),
    F(frame.owner, NULL, "_PyInterpreterFrame.owner", "_PyInterpreterFrame.owner",
      "_PyInterpreterFrame.owner", "_PyInterpreterFrame.owner"),
    F(frame.is_entry, NULL, "_PyInterpreterFrame.is_entry", NULL, NULL, NULL),
    F(frame.localsplus, "_frame.f_localsplus", "_PyInterpreterFrame.localsplus",
      "_PyInterpreterFrame.localsplus", "_PyInterpreterFrame.localsplus",
      "_PyInterpreterFrame.localsplus"),
    F(frame.valuestack, "_frame.f_valuestack", NULL, NULL, NULL, NULL),
    F(frame.state, "_frame.f_state", NULL, NULL, NULL, NULL),
    F(frame.gen, "_frame.f_gen", NULL, NULL, NULL, NULL),

    /* PyCodeObject */
    FALL(code.filename, "PyCodeObject.co_filename"),
    FALL(code.name, "PyCodeObject.co_name"),
    F(code.qualname, NULL, "PyCodeObject.co_qualname", "PyCodeObject.co_qualname",
      "PyCodeObject.co_qualname", "PyCodeObject.co_qualname"),
    FALL(code.linetable, "PyCodeObject.co_linetable"),
    FALL(code.firstlineno, "PyCodeObject.co_firstlineno"),
    FALL(code.flags, "PyCodeObject.co_flags"),
    F(code.code, "PyCodeObject.co_code", NULL, NULL, NULL, NULL),
    F(code.code_adaptive, NULL, "PyCodeObject.co_code_adaptive", "PyCodeObject.co_code_adaptive",
      "PyCodeObject.co_code_adaptive", "PyCodeObject.co_code_adaptive"),
    F(code.size, NULL, "PyCodeObject.ob_base.ob_size", "PyCodeObject.ob_base.ob_size",
      "PyCodeObject.ob_base.ob_size", "PyCodeObject.ob_base.ob_size"),
    F(code.firsttraceable, NULL, "PyCodeObject._co_firsttraceable",
      "PyCodeObject._co_firsttraceable", NULL, NULL),
    F(code.framesize, NULL, NULL, "PyCodeObject.co_framesize", "PyCodeObject.co_framesize",
      "PyCodeObject.co_framesize"),
    F(code.nlocalsplus, NULL, "PyCodeObject.co_nlocalsplus", NULL, NULL, NULL),
    F(code.stacksize, NULL, "PyCodeObject.co_stacksize", NULL, NULL, NULL),

    /* _PyStackChunk */
    F(chunk.previous, NULL, "_PyStackChunk.previous", "_PyStackChunk.previous",
      "_PyStackChunk.previous", "_PyStackChunk.previous"),
    F(chunk.data, NULL, "_PyStackChunk.data", "_PyStackChunk.data", "_PyStackChunk.data",
      "_PyStackChunk.data"),

    /* str */
    FALL(unicode.length, "PyASCIIObject.length"),
    FALL(unicode.state, "PyASCIIObject.state"),
    FALL(unicode.ascii_data, "sizeof:PyASCIIObject"),
    FALL(unicode.compact_data, "sizeof:PyCompactUnicodeObject"),
    FBIT(unicode.kind_shift, "bit:PyASCIIObject.state.kind"),
    FBIT(unicode.compact_bit, "bit:PyASCIIObject.state.compact"),
    FBIT(unicode.ascii_bit, "bit:PyASCIIObject.state.ascii"),

    /* bytes, tuple, list, object, type */
    FALL(bytes.size, "PyBytesObject.ob_base.ob_size"),
    FALL(bytes.sval, "PyBytesObject.ob_sval"),
    FALL(tuple.size, "PyTupleObject.ob_base.ob_size"),
    FALL(tuple.items, "PyTupleObject.ob_item"),
    FALL(list.size, "PyListObject.ob_base.ob_size"),
    FALL(list.items, "PyListObject.ob_item"),
    FALL(object.type, "PyObject.ob_type"),
    FALL(type.name, "PyTypeObject.tp_name"),
    FALL(type.basicsize, "PyTypeObject.tp_basicsize"),
    FALL(type.flags, "PyTypeObject.tp_flags"),
    FALL(type.dictoffset, "PyTypeObject.tp_dictoffset"),
    FALL(type.mro, "PyTypeObject.tp_mro"),
    FALL(type.dict, "PyTypeObject.tp_dict"),
    FALL(type.ht_cached_keys, "PyHeapTypeObject.ht_cached_keys"),
    FALL(type.ht_qualname, "PyHeapTypeObject.ht_qualname"),

    /* int */
    F(longobj.size_or_tag, "PyLongObject.ob_base.ob_size", "PyLongObject.ob_base.ob_size",
      "PyLongObject.long_value.lv_tag", "PyLongObject.long_value.lv_tag",
      "PyLongObject.long_value.lv_tag"),
    F(longobj.digits, "PyLongObject.ob_digit", "PyLongObject.ob_digit",
      "PyLongObject.long_value.ob_digit", "PyLongObject.long_value.ob_digit",
      "PyLongObject.long_value.ob_digit"),

    /* dict */
    FALL(dict.used, "PyDictObject.ma_used"),
    FALL(dict.keys, "PyDictObject.ma_keys"),
    FALL(dict.values, "PyDictObject.ma_values"),
    F(dict.dk_size, "PyDictKeysObject.dk_size", "PyDictKeysObject.dk_log2_size",
      "PyDictKeysObject.dk_log2_size", "PyDictKeysObject.dk_log2_size",
      "PyDictKeysObject.dk_log2_size"),
    F(dict.dk_kind, NULL, "PyDictKeysObject.dk_kind", "PyDictKeysObject.dk_kind",
      "PyDictKeysObject.dk_kind", "PyDictKeysObject.dk_kind"),
    FALL(dict.dk_nentries, "PyDictKeysObject.dk_nentries"),
    FALL(dict.dk_indices, "PyDictKeysObject.dk_indices"),
    F8(dict.entry_size, "sizeof:PyDictKeyEntry", "sizeof:PyDictKeyEntry", "sizeof:PyDictKeyEntry",
       "sizeof:PyDictKeyEntry", "sizeof:PyDictKeyEntry"),
    F8(dict.unicode_entry_size, NULL, "sizeof:PyDictUnicodeEntry", "sizeof:PyDictUnicodeEntry",
       "sizeof:PyDictUnicodeEntry", "sizeof:PyDictUnicodeEntry"),
    F(dict.values_values, NULL, "PyDictValues.values", "PyDictValues.values",
      "PyDictValues.values", "PyDictValues.values"),
    F(dict.values_capacity, NULL, NULL, NULL, "PyDictValues.capacity", "PyDictValues.capacity"),
    F(dict.values_valid, NULL, NULL, NULL, "PyDictValues.valid", "PyDictValues.valid"),

    /* set */
    FALL(set.fill, "PySetObject.fill"),
    FALL(set.used, "PySetObject.used"),
    FALL(set.mask, "PySetObject.mask"),
    FALL(set.table, "PySetObject.table"),
    F8(set.entry_size, "sizeof:setentry", "sizeof:setentry", "sizeof:setentry", "sizeof:setentry",
       "sizeof:setentry"),

    /* generators and coroutines (PyCoroObject has the same layout, cr_ names) */
    F(gen.frame, "PyGenObject.gi_frame", NULL, NULL, NULL, NULL),
    F(gen.frame_state, NULL, "PyGenObject.gi_frame_state", "PyGenObject.gi_frame_state",
      "PyGenObject.gi_frame_state", "PyGenObject.gi_frame_state"),
    F(gen.iframe, NULL, "PyGenObject.gi_iframe", "PyGenObject.gi_iframe",
      "PyGenObject.gi_iframe", "PyGenObject.gi_iframe"),
    F(gen.code, "PyGenObject.gi_code", "PyGenObject.gi_code", NULL, NULL, NULL),
    FALL(gen.name, "PyGenObject.gi_name"),
    FALL(gen.qualname, "PyGenObject.gi_qualname"),

    /* small objects */
    FALL(weakref.object, "PyWeakReference.wr_object"),
    FALL(func.closure, "PyFunctionObject.func_closure"),
    FALL(func.qualname, "PyFunctionObject.func_qualname"),
    FALL(func.code, "PyFunctionObject.func_code"),
    FALL(cell.ref, "PyCellObject.ob_ref"),
    FALL(cfunc.ml, "PyCFunctionObject.m_ml"),
    FALL(cfunc.self, "PyCFunctionObject.m_self"),
    FALL(methoddef.name, "PyMethodDef.ml_name"),
    FALL(method.func, "PyMethodObject.im_func"),
    FALL(method.self, "PyMethodObject.im_self"),

    /* _asyncio: FutureObj fields are also the head of TaskObj */
    FAALL(asyncio.fut_loop, "FutureObj.fut_loop"),
    FAALL(asyncio.fut_callback0, "FutureObj.fut_callback0"),
    FAALL(asyncio.fut_context0, "FutureObj.fut_context0"),
    FAALL(asyncio.fut_callbacks, "FutureObj.fut_callbacks"),
    FAALL(asyncio.fut_result, "FutureObj.fut_result"),
    FAALL(asyncio.fut_exception, "FutureObj.fut_exception"),
    FAALL(asyncio.fut_state, "FutureObj.fut_state"),
    FAALL(asyncio.fut_cancel_msg, "FutureObj.fut_cancel_msg"),
    FAALL(asyncio.task_fut_waiter, "TaskObj.task_fut_waiter"),
    FAALL(asyncio.task_coro, "TaskObj.task_coro"),
    FAALL(asyncio.task_name, "TaskObj.task_name"),
    FAALL(asyncio.task_context, "TaskObj.task_context"),
    FAALL(asyncio.task_must_cancel, "TaskObj.task_must_cancel"),
    FAALL(asyncio.task_log_destroy_pending, "TaskObj.task_log_destroy_pending"),
    FAALL(asyncio.task_sizeof, "sizeof:TaskObj"),
    FA(asyncio.task_node, NULL, NULL, NULL, NULL, "TaskObj.task_node"),
    F_(LF_BIT8, asyncio.task_must_cancel_bit, NULL, NULL, NULL, "bit:TaskObj.task_must_cancel",
      "bit:TaskObj.task_must_cancel",
       "_asyncio"),
    F_(LF_BIT8, asyncio.task_log_destroy_pending_bit, NULL, NULL, NULL,
       "bit:TaskObj.task_log_destroy_pending", "bit:TaskObj.task_log_destroy_pending", "_asyncio"),
};
const size_t layout_field_count = sizeof layout_fields / sizeof layout_fields[0];
