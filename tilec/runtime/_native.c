/* The warm launch path of tilec/runtime/launcher.py in C.
 *
 * A `FastLaunch` holds one specialisation's launch plan: for each argument its kind (a
 * tensor of some rank, an i32/i64/f32/f64 scalar, a raw pointer) and the facts the kernel was
 * specialised for (the tensor's torch dtype, whether its last dimension is contiguous and
 * every row starts 16-byte aligned; whether an int equals 1 or is divisible by 16). Calling
 * it with (grid, args[, stream]) reads plain torch CUDA tensors and Python ints and floats
 * straight into its parameter slots and calls cuLaunchKernel through the driver's function
 * pointer.
 *
 * Anything else (another kind of tensor, a fact that differs, a value out of range, a stream
 * object, a grid that is not 1 to 3 positive ints, a launch the driver refuses) calls the
 * Python launch function it was given, which handles every case and reports every error:
 * this file decides nothing about errors. The GIL is held from the first slot written to
 * the end of cuLaunchKernel, so the slots need no lock; should a reader run Python code that
 * lets another launch in (a finalizer, say), that launch finds the slots busy and takes the
 * Python path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { K_TENSOR = 0, K_I32 = 1, K_I64 = 2, K_F32 = 3, K_F64 = 4, K_PTR = 5 };

typedef int (*launch_fn)(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                         unsigned by, unsigned bz, unsigned smem, void *stream, void **params,
                         void **extra);

/* cuLaunchKernelEx's config (cuda.h: CUlaunchConfig, CUlaunchAttribute): for kernels that
 * use programmatic dependent launch, one attribute, programmatic stream serialization. */
typedef struct {
    int id;
    char pad[4];
    union { char bytes[64]; int value; } value;
} LaunchAttribute;

typedef struct {
    unsigned gx, gy, gz, bx, by, bz, smem;
    void *stream;
    LaunchAttribute *attrs;
    unsigned nattrs;
} LaunchConfig;

typedef int (*launch_ex_fn)(const LaunchConfig *config, void *f, void **params, void **extra);

enum { PROGRAMMATIC_STREAM_SERIALIZATION = 6 };  /* CUlaunchAttributeID */

typedef struct {
    int kind;
    int rank;          /* tensors */
    PyObject *dtype;   /* tensors: the torch dtype required, or NULL for any */
    int contiguous;    /* tensors: -1 unchecked, else required value */
    int aligned;       /* tensors: -1 unchecked, else required value of "every row starts
                          16-byte aligned" (rows_aligned in tilec/runtime/tensor.py) */
    int equal_to_1;    /* ints: -1 unchecked, else required value */
    int divisible_16;  /* ints: -1 unchecked, else required value */
    int itemsize;      /* tensors: bytes per element (torch strides count elements) */
} ArgPlan;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    launch_fn launch;
    launch_ex_fn launch_ex;  /* instead of launch, for a programmatic dependent launch */
    void *function;
    unsigned block, smem;
    PyObject *device;       /* int, for raw_stream(device) */
    PyObject *tensor_type;  /* torch.Tensor */
    PyObject *raw_stream;   /* torch._C._cuda_getCurrentRawStream */
    PyObject *fallback;     /* the Python launch(grid, args, stream=None) */
    Py_ssize_t nargs, nslots;
    int busy;  /* slots being written: another launch (a thread that got the GIL while a
                  reader ran Python code, say a finalizer) takes the Python path */
    ArgPlan *plans;
    uint64_t *slots;
    void **params;
} FastLaunch;

static PyObject *s_is_cuda, *s_data_ptr, *s_shape, *s_stride, *s_dtype;

static void FastLaunch_dealloc(FastLaunch *self) {
    if (self->plans) {
        for (Py_ssize_t i = 0; i < self->nargs; i++) Py_XDECREF(self->plans[i].dtype);
    }
    PyMem_Free(self->plans);
    PyMem_Free(self->slots);
    PyMem_Free(self->params);
    Py_XDECREF(self->device);
    Py_XDECREF(self->tensor_type);
    Py_XDECREF(self->raw_stream);
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An exact Python int in [lo, hi], or -1 (no exception set). */
static int read_int(PyObject *v, long long lo, unsigned long long hi, long long *out) {
    if (!PyLong_CheckExact(v)) return -1;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow == 0 && x == -1 && PyErr_Occurred()) { PyErr_Clear(); return -1; }
    if (overflow > 0) {  /* above i64: an unsigned 64-bit value may still fit */
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (PyErr_Occurred()) { PyErr_Clear(); return -1; }
        if (u > hi) return -1;
        *out = (long long)u;
        return 0;
    }
    if (overflow < 0 || x < lo || (x > 0 && (unsigned long long)x > hi)) return -1;
    *out = x;
    return 0;
}

