// Building blocks of the compiled ConvAE kernel (conv_ae.cpp): vectors as wide as the
// target's registers (GCC/Clang vector extensions: 16 floats with AVX-512, 8 with AVX/AVX2,
// 4 with SSE or NEON), small matrix products whose long axis is the pixel axis, stride-2
// im2col / col2im, and a pool of worker threads.
//
// Register budget: the tile sizes below keep a tile's accumulators and operands in
// registers. AVX-512 and NEON have 32 vector registers, AVX2 and SSE 16; tiles sized for 32
// spill to memory on a 16-register target and run several times slower there, so the
// 16-register targets get smaller tiles (VREGS).
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>

#if defined(__AVX512F__)
#define VLEN 16
enum { VREGS = 32 };
#elif defined(__AVX__)
#define VLEN 8
enum { VREGS = 16 };
#elif defined(__aarch64__)
#define VLEN 4
enum { VREGS = 32 };
#else
#define VLEN 4
enum { VREGS = 16 };
#endif
typedef float v16 __attribute__((vector_size(VLEN * 4)));
enum { V = VLEN };
// v16 is "one register of floats"; its name is historical. Buffers are padded to multiples
// of PADV floats whatever V is, so the layouts (and the Python side's sizes) stay the same.
enum { PADV = 16 };

static inline int pad16(int n) { return (n + PADV - 1) / PADV * PADV; }
static inline v16 load(const float* p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, v16 v) { memcpy(p, &v, sizeof v); }
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
static inline float hsum4(v4 c) { return (c[0] + c[2]) + (c[1] + c[3]); }
static inline float hsum8(v8 a) {  // the two halves added, then hsum4
    v4 c, d;
    memcpy(&c, &a, sizeof c);
    memcpy(&d, (const char*)&a + sizeof c, sizeof d);
    return hsum4(c + d);
}
#if VLEN == 16
static inline v16 splat(float a) { v16 v = {a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a}; return v; }
static inline float hsum(v16 v) {  // pairwise
    v8 a, b;
    memcpy(&a, &v, sizeof a);
    memcpy(&b, (const char*)&v + sizeof a, sizeof b);
    return hsum8(a + b);
}
#elif VLEN == 8
static inline v16 splat(float a) { v16 v = {a, a, a, a, a, a, a, a}; return v; }
static inline float hsum(v16 v) { return hsum8(v); }
#else
static inline v16 splat(float a) { v16 v = {a, a, a, a}; return v; }
static inline float hsum(v16 v) { return hsum4(v); }
#endif

// Tile sizes (see the register budget above).
enum {
    NN_MR = VREGS >= 32 ? 8 : 6,  // gemm_nn: rows per tile (x 2 vectors of columns)
    NT_MR = VREGS >= 32 ? 4 : 2,  // gemm_nt: rows of A per tile (x 4 rows of B)
};

// The largest divisor of n that is at most cap (blocks that tile n exactly).
static constexpr int divisor_at_most(int n, int cap) {
    int d = cap < n ? cap : n;
    while (d > 1 && n % d) --d;
    return d < 1 ? 1 : d;
}

// ---- matrix products; every row stride is a multiple of 16, pad columns are zero ----

// C[MR][n..n+16*NV) (+)= A[MR][K] * B[K][n..n+16*NV)
template <int MR, int NV>
static inline void nn_tile(int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool accumulate) {
    v16 acc[MR][NV];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NV; ++j) acc[r][j] = accumulate ? load(C + r * ldc + j * V) : splat(0.f);
    for (int k = 0; k < K; ++k) {
        v16 b[NV];
        for (int j = 0; j < NV; ++j) b[j] = load(B + k * ldb + j * V);
        for (int r = 0; r < MR; ++r) {
            v16 a = splat(A[r * lda + k]);
            for (int j = 0; j < NV; ++j) acc[r][j] += a * b[j];
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NV; ++j) store(C + r * ldc + j * V, acc[r][j]);
}

template <int MR>
static void nn_rows(int K, int NP, const float* A, int lda, const float* B, float* C, bool accumulate) {
    int n = 0;
    for (; n + 2 * V <= NP; n += 2 * V) nn_tile<MR, 2>(K, A, lda, B + n, NP, C + n, NP, accumulate);
    if (n < NP) nn_tile<MR, 1>(K, A, lda, B + n, NP, C + n, NP, accumulate);
}

