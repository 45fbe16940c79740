# The core's C declarations for the binding, included by rnnx/_core.pyx: csrc/rnnx.h
# (through _core_shim.h), the .rnnx format's constants, the model's layer kinds and the
# thread pool.

cdef extern from "_core_shim.h":
    ctypedef void (*rnnx_sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*,
                                   float*, int*, float*, float*, int*) noexcept nogil
    ctypedef void (*rnnx_dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*,
                                   double*, int*, double*, double*, int*) noexcept nogil
    ctypedef void (*rnnx_task_fn)(void*, int) noexcept nogil
    ctypedef void (*rnnx_parallel_fn)(void*, int, rnnx_task_fn, void*) noexcept nogil
    ctypedef struct rnnx_blas:
        rnnx_sgemm_fn sgemm
        rnnx_dgemm_fn dgemm
        rnnx_parallel_fn parallel_for
        void* pool
        int n_threads
    ctypedef struct rnnx_forward_args:
        int cell, dtype, path
        int T, B, input_size, H
        int reverse
        const int64_t* lengths
        const void* x
        const void* h0
        const void* c0
        const void* w_ih
        const void* w_hh
        const void* b_ih
        const void* b_hh
        const void* w_ih_t
        const void* w_hh_t
        void* y
        ptrdiff_t ldy
        void* h_n
        void* c_n
        void* cache
        void* work
        const void* w_hh_packed
        int proj
        const void* w_hr
        const void* w_peep
        int row_exact
        int projection
    ctypedef struct rnnx_backward_args:
        int cell, dtype, path
        int T, B, input_size, H
        int reverse
        const int64_t* lengths
        const void* x
        const void* w_ih
        const void* w_hh
        const void* cache
        const void* dy
        ptrdiff_t lddy
        const void* dh_n
        const void* dc_n
        void* dx
        void* dh0
        void* dc0
        void* dw_ih
        void* dw_hh
        void* db_ih
        void* db_hh
        void* work
        int proj
        const void* w_hr
        void* dw_hr
        const void* w_peep
        void* dw_peep
    ctypedef struct rnnx_cell_info:
        int cell
        const char* name
        int gates
        const char* gate_order
        int states
        const char* state_names[2]
        int options
    ctypedef struct rnnx_param_shape:
        const char* name
        int64_t rows, cols
    enum: RNNX_MAX_PARAMS, RNNX_OPTION_PROJ, RNNX_OPTION_PEEPHOLE
    int rnnx_cell_count() nogil
    int rnnx_cell_info_of(int cell, rnnx_cell_info* out) nogil
    int rnnx_cell_params(int cell, int I, int H, int P, int peephole, rnnx_param_shape* out,
                         int* n) nogil
    const char* rnnx_strerror(int status) nogil
    int rnnx_gate_count(int cell) nogil
    size_t rnnx_cache_size(int cell, int T, int B, int H) nogil
    size_t rnnx_forward_work_size(int cell, int T, int B, int I, int H, int train) nogil
    size_t rnnx_backward_work_size(int cell, int T, int B, int I, int H) nogil
    size_t rnnx_cache_size_proj(int cell, int T, int B, int H, int P) nogil
    size_t rnnx_forward_work_size_proj(int cell, int T, int B, int I, int H, int P, int train) nogil
    size_t rnnx_backward_work_size_proj(int cell, int T, int B, int I, int H, int P) nogil
    int rnnx_forward(const rnnx_blas* blas, const rnnx_forward_args* a) nogil
    int rnnx_backward(const rnnx_blas* blas, const rnnx_backward_args* a) nogil
    int rnnx_activation(int which, int dtype, const void* x, void* y, size_t n) nogil
    size_t rnnx_packed_size(int cell, int dtype, int H) nogil
    int rnnx_pack_weights(int cell, int dtype, int H, const void* w_hh, void* out) nogil
    size_t rnnx_packed_size_proj(int cell, int dtype, int H, int P) nogil
    int rnnx_pack_weights_proj(int cell, int dtype, int H, int P, const void* w_hh,
                               const void* w_hr, void* out) nogil
    const char* rnnx_isa_name(int index) nogil
    int rnnx_isa_available(const char* name) nogil
    int rnnx_set_isa(const char* name) nogil
    const char* rnnx_get_isa() nogil

cdef extern from "model/format.h":
    const char* RNNX_FORMAT_MAGIC
    enum:
        RNNX_FORMAT_VERSION_MIN, RNNX_FORMAT_VERSION, RNNX_FORMAT_HEADER_BYTES,
        RNNX_FORMAT_DESCRIPTOR_BYTES, RNNX_FORMAT_TENSOR_ALIGN, RNNX_FORMAT_MAX_LAYERS,
        RNNX_FORMAT_MAX_STACK, RNNX_FORMAT_MAX_SIZE, RNNX_FORMAT_FLAG_MANY_TO_ONE,
        RNNX_FORMAT_FLAG_BARE_LAYER, RNNX_FORMAT_FLAG_LAST_OUTPUT, RNNX_FORMAT_KNOWN_FLAGS,
        RNNX_FORMAT_VERSION_WEIGHTS

cdef extern from "rnnx_model.h":
    enum:
        RNNX_DENSE, RNNX_EMBEDDING, RNNX_MANY_TO_ONE_STATE, RNNX_MANY_TO_ONE_OUTPUT,
        RNNX_WEIGHTS_INT8, RNNX_WEIGHTS_BFLOAT16

cdef extern from "pool.h":
    ctypedef struct rnnx_pool:
        pass
    rnnx_pool* rnnx_pool_create(int n_threads) nogil
    void rnnx_pool_parallel_for(void* pool, int n_tasks, rnnx_task_fn task, void* ctx) noexcept nogil
    void rnnx_pool_stats(const rnnx_pool* pool, long long* jobs, long long* serial_jobs) nogil
    void rnnx_pool_wrap_blas(rnnx_blas* blas) nogil
    int rnnx_pool_blas_limitable() nogil
    int rnnx_pool_threaded() nogil