/* Fill the slots from one plain torch CUDA tensor; 0 done, -1 not plain (no exception set). */
static int read_tensor(FastLaunch *self, const ArgPlan *p, PyObject *t, uint64_t *slot) {
    if (Py_TYPE(t) != (PyTypeObject *)self->tensor_type) return -1;
    int ok = -1;
    PyObject *is_cuda = NULL, *ptr = NULL, *shape = NULL, *stride = NULL, *dtype = NULL;
    is_cuda = PyObject_GetAttr(t, s_is_cuda);
    if (is_cuda != Py_True) goto done;
    if (p->dtype) {
        dtype = PyObject_GetAttr(t, s_dtype);
        if (dtype != p->dtype) goto done;
    }
    ptr = PyObject_CallMethodNoArgs(t, s_data_ptr);
    if (!ptr || !PyLong_Check(ptr)) goto done;
    unsigned long long addr = PyLong_AsUnsignedLongLong(ptr);
    if (PyErr_Occurred()) goto done;
    shape = PyObject_GetAttr(t, s_shape);
    stride = PyObject_CallMethodNoArgs(t, s_stride);
    if (!shape || !stride || !PyTuple_Check(shape) || !PyTuple_Check(stride)) goto done;
    int rank = p->rank;
    if (PyTuple_GET_SIZE(shape) != rank || PyTuple_GET_SIZE(stride) != rank) goto done;
    slot[0] = addr;
    long long last_size = 0, last_stride = 0;
    int rows_aligned = (addr & 15) == 0;
    long long per16 = p->itemsize > 0 && p->itemsize < 16 ? 16 / p->itemsize : 1;
    for (int d = 0; d < rank; d++) {
        long long n, s;
        if (read_int(PyTuple_GET_ITEM(shape, d), 0, 0x7fffffffULL, &n) < 0) goto done;
        if (read_int(PyTuple_GET_ITEM(stride, d), INT64_MIN, INT64_MAX, &s) < 0) goto done;
        slot[1 + d] = (uint64_t)(uint32_t)n;
        slot[1 + rank + d] = (uint64_t)s;
        last_size = n;
        last_stride = s;
        if (d < rank - 1 && s % per16 != 0) rows_aligned = 0;
    }
    if (p->contiguous >= 0) {
        if (rank == 0) goto done;
        if ((last_stride == 1 || last_size <= 1) != p->contiguous) goto done;
    }
    if (p->aligned >= 0 && rows_aligned != p->aligned) goto done;
    ok = 0;
done:
    if (PyErr_Occurred()) PyErr_Clear();
    Py_XDECREF(is_cuda);
    Py_XDECREF(ptr);
    Py_XDECREF(shape);
    Py_XDECREF(stride);
    Py_XDECREF(dtype);
    return ok;
}

static PyObject *launch_slots(FastLaunch *self, const unsigned *dims, int saw_tensor,
                              PyObject *stream_obj);