// C[M][NP] (+)= A[M][K] (row stride lda) * B[K][NP]
static void gemm_nn(int M, int K, int NP, const float* A, int lda, const float* B, float* C, bool accumulate) {
    int m = 0;
    for (; m + NN_MR <= M; m += NN_MR) nn_rows<NN_MR>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate);
    switch (M - m) {  // the rest: fewer than NN_MR rows
        case 7: nn_rows<7>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate); break;
        case 6: nn_rows<6>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate); break;
        case 5: nn_rows<5>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate); break;
        case 4: nn_rows<4>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate); break;
        case 3: nn_rows<3>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate); break;
        case 2: nn_rows<2>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate); break;
        case 1: nn_rows<1>(K, NP, A + m * lda, lda, B, C + m * NP, accumulate); break;
        default: break;
    }
}

// C[MR][KR] += A[MR][NP] . B[KR][NP] (dot products along the pixel axis)
template <int MR, int KR>
static inline void nt_tile(int NP, const float* A, const float* B, float* C, int ldc) {
    v16 acc[MR][KR];
    for (int r = 0; r < MR; ++r)
        for (int k = 0; k < KR; ++k) acc[r][k] = splat(0.f);
    for (int n = 0; n < NP; n += V) {
        v16 a[MR], b[KR];
        for (int r = 0; r < MR; ++r) a[r] = load(A + r * NP + n);
        for (int k = 0; k < KR; ++k) b[k] = load(B + k * NP + n);
        for (int r = 0; r < MR; ++r)
            for (int k = 0; k < KR; ++k) acc[r][k] += a[r] * b[k];
    }
    for (int r = 0; r < MR; ++r)
        for (int k = 0; k < KR; ++k) C[r * ldc + k] += hsum(acc[r][k]);
}

template <int MR>
static void nt_rows(int K, int NP, const float* A, const float* B, float* C, int ldc) {
    int k = 0;
    for (; k + 4 <= K; k += 4) nt_tile<MR, 4>(NP, A, B + k * NP, C + k, ldc);
    switch (K - k) {
        case 3: nt_tile<MR, 3>(NP, A, B + k * NP, C + k, ldc); break;
        case 2: nt_tile<MR, 2>(NP, A, B + k * NP, C + k, ldc); break;
        case 1: nt_tile<MR, 1>(NP, A, B + k * NP, C + k, ldc); break;
        default: break;
    }
}

// C[M][K] += A[M][NP] * B[K][NP]^T
static void gemm_nt(int M, int K, int NP, const float* A, const float* B, float* C) {
    int m = 0;
    for (; m + NT_MR <= M; m += NT_MR) nt_rows<NT_MR>(K, NP, A + m * NP, B, C + m * K, K);
    switch (M - m) {  // the rest: fewer than NT_MR rows
        case 3: nt_rows<3>(K, NP, A + m * NP, B, C + m * K, K); break;
        case 2: nt_rows<2>(K, NP, A + m * NP, B, C + m * K, K); break;
        case 1: nt_rows<1>(K, NP, A + m * NP, B, C + m * K, K); break;
        default: break;
    }
}

// ---- im2col / col2im for 3x3 kernels, stride 2, padding 1 ----
// A map is [C][h][w] (h = 2 oh, w = 2 ow), channel stride ldm, row stride rs. Column rows are
// (c, kh, kw); columns are the output pixels (i, j) of the oh x ow grid, row stride NPO
// (zero padded); output (i, j) reads input (2i - 1 + kh, 2j - 1 + kw), zero outside.

// Stride 2 (input width 2 * ow): the three kw rows at once; r0[j] = s[2j - 1], r1[j] = s[2j], r2[j] = s[2j + 1].
static inline void im2col_row2(const float* __restrict s, int ow, float* __restrict r0, float* __restrict r1,
                               float* __restrict r2) {
    r0[0] = 0.f;
    for (int j = 0; j < ow; ++j) { r1[j] = s[2 * j]; r2[j] = s[2 * j + 1]; }
    for (int j = 1; j < ow; ++j) r0[j] = s[2 * j - 1];
}

static void im2col(int C, int h, int rs, int ldm, const float* map, int oh, int ow, float* cols, int NPO) {
    const int n = oh * ow;
    for (int c = 0; c < C; ++c)
        for (int kh = 0; kh < 3; ++kh) {
            float* rows = cols + (c * 3 + kh) * 3 * NPO;  // kw = 0, 1, 2 at rows, rows + NPO, rows + 2 NPO
            const float* src = map + c * ldm;
            for (int i = 0; i < oh; ++i) {
                int ih = 2 * i - 1 + kh;
                if (ih < 0 || ih >= h) {
                    for (int kw = 0; kw < 3; ++kw) memset(rows + kw * NPO + i * ow, 0, sizeof(float) * ow);
                    continue;
                }
                im2col_row2(src + ih * rs, ow, rows + i * ow, rows + NPO + i * ow, rows + 2 * NPO + i * ow);
            }
            for (int kw = 0; kw < 3; ++kw) memset(rows + kw * NPO + n, 0, sizeof(float) * (NPO - n));
        }
}