static PyObject *fall_back(FastLaunch *self, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames) {
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *FastLaunch_call(FastLaunch *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (kwnames || n < 2 || n > 3) return fall_back(self, args, nargsf, kwnames);
    PyObject *grid = args[0], *argv = args[1];
    PyObject *stream_obj = n == 3 ? args[2] : Py_None;
    unsigned dims[3] = {1, 1, 1};
    if (PyTuple_CheckExact(grid)) {
        Py_ssize_t g = PyTuple_GET_SIZE(grid);
        if (g < 1 || g > 3) return fall_back(self, args, nargsf, kwnames);
        for (Py_ssize_t i = 0; i < g; i++) {
            long long v;
            if (read_int(PyTuple_GET_ITEM(grid, i), 1, i == 0 ? 0x7fffffffULL : 65535, &v) < 0)
                return fall_back(self, args, nargsf, kwnames);
            dims[i] = (unsigned)v;
        }
    } else {
        long long v;
        if (read_int(grid, 1, 0x7fffffffULL, &v) < 0) return fall_back(self, args, nargsf, kwnames);
        dims[0] = (unsigned)v;
    }
    if (self->busy) return fall_back(self, args, nargsf, kwnames);
    PyObject *seq = PySequence_Fast(argv, "args");
    if (!seq) { PyErr_Clear(); return fall_back(self, args, nargsf, kwnames); }
    if (PySequence_Fast_GET_SIZE(seq) != self->nargs) {
        Py_DECREF(seq);
        return fall_back(self, args, nargsf, kwnames);
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    uint64_t *slot = self->slots;
    self->busy = 1;
    int saw_tensor = 0;
    for (Py_ssize_t i = 0; i < self->nargs; i++) {
        const ArgPlan *p = &self->plans[i];
        PyObject *v = items[i];
        long long x;
        switch (p->kind) {
        case K_TENSOR:
            if (read_tensor(self, p, v, slot) < 0) goto miss;
            slot += 1 + 2 * p->rank;
            saw_tensor = 1;
            continue;
        case K_I32:
        case K_I64:
            if (p->kind == K_I32 ? read_int(v, INT32_MIN, 0xffffffffULL, &x) < 0
                                 : read_int(v, INT64_MIN, UINT64_MAX, &x) < 0) goto miss;
            if (p->equal_to_1 >= 0 && (x == 1) != p->equal_to_1) goto miss;
            if (p->divisible_16 >= 0 && ((x % 16) == 0) != p->divisible_16) goto miss;
            *slot = p->kind == K_I32 ? (uint64_t)(uint32_t)x : (uint64_t)x;
            break;
        case K_PTR:
            if (read_int(v, 0, UINT64_MAX, &x) < 0) goto miss;
            *slot = (uint64_t)x;
            break;
        case K_F32:
        case K_F64: {
            double d;
            if (PyFloat_CheckExact(v)) d = PyFloat_AS_DOUBLE(v);
            else if (PyLong_CheckExact(v)) {
                d = PyLong_AsDouble(v);
                if (d == -1.0 && PyErr_Occurred()) { PyErr_Clear(); goto miss; }
            } else goto miss;
            /* A finite value beyond f32's range: the Python path reports it. */
            if (p->kind == K_F32 && isfinite(d) && fabs(d) > FLT_MAX) goto miss;
            *slot = 0;
            if (p->kind == K_F32) { float f = (float)d; memcpy(slot, &f, sizeof f); }
            else memcpy(slot, &d, sizeof d);
            break;
        }
        default:
            goto miss;
        }
        slot += 1;
    }
    Py_DECREF(seq);
    PyObject *r = launch_slots(self, dims, saw_tensor, stream_obj);
    self->busy = 0;
    if (r == Py_None) return r;
    if (r) { Py_DECREF(r); return fall_back(self, args, nargsf, kwnames); }
    return NULL;
miss:
    self->busy = 0;
    Py_DECREF(seq);
    return fall_back(self, args, nargsf, kwnames);
}

/* Launch from the written slots: None when launched, NotImplemented (a new reference) when
 * the Python path must take the call, NULL on error. */
static PyObject *launch_slots(FastLaunch *self, const unsigned *dims, int saw_tensor,
                              PyObject *stream_obj) {
    void *stream = NULL;
    if (stream_obj == Py_None) {
        if (saw_tensor) {
            PyObject *s = PyObject_CallOneArg(self->raw_stream, self->device);
            if (!s) return NULL;
            stream = PyLong_AsVoidPtr(s);
            Py_DECREF(s);
            if (PyErr_Occurred()) return NULL;
        }
    } else if (PyLong_CheckExact(stream_obj)) {
        stream = PyLong_AsVoidPtr(stream_obj);
        if (PyErr_Occurred()) { PyErr_Clear(); Py_RETURN_NOTIMPLEMENTED; }
    } else {
        Py_RETURN_NOTIMPLEMENTED;
    }
    int err;
    if (self->launch_ex) {
        LaunchAttribute attr = {PROGRAMMATIC_STREAM_SERIALIZATION, {0}, {{0}}};
        attr.value.value = 1;
        LaunchConfig config = {dims[0], dims[1], dims[2], self->block, 1, 1, self->smem,
                               stream, &attr, 1};
        err = self->launch_ex(&config, self->function, self->params, NULL);
    } else {
        err = self->launch(self->function, dims[0], dims[1], dims[2], self->block, 1, 1,
                           self->smem, stream, self->params, NULL);
    }
    if (err)  /* nothing was launched: the Python path launches again and reports */
        Py_RETURN_NOTIMPLEMENTED;
    Py_RETURN_NONE;
}

/* FastLaunch(launch_ptr, function, block, smem, device, plans, tensor_type, raw_stream,
 *            fallback); plans: a tuple of (kind, rank, dtype or None, contiguous,
 *            aligned, equal_to_1, divisible_16, itemsize) with -1 for "not checked". */
static PyObject *FastLaunch_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    unsigned long long launch_ptr, function;
    unsigned block, smem;
    int programmatic = 0;  /* launch_ptr is cuLaunchKernelEx */
    PyObject *device, *plans, *tensor_type, *raw_stream, *fallback;
    if (!PyArg_ParseTuple(args, "KKIIOO!OOO|p", &launch_ptr, &function, &block, &smem, &device,
                          &PyTuple_Type, &plans, &tensor_type, &raw_stream, &fallback,
                          &programmatic))
        return NULL;
    if (!PyType_Check(tensor_type)) {
        PyErr_SetString(PyExc_TypeError, "tensor_type must be a type");
        return NULL;
    }
    FastLaunch *self = (FastLaunch *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->vectorcall = (vectorcallfunc)FastLaunch_call;
    if (programmatic)
        self->launch_ex = (launch_ex_fn)(uintptr_t)launch_ptr;
    else
        self->launch = (launch_fn)(uintptr_t)launch_ptr;
    self->function = (void *)(uintptr_t)function;
    self->block = block;
    self->smem = smem;
    Py_INCREF(device); self->device = device;
    Py_INCREF(tensor_type); self->tensor_type = tensor_type;
    Py_INCREF(raw_stream); self->raw_stream = raw_stream;
    Py_INCREF(fallback); self->fallback = fallback;
    self->nargs = PyTuple_GET_SIZE(plans);
    self->plans = PyMem_Calloc(self->nargs ? self->nargs : 1, sizeof(ArgPlan));
    if (!self->plans) { Py_DECREF(self); return PyErr_NoMemory(); }
    Py_ssize_t nslots = 0;
    for (Py_ssize_t i = 0; i < self->nargs; i++) {
        ArgPlan *p = &self->plans[i];
        PyObject *dtype;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(plans, i), "iiOiiiii", &p->kind, &p->rank, &dtype,
                              &p->contiguous, &p->aligned, &p->equal_to_1, &p->divisible_16,
                              &p->itemsize)) {
            Py_DECREF(self);
            return NULL;
        }
        if (p->kind < K_TENSOR || p->kind > K_PTR || p->rank < 0 || p->rank > 64) {
            PyErr_SetString(PyExc_ValueError, "bad argument plan");
            Py_DECREF(self);
            return NULL;
        }
        if (dtype != Py_None) { Py_INCREF(dtype); p->dtype = dtype; }
        nslots += p->kind == K_TENSOR ? 1 + 2 * p->rank : 1;
    }
    self->nslots = nslots;
    self->slots = PyMem_Calloc(nslots ? nslots : 1, sizeof(uint64_t));
    self->params = PyMem_Calloc(nslots ? nslots : 1, sizeof(void *));
    if (!self->slots || !self->params) { Py_DECREF(self); return PyErr_NoMemory(); }
    for (Py_ssize_t k = 0; k < nslots; k++) self->params[k] = &self->slots[k];
    return (PyObject *)self;
}

static PyObject *FastLaunch_slots(FastLaunch *self, PyObject *unused) {
    PyObject *out = PyTuple_New(self->nslots);
    if (!out) return NULL;
    for (Py_ssize_t k = 0; k < self->nslots; k++)
        PyTuple_SET_ITEM(out, k, PyLong_FromUnsignedLongLong(self->slots[k]));
    return out;
}

static PyMethodDef FastLaunch_methods[] = {
    {"slots", (PyCFunction)FastLaunch_slots, METH_NOARGS,
     "The parameter slots as last written (tests)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastLaunchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tilec.runtime._native.FastLaunch",
    .tp_basicsize = sizeof(FastLaunch),
    .tp_dealloc = (destructor)FastLaunch_dealloc,
    .tp_vectorcall_offset = offsetof(FastLaunch, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "One specialisation's warm launch: call with (grid, args[, stream]).",
    .tp_methods = FastLaunch_methods,
    .tp_new = FastLaunch_new,
};

/* ---- kernel[grid](...): the frontend's hot path ---------------------------------------
 *
 * A `Hot` belongs to one @tc.kernel and remembers its last GPU launch: the launch function
 * (a FastLaunch), how many positional arguments it took and its keyword arguments (the
 * constexprs, by name, type and value). `hot[grid]` is a `Bound`; calling it with the same
 * shape of call launches at once, and anything else (or a GuardMiss from the launch) goes to
 * the kernel's Python `slow(grid, args, kwargs)`, which binds, specialises, compiles and
 * reports errors. The same as `Kernel.__getitem__`'s Python closure, without its frames. */

typedef struct {
    PyObject_HEAD
    PyObject *launch;    /* NULL until set */
    Py_ssize_t nargs;
    PyObject *kwnames;   /* tuple of str */
    PyObject *kwvalues;  /* tuple */
    PyObject *slow;
    PyObject *miss;      /* the GuardMiss type */
} Hot;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Hot *hot;
    PyObject *grid;
} Bound;

static PyTypeObject BoundType;
static PyObject *Bound_call(Bound *self, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames);

/* A Hot and its kernel refer to each other (slow is a bound method): the cycle collector
 * must see through it. */
static int Hot_traverse(Hot *self, visitproc visit, void *arg) {
    Py_VISIT(self->launch);
    Py_VISIT(self->kwnames);
    Py_VISIT(self->kwvalues);
    Py_VISIT(self->slow);
    Py_VISIT(self->miss);
    return 0;
}

static int Hot_clear_refs(Hot *self) {
    Py_CLEAR(self->launch);
    Py_CLEAR(self->kwnames);
    Py_CLEAR(self->kwvalues);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->miss);
    return 0;
}