// map += the adjoint of im2col
static void col2im(int C, int h, int rs, int ldm, float* map, int oh, int ow, const float* cols, int NPO) {
    for (int c = 0; c < C; ++c)
        for (int kh = 0; kh < 3; ++kh) {
            const float* rows = cols + (c * 3 + kh) * 3 * NPO;
            float* dst = map + c * ldm;
            for (int i = 0; i < oh; ++i) {
                int ih = 2 * i - 1 + kh;
                if (ih < 0 || ih >= h) continue;
                float* __restrict d = dst + ih * rs;
                const float* __restrict r0 = rows + i * ow;
                const float* __restrict r1 = r0 + NPO;
                const float* __restrict r2 = r1 + NPO;
                // d[2j] += r1[j], d[2j + 1] += r2[j] + r0[j + 1]
                for (int j = 0; j + 1 < ow; ++j) { d[2 * j] += r1[j]; d[2 * j + 1] += r2[j] + r0[j + 1]; }
                d[2 * ow - 2] += r1[ow - 1];
                d[2 * ow - 1] += r2[ow - 1];
            }
        }
}

// A pool of worker threads that live as long as the process: worker i runs task i of each
// call. Between calls they spin briefly (training calls come every millisecond or so), then
// sleep on a condition variable. One call at a time (call_mu).

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

enum { MAX_THREADS = 64, SPINS = 20000 };

static struct {
    pthread_mutex_t mu, call_mu;
    pthread_cond_t wake, done;
    int workers;                 // started workers, ids 1..workers
    std::atomic<unsigned> gen;   // bumped once per call
    std::atomic<int> pending;    // workers still busy with this call
    int ntasks;
    void* ctx;
    void (*fn)(void* ctx, int task);
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          0, {0}, {0}, 0, NULL, NULL};

struct WorkerStart { int id; unsigned gen; };

static void* worker(void* arg) {
    const int id = ((WorkerStart*)arg)->id;
    unsigned seen = ((WorkerStart*)arg)->gen;  // the generation before the call that started it
    free(arg);
    for (;;) {
        unsigned g = seen;
        for (int i = 0; i < SPINS && (g = pool.gen.load(std::memory_order_acquire)) == seen; ++i) cpu_relax();
        if (g == seen) {
            pthread_mutex_lock(&pool.mu);
            while ((g = pool.gen.load(std::memory_order_acquire)) == seen) pthread_cond_wait(&pool.wake, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = g;
        if (id < pool.ntasks) pool.fn(pool.ctx, id);
        if (pool.pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

static void after_fork_in_child(void) {  // the workers do not exist in a forked child: start afresh
    pthread_mutex_init(&pool.mu, NULL);
    pthread_mutex_init(&pool.call_mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.workers = 0;
    pool.pending.store(0);
}

// Runs fn(ctx, 0) .. fn(ctx, n - 1), task 0 on the calling thread, and returns when all are done.
static void run_tasks(void* ctx, int n, void (*fn)(void* ctx, int task)) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, [] { pthread_atfork(NULL, NULL, after_fork_in_child); });
    pthread_mutex_lock(&pool.call_mu);
    while (pool.workers < n - 1) {
        pthread_t id;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        WorkerStart* start = (WorkerStart*)malloc(sizeof(WorkerStart));
        int failed = !start;
        if (start) {
            start->id = pool.workers + 1;
            start->gen = pool.gen.load(std::memory_order_acquire);
            failed = pthread_create(&id, &attr, worker, start);
            if (failed) free(start);
        }
        pthread_attr_destroy(&attr);
        if (failed) break;
        ++pool.workers;
    }
    for (int i = pool.workers + 1; i < n; ++i) fn(ctx, i);  // no thread for these: run them here
    pool.ctx = ctx;
    pool.ntasks = n;
    pool.fn = fn;
    pool.pending.store(pool.workers, std::memory_order_release);
    pthread_mutex_lock(&pool.mu);
    pool.gen.fetch_add(1, std::memory_order_acq_rel);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    fn(ctx, 0);
    for (int i = 0; i < SPINS && pool.pending.load(std::memory_order_acquire) > 0; ++i) cpu_relax();
    pthread_mutex_lock(&pool.mu);
    while (pool.pending.load(std::memory_order_acquire) > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.call_mu);
}