static void Hot_dealloc(Hot *self) {
    PyObject_GC_UnTrack(self);
    Hot_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Hot(slow, miss) */
static PyObject *Hot_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *slow, *miss;
    if (!PyArg_ParseTuple(args, "OO", &slow, &miss)) return NULL;
    Hot *self = (Hot *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    Py_INCREF(slow); self->slow = slow;
    Py_INCREF(miss); self->miss = miss;
    return (PyObject *)self;
}

/* hot.set(launch, nargs, kwnames, kwvalues) */
static PyObject *Hot_set(Hot *self, PyObject *args) {
    PyObject *launch, *names, *values;
    Py_ssize_t nargs;
    if (!PyArg_ParseTuple(args, "OnO!O!", &launch, &nargs, &PyTuple_Type, &names, &PyTuple_Type,
                          &values))
        return NULL;
    if (PyTuple_GET_SIZE(names) != PyTuple_GET_SIZE(values)) {
        PyErr_SetString(PyExc_ValueError, "kwnames and kwvalues differ in length");
        return NULL;
    }
    Py_INCREF(launch); Py_XSETREF(self->launch, launch);
    Py_INCREF(names); Py_XSETREF(self->kwnames, names);
    Py_INCREF(values); Py_XSETREF(self->kwvalues, values);
    self->nargs = nargs;
    Py_RETURN_NONE;
}

static PyObject *Hot_clear(Hot *self, PyObject *unused) {
    Py_CLEAR(self->launch);
    Py_RETURN_NONE;
}

static PyObject *Hot_subscript(Hot *self, PyObject *grid) {
    Bound *b = PyObject_New(Bound, &BoundType);
    if (!b) return NULL;
    Py_INCREF(self); b->hot = self;
    Py_INCREF(grid); b->grid = grid;
    b->vectorcall = (vectorcallfunc)Bound_call;
    return (PyObject *)b;
}

static void Bound_dealloc(Bound *self) {
    Py_DECREF(self->hot);
    Py_DECREF(self->grid);
    PyObject_Free(self);
}

/* 1 if the keyword arguments are the hot call's (same names in the same order, same types,
 * equal values), 0 if not, -1 on error. */
static int same_keywords(Hot *h, PyObject *const *values, PyObject *kwnames) {
    Py_ssize_t n = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (n != PyTuple_GET_SIZE(h->kwnames)) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i), *want = PyTuple_GET_ITEM(h->kwnames, i);
        if (name != want) {
            int eq = PyObject_RichCompareBool(name, want, Py_EQ);
            if (eq <= 0) return eq;
        }
        PyObject *v = values[i], *hv = PyTuple_GET_ITEM(h->kwvalues, i);
        if (v == hv) continue;
        if (Py_TYPE(v) != Py_TYPE(hv)) return 0;
        int eq = PyObject_RichCompareBool(v, hv, Py_EQ);
        if (eq <= 0) return eq;
    }
    return 1;
}

static PyObject *call_slow(Bound *self, PyObject *args, PyObject *const *kwvalues,
                           PyObject *kwnames) {
    PyObject *kwargs = PyDict_New();
    if (!kwargs) return NULL;
    Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nk; i++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), kwvalues[i]) < 0) {
            Py_DECREF(kwargs);
            return NULL;
        }
    }
    PyObject *r = self->hot->slow ? PyObject_CallFunctionObjArgs(self->hot->slow, self->grid,
                                                                 args, kwargs, NULL)
                                  : PyErr_Format(PyExc_RuntimeError, "kernel was collected");
    Py_DECREF(kwargs);
    return r;
}

static PyObject *Bound_call(Bound *self, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames) {
    Hot *h = self->hot;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    PyObject *tuple = PyTuple_New(n);
    if (!tuple) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    PyObject *grid = self->grid, *r;
    if (h->launch && h->miss && n == h->nargs && (PyTuple_CheckExact(grid) || PyLong_CheckExact(grid))) {
        int same = same_keywords(h, args + n, kwnames);
        if (same < 0) { Py_DECREF(tuple); return NULL; }
        if (same) {
            PyObject *call[2] = {grid, tuple};
            r = PyObject_Vectorcall(h->launch, call, 2, NULL);
            if (r || !PyErr_ExceptionMatches(h->miss)) {
                Py_DECREF(tuple);
                return r;
            }
            PyErr_Clear();  /* a fact the launch was specialised for differs */
        }
    }
    r = call_slow(self, tuple, args + n, kwnames);
    Py_DECREF(tuple);
    return r;
}

static PyMethodDef Hot_methods[] = {
    {"set", (PyCFunction)Hot_set, METH_VARARGS,
     "set(launch, nargs, kwnames, kwvalues): the call shape that launches at once."},
    {"clear", (PyCFunction)Hot_clear, METH_NOARGS, "Forget the hot launch."},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods Hot_mapping = {.mp_subscript = (binaryfunc)Hot_subscript};

static PyTypeObject HotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tilec.runtime._native.Hot",
    .tp_basicsize = sizeof(Hot),
    .tp_dealloc = (destructor)Hot_dealloc,
    .tp_as_mapping = &Hot_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Hot_traverse,
    .tp_clear = (inquiry)Hot_clear_refs,
    .tp_doc = "A kernel's last GPU launch: hot[grid](*args, **constexprs).",
    .tp_methods = Hot_methods,
    .tp_new = Hot_new,
};

static PyTypeObject BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tilec.runtime._native.Bound",
    .tp_basicsize = sizeof(Bound),
    .tp_dealloc = (destructor)Bound_dealloc,
    .tp_vectorcall_offset = offsetof(Bound, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "kernel[grid]: call with the kernel's arguments.",
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native", "tilec's warm launch path in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&FastLaunchType) < 0 || PyType_Ready(&HotType) < 0 ||
        PyType_Ready(&BoundType) < 0)
        return NULL;
    s_is_cuda = PyUnicode_InternFromString("is_cuda");
    s_data_ptr = PyUnicode_InternFromString("data_ptr");
    s_shape = PyUnicode_InternFromString("shape");
    s_stride = PyUnicode_InternFromString("stride");
    s_dtype = PyUnicode_InternFromString("dtype");
    if (!s_is_cuda || !s_data_ptr || !s_shape || !s_stride || !s_dtype) return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (!m) return NULL;
    Py_INCREF(&FastLaunchType);
    if (PyModule_AddObject(m, "FastLaunch", (PyObject *)&FastLaunchType) < 0) {
        Py_DECREF(&FastLaunchType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&HotType);
    if (PyModule_AddObject(m, "Hot", (PyObject *)&HotType) < 0) {
        Py_DECREF(&HotType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
