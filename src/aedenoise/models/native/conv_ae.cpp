// Forward and backward passes of the seed autoencoder (aedenoise.models.conv_ae.ConvAE)
// for the CPU, compiled on first use by aedenoise/models/conv_ae_native.py.
//
// Layers (torch weight layouts; "same" padding, H and W multiples of 4):
//   L1 Conv2d(CIN->C1, 3, s2, p1) + ReLU        L2 Conv2d(C1->C2, 3, s2, p1) + ReLU
//   L3 ConvTranspose2d(C2->C3, 3, s2, p1, op1) + ReLU
//   L4 ConvTranspose2d(C3->C4, 3, s2, p1, op1) + ReLU
//   L5 Conv2d(C4->CIN, 3, s1, p1) + sigmoid
// The channel counts are compile-time constants (-D), so loops over them unroll.
//
// One image at a time, channel-major. The encoder (L1, L2) and L3 are im2col / col2im plus
// small matrix products; L4 and L5 work on "bordered" parity planes (see below) as sums of
// shifted planes. The batch is split between threads (a pool of pthreads, blocks.h); each
// thread sums its own weight gradients and the caller adds the per-thread sums in order,
// so results do not depend on scheduling.
#include <math.h>

#ifndef CIN
#define CIN 1
#endif
#ifndef C1
#define C1 16
#endif
#ifndef C2
#define C2 8
#endif
#ifndef C3
#define C3 8
#endif
#ifndef C4
#define C4 16
#endif

#include "blocks.h"

// ---- per-image work ----
// Quarter- and half-resolution maps a1, a2 are [C][N] (N = pad16(pixels), zero padded).
// The decoder's maps are "bordered" planes: an (h2 + 2) x (w2 + 2) grid with a zero
// border, stored flat from MARG floats in (PN floats per plane), so that a convolution
// is a sum of shifted planes over one flat index, without bounds checks. a3 (half
// resolution) has one plane per channel. Full-resolution maps (a4, the output and their
// gradients) are held as their four parity planes, p = 2 (row % 2) + (col % 2), each such a
// plane: the stride-2 transposed convolution L4 then writes, and the stride-1 L5 reads,
// whole planes at a time.

static const int MARG = 16;

struct Shape {
    int H, W, h2, w2, h4, w4;
    int N2, N4;               // padded pixel counts at half and quarter resolution
    int PW, PN, q0, L, LV;    // bordered planes: row stride, plane size, first interior row, flat length, rounded up
};

static Shape make_shape(int H, int W) {
    Shape s;
    s.H = H; s.W = W; s.h2 = H / 2; s.w2 = W / 2; s.h4 = H / 4; s.w4 = W / 4;
    s.N2 = pad16(s.h2 * s.w2); s.N4 = pad16(s.h4 * s.w4);
    s.PW = s.w2 + 2; s.q0 = MARG + s.PW; s.L = s.h2 * s.PW; s.LV = (s.L + 4 * PADV - 1) / (4 * PADV) * (4 * PADV);
    s.PN = pad16(s.q0 + s.LV + s.PW + 2 + MARG);
    return s;
}

// interior pixel (i, j) of a bordered plane sits at q0 + i * PW + j + 1

struct Weights {  // torch layouts, plus the transposes the products need
    const float *w1, *b1, *w2, *b2, *w3, *b3, *w4, *b4, *w5, *b5;
    float *w3t, *w2t;  // [C3*9][C2], [C1*9][C2]
};

static void transpose(const float* src, int rows, int cols, float* dst) {
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

static void bias_relu(float* map, int C, int n, int NP, const float* b) {
    for (int c = 0; c < C; ++c) {
        float* m = map + c * NP;
        for (int i = 0; i < n; ++i) { float v = m[i] + b[c]; m[i] = v > 0.f ? v : 0.f; }
        for (int i = n; i < NP; ++i) m[i] = 0.f;
    }
}

// Zero everything of a bordered plane but its interior (after a flat computation wrote garbage there).
static void clear_border(float* plane, const Shape& s) {
    memset(plane, 0, sizeof(float) * s.q0);
    for (int i = 0; i < s.h2; ++i) {
        plane[s.q0 + i * s.PW] = 0.f;
        plane[s.q0 + i * s.PW + s.PW - 1] = 0.f;
    }
    memset(plane + s.q0 + s.L, 0, sizeof(float) * (s.PN - s.q0 - s.L));
}

// Transposed conv (k3, s2, p1, output padding 1): output row 2i + a reads input row i + d
// with kernel row kh, for the (kh, d) pairs of parity a; the same for columns.
static constexpr int T_N[2] = {1, 2};
static constexpr int T_K[2][2] = {{1, 1}, {0, 2}};
static constexpr int T_D[2][2] = {{0, 0}, {1, 0}};

static inline v16 relu(v16 x) { v16 z = splat(0.f); return x > z ? x : z; }

// Stride-1 conv at full resolution in parity planes: output parity (a, c), tap (kh, kw) reads
// input parity l5_pin at flat offset l5_off in the bordered planes.
static constexpr int l5_pin(int p, int kh, int kw) {
    int r = (p >> 1) + kh - 1, c = (p & 1) + kw - 1;
    return ((r & 1) << 1) | (c & 1);
}
static constexpr int l5_off(int p, int kh, int kw, int PW) {
    int r = (p >> 1) + kh - 1, c = (p & 1) + kw - 1;
    return (r >> 1) * PW + (c >> 1);  // arithmetic shift: -1 >> 1 == -1
}

// L4 forward, output parity (A, C): a4[co][p] = relu(b4 + sum over ci and the parity's taps of w4 * shifted a3[ci]).
// Output channels in blocks of L4_CO accumulators (all of them where 32 registers hold them).
static constexpr int L4_CO = divisor_at_most(C4, VREGS >= 32 ? 16 : 8);

template <int A, int C>
static void l4_forward_parity(const float* a3, const Shape& s, const float* w4, const float* b4, float* a4) {
    constexpr int p = 2 * A + C;
    for (int co0 = 0; co0 < C4; co0 += L4_CO)
        for (int n = 0; n < s.LV; n += V) {
            v16 acc[L4_CO];
            for (int k = 0; k < L4_CO; ++k) acc[k] = splat(b4[co0 + k]);
            for (int ci = 0; ci < C3; ++ci)
#pragma GCC unroll 2
                for (int u = 0; u < T_N[A]; ++u)
#pragma GCC unroll 2
                    for (int v = 0; v < T_N[C]; ++v) {
                        const int kh = T_K[A][u], kw = T_K[C][v];
                        v16 x = load(a3 + (size_t)ci * s.PN + s.q0 + n + T_D[A][u] * s.PW + T_D[C][v]);
#pragma GCC unroll 16
                        for (int k = 0; k < L4_CO; ++k) acc[k] += splat(w4[((ci * C4 + co0 + k) * 3 + kh) * 3 + kw]) * x;
                    }
            for (int k = 0; k < L4_CO; ++k) store(a4 + (size_t)((co0 + k) * 4 + p) * s.PN + s.q0 + n, relu(acc[k]));
        }
}

static void l4_forward(const float* a3, const Shape& s, const float* w4, const float* b4, float* a4) {
    l4_forward_parity<0, 0>(a3, s, w4, b4, a4);
    l4_forward_parity<0, 1>(a3, s, w4, b4, a4);
    l4_forward_parity<1, 0>(a3, s, w4, b4, a4);
    l4_forward_parity<1, 1>(a3, s, w4, b4, a4);
    for (int k = 0; k < C4 * 4; ++k) clear_border(a4 + (size_t)k * s.PN, s);
}

// L5 forward: z[co][p][n] (n from q0) = sum over ci, taps of w5 * a4[ci][pin] at the tap's offset
static void l5_forward(const float* a4, const Shape& s, const float* w5, float* z) {
    constexpr int NV = 4;  // independent accumulators per output channel (s.LV is a multiple of 4 V)
    for (int p = 0; p < 4; ++p)
        for (int n = 0; n < s.LV; n += NV * V) {
            v16 acc[CIN][NV];
            for (int co = 0; co < CIN; ++co)
                for (int k = 0; k < NV; ++k) acc[co][k] = splat(0.f);
            for (int ci = 0; ci < C4; ++ci)
                for (int kh = 0; kh < 3; ++kh)
                    for (int kw = 0; kw < 3; ++kw) {
                        const float* src = a4 + (size_t)(ci * 4 + l5_pin(p, kh, kw)) * s.PN + s.q0 + n + l5_off(p, kh, kw, s.PW);
                        v16 x[NV];
                        for (int k = 0; k < NV; ++k) x[k] = load(src + k * V);
                        for (int co = 0; co < CIN; ++co) {
                            v16 wv = splat(w5[((co * C4 + ci) * 3 + kh) * 3 + kw]);
                            for (int k = 0; k < NV; ++k) acc[co][k] += wv * x[k];
                        }
                    }
            for (int co = 0; co < CIN; ++co)
                for (int k = 0; k < NV; ++k) store(z + (size_t)(co * 4 + p) * s.LV + n + k * V, acc[co][k]);
        }
}

// L5 backward, the gradient of a4's parity plane PIN: the adjoint of l5_forward's reads from it.
template <int PIN>
static void l5_input_grad(const float* g5, const Shape& s, const float* w5, float* g4) {
    for (int ci = 0; ci < C4; ++ci) {
        float* dst = g4 + (size_t)(ci * 4 + PIN) * s.PN;
        for (int n = 0; n < s.LV; n += V) {
            v16 acc = splat(0.f);
#pragma GCC unroll 4
            for (int p = 0; p < 4; ++p)
#pragma GCC unroll 3
                for (int kh = 0; kh < 3; ++kh)
#pragma GCC unroll 3
                    for (int kw = 0; kw < 3; ++kw) {
                        if (l5_pin(p, kh, kw) != PIN) continue;
                        const int off = l5_off(p, kh, kw, s.PW);
                        for (int co = 0; co < CIN; ++co)
                            acc += splat(w5[((co * C4 + ci) * 3 + kh) * 3 + kw]) *
                                   load(g5 + (size_t)(co * 4 + p) * s.PN + s.q0 + n - off);
                    }
            store(dst + s.q0 + n, acc);
        }
    }
}

// L5 backward: weight gradients into vector accumulators gw5v [CIN*C4*9][V]; g4 = gradient of a4.
static void l5_backward(const float* a4, const float* g5, const Shape& s, const float* w5, float* gw5v, float* g4) {
    for (int ci = 0; ci < C4; ++ci) {
        v16 acc[CIN][9];
        for (int co = 0; co < CIN; ++co)
            for (int t = 0; t < 9; ++t) acc[co][t] = splat(0.f);
        for (int p = 0; p < 4; ++p)
            for (int n = 0; n < s.LV; n += V) {
                v16 g[CIN];
                for (int co = 0; co < CIN; ++co) g[co] = load(g5 + (size_t)(co * 4 + p) * s.PN + s.q0 + n);
                for (int kh = 0; kh < 3; ++kh)
                    for (int kw = 0; kw < 3; ++kw) {
                        v16 x = load(a4 + (size_t)(ci * 4 + l5_pin(p, kh, kw)) * s.PN + s.q0 + n + l5_off(p, kh, kw, s.PW));
                        for (int co = 0; co < CIN; ++co) acc[co][kh * 3 + kw] += g[co] * x;
                    }
            }
        for (int co = 0; co < CIN; ++co)
            for (int t = 0; t < 9; ++t) {
                float* dst = gw5v + (size_t)((co * C4 + ci) * 9 + t) * V;
                store(dst, load(dst) + acc[co][t]);
            }
    }
    l5_input_grad<0>(g5, s, w5, g4);
    l5_input_grad<1>(g5, s, w5, g4);
    l5_input_grad<2>(g5, s, w5, g4);
    l5_input_grad<3>(g5, s, w5, g4);
}

// L4 backward: weight gradients into gw4v [C3*C4*9][V]; g3 = gradient of a3 (bordered plane).
// Weight gradients for L4B_CO output channels at a time (9 accumulators each).
static constexpr int L4B_CO = divisor_at_most(C4, VREGS >= 32 ? 2 : 1);

static void l4_backward(const float* a3, const float* g4, const Shape& s, const float* w4, float* gw4v, float* g3) {
    const int offs[4] = {0, 1, s.PW, s.PW + 1};  // d * PW + e
    for (int ci = 0; ci < C3; ++ci)
        for (int co0 = 0; co0 < C4; co0 += L4B_CO) {
            v16 acc[L4B_CO][9];
            for (int k = 0; k < L4B_CO; ++k)
                for (int t = 0; t < 9; ++t) acc[k][t] = splat(0.f);
            for (int n = 0; n < s.LV; n += V) {
                v16 x[4], g[L4B_CO][4];
                for (int o = 0; o < 4; ++o) x[o] = load(a3 + (size_t)ci * s.PN + s.q0 + n + offs[o]);
                for (int k = 0; k < L4B_CO; ++k)
                    for (int p = 0; p < 4; ++p) g[k][p] = load(g4 + (size_t)((co0 + k) * 4 + p) * s.PN + s.q0 + n);
                for (int kh = 0; kh < 3; ++kh)
                    for (int kw = 0; kw < 3; ++kw) {
                        const int a = kh == 1 ? 0 : 1, c = kw == 1 ? 0 : 1, d = kh == 0, e = kw == 0;
                        for (int k = 0; k < L4B_CO; ++k) acc[k][kh * 3 + kw] += g[k][2 * a + c] * x[2 * d + e];
                    }
            }
            for (int k = 0; k < L4B_CO; ++k)
                for (int t = 0; t < 9; ++t) {
                    float* dst = gw4v + (size_t)((ci * C4 + co0 + k) * 9 + t) * V;
                    store(dst, load(dst) + acc[k][t]);
                }
        }
    for (int n = 0; n < s.LV; n += V) {
        v16 acc[C3];
        for (int ci = 0; ci < C3; ++ci) acc[ci] = splat(0.f);
        for (int co = 0; co < C4; ++co)
            for (int kh = 0; kh < 3; ++kh)
                for (int kw = 0; kw < 3; ++kw) {
                    const int a = kh == 1 ? 0 : 1, c = kw == 1 ? 0 : 1, d = kh == 0, e = kw == 0;
                    v16 x = load(g4 + (size_t)(co * 4 + 2 * a + c) * s.PN + s.q0 + n - offs[2 * d + e]);
                    for (int ci = 0; ci < C3; ++ci) acc[ci] += splat(w4[((ci * C4 + co) * 3 + kh) * 3 + kw]) * x;
                }
        for (int ci = 0; ci < C3; ++ci) store(g3 + (size_t)ci * s.PN + s.q0 + n, acc[ci]);
    }
}

static size_t cols_floats(const Shape& s) {  // the largest im2col of either pass
    size_t n = (size_t)C3 * 9 * s.N4, sizes[2] = {(size_t)CIN * 9 * s.N2, (size_t)C1 * 9 * s.N4};
    for (size_t m : sizes) n = m > n ? m : n;
    return n;
}

// Each thread keeps its scratch between calls (grown when a larger image comes).
static thread_local float* tl_scratch = NULL;
static thread_local size_t tl_capacity = 0;

static float* scratch_floats(size_t n) {
    if (n > tl_capacity) {
        free(tl_scratch);
        tl_scratch = (float*)aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
        tl_capacity = tl_scratch ? n : 0;
    }
    return tl_scratch;
}

struct Task {
    Shape s;
    const Weights* wt;
    int b0, b1;
    const float* y;    // [B][CIN][H*W]
    float* out;        // [B][CIN][H*W]
    float *a1, *a2, *a3, *a4;  // saved activations (NULL: not saved)
    const float* gout; // backward: [B][CIN][H*W]
    float* grad;       // backward: this thread's parameter gradients (torch order, flat)
    int status;
};

// Forward pass of images b0..b1; activations in a1..a4 (per image slices) or scratch.
static void forward_images(Task* t) {
    const Shape& s = t->s;
    const Weights& w = *t->wt;
    const int HW = s.H * s.W;
    size_t ncols = cols_floats(s);
    float* scratch = scratch_floats(ncols + (size_t)C1 * s.N2 + C2 * s.N4 + (size_t)(C3 + 4 * C4) * s.PN + (size_t)CIN * 4 * s.LV);
    if (!scratch) { t->status = 1; return; }
    float* cols = scratch;
    float* m1 = cols + ncols;
    float* m2 = m1 + (size_t)C1 * s.N2;
    float* m3 = m2 + (size_t)C2 * s.N4;
    float* m4 = m3 + (size_t)C3 * s.PN;
    float* z5 = m4 + (size_t)C4 * 4 * s.PN;
    for (int b = t->b0; b < t->b1; ++b) {
        float* a1 = t->a1 ? t->a1 + (size_t)b * C1 * s.N2 : m1;
        float* a2 = t->a2 ? t->a2 + (size_t)b * C2 * s.N4 : m2;
        float* a3 = t->a3 ? t->a3 + (size_t)b * C3 * s.PN : m3;
        float* a4 = t->a4 ? t->a4 + (size_t)b * C4 * 4 * s.PN : m4;
        const float* x = t->y + (size_t)b * CIN * HW;
        // L1
        im2col(CIN, s.H, s.W, HW, x, s.h2, s.w2, cols, s.N2);
        gemm_nn(C1, CIN * 9, s.N2, w.w1, CIN * 9, cols, a1, false);
        bias_relu(a1, C1, s.h2 * s.w2, s.N2, w.b1);
        // L2
        im2col(C1, s.h2, s.w2, s.N2, a1, s.h4, s.w4, cols, s.N4);
        gemm_nn(C2, C1 * 9, s.N4, w.w2, C1 * 9, cols, a2, false);
        bias_relu(a2, C2, s.h4 * s.w4, s.N4, w.b2);
        // L3: columns = W3^T a2, then scattered into the bordered half-resolution planes
        gemm_nn(C3 * 9, C2, s.N4, w.w3t, C2, a2, cols, false);
        memset(a3, 0, sizeof(float) * C3 * s.PN);
        col2im(C3, s.h2, s.PW, s.PN, a3 + s.q0 + 1, s.h4, s.w4, cols, s.N4);
        for (int c = 0; c < C3; ++c)
            for (int i = 0; i < s.h2; ++i) {
                float* m = a3 + (size_t)c * s.PN + s.q0 + i * s.PW + 1;
                for (int j = 0; j < s.w2; ++j) { float v = m[j] + w.b3[c]; m[j] = v > 0.f ? v : 0.f; }
            }
        // L4, L5 in parity planes, then sigmoid into the output image
        l4_forward(a3, s, w.w4, w.b4, a4);
        l5_forward(a4, s, w.w5, z5);
        for (int c = 0; c < CIN; ++c) {
            float* o = t->out + ((size_t)b * CIN + c) * HW;
            for (int yy = 0; yy < s.H; ++yy) {
                const float* z0 = z5 + (size_t)(c * 4 + 2 * (yy & 1)) * s.LV + (yy >> 1) * s.PW + 1;
                const float* z1 = z0 + s.LV;
                for (int j = 0; j < s.w2; ++j) {
                    o[yy * s.W + 2 * j] = 1.f / (1.f + expf(-(z0[j] + w.b5[c])));
                    o[yy * s.W + 2 * j + 1] = 1.f / (1.f + expf(-(z1[j] + w.b5[c])));
                }
            }
        }
    }
}

// g = g where a > 0, else 0 (ReLU backward; a is the ReLU's output), per channel of NP floats
// (a multiple of 16); the bias gradient gb[c] += the sum of channel c's masked g.
static void relu_backward(float* g, const float* a, int C, int NP, float* gb) {
    const v16 zero = splat(0.f);
    for (int c = 0; c < C; ++c) {
        v16 acc[4] = {zero, zero, zero, zero};
        for (int i = 0; i < NP; i += V) {
            v16 x = load(g + (size_t)c * NP + i);
            x = load(a + (size_t)c * NP + i) > zero ? x : zero;
            store(g + (size_t)c * NP + i, x);
            acc[(i / V) & 3] += x;
        }
        gb[c] += hsum((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
}

static void bias_grad(const float* g, int C, int NP, float* gb) {
    const v16 zero = splat(0.f);
    for (int c = 0; c < C; ++c) {
        v16 acc[4] = {zero, zero, zero, zero};
        for (int i = 0; i < NP; i += V) acc[(i / V) & 3] += load(g + (size_t)c * NP + i);
        gb[c] += hsum((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
}

enum {
    OW1 = 0, OB1 = OW1 + C1 * CIN * 9, OW2 = OB1 + C1, OB2 = OW2 + C2 * C1 * 9, OW3 = OB2 + C2,
    OB3 = OW3 + C2 * C3 * 9, OW4 = OB3 + C3, OB4 = OW4 + C3 * C4 * 9, OW5 = OB4 + C4,
    OB5 = OW5 + CIN * C4 * 9, NPARAM = OB5 + CIN
};

static void backward_images(Task* t) {
    const Shape& s = t->s;
    const Weights& w = *t->wt;
    const int HW = s.H * s.W;
    const size_t ncols = cols_floats(s), nv4 = (size_t)C3 * C4 * 9 * V, nv5 = (size_t)CIN * C4 * 9 * V;
    size_t nmaps = (size_t)(CIN + C4) * 4 * s.PN + (size_t)C3 * s.PN + (size_t)C2 * s.N4 + (size_t)C1 * s.N2;
    float* scratch = scratch_floats(ncols + nmaps + nv4 + nv5);
    if (!scratch) { t->status = 1; return; }
    float* cols = scratch;
    float* g5 = cols + ncols;                  // [CIN][4][PN] parity planes
    float* g4 = g5 + (size_t)CIN * 4 * s.PN;   // [C4][4][PN]
    float* g3 = g4 + (size_t)C4 * 4 * s.PN;    // [C3][PN] bordered
    float* g2 = g3 + (size_t)C3 * s.PN;        // [C2][N4]
    float* g1 = g2 + (size_t)C2 * s.N4;        // [C1][N2]
    float* gw4v = g1 + (size_t)C1 * s.N2;      // per-lane weight gradient sums of L4, L5
    float* gw5v = gw4v + nv4;
    float* gr = t->grad;
    memset(g5, 0, sizeof(float) * CIN * 4 * s.PN);
    memset(gw4v, 0, sizeof(float) * (nv4 + nv5));
    for (int b = t->b0; b < t->b1; ++b) {
        const float* a1 = t->a1 + (size_t)b * C1 * s.N2;
        const float* a2 = t->a2 + (size_t)b * C2 * s.N4;
        const float* a3 = t->a3 + (size_t)b * C3 * s.PN;
        const float* a4 = t->a4 + (size_t)b * C4 * 4 * s.PN;
        for (int c = 0; c < CIN; ++c) {  // sigmoid backward, into the parity planes (borders stay zero)
            const float* o = t->out + ((size_t)b * CIN + c) * HW;
            const float* go = t->gout + ((size_t)b * CIN + c) * HW;
            for (int yy = 0; yy < s.H; ++yy) {
                float* g0 = g5 + (size_t)(c * 4 + 2 * (yy & 1)) * s.PN + s.q0 + (yy >> 1) * s.PW + 1;
                float* g1p = g0 + s.PN;
                for (int j = 0; j < s.w2; ++j) {
                    float v0 = o[yy * s.W + 2 * j], v1 = o[yy * s.W + 2 * j + 1];
                    g0[j] = go[yy * s.W + 2 * j] * v0 * (1.f - v0);
                    g1p[j] = go[yy * s.W + 2 * j + 1] * v1 * (1.f - v1);
                }
            }
        }
        // L5
        bias_grad(g5, CIN, 4 * s.PN, gr + OB5);
        l5_backward(a4, g5, s, w.w5, gw5v, g4);
        relu_backward(g4, a4, C4, 4 * s.PN, gr + OB4);  // a4 is zero off the interior: so is g4 then
        // L4
        l4_backward(a3, g4, s, w.w4, gw4v, g3);
        relu_backward(g3, a3, C3, s.PN, gr + OB3);
        // L3 (transposed conv): cols3 = im2col_s2(g3); dW3 = a2 cols3^T; d a2 = W3 cols3
        im2col(C3, s.h2, s.PW, s.PN, g3 + s.q0 + 1, s.h4, s.w4, cols, s.N4);
        gemm_nt(C2, C3 * 9, s.N4, a2, cols, gr + OW3);
        gemm_nn(C2, C3 * 9, s.N4, w.w3, C3 * 9, cols, g2, false);
        relu_backward(g2, a2, C2, s.N4, gr + OB2);
        // L2: dW2 = g2 im2col(a1)^T; d a1 = col2im(W2^T g2)
        im2col(C1, s.h2, s.w2, s.N2, a1, s.h4, s.w4, cols, s.N4);
        gemm_nt(C2, C1 * 9, s.N4, g2, cols, gr + OW2);
        gemm_nn(C1 * 9, C2, s.N4, w.w2t, C2, g2, cols, false);
        memset(g1, 0, sizeof(float) * C1 * s.N2);
        col2im(C1, s.h2, s.w2, s.N2, g1, s.h4, s.w4, cols, s.N4);
        relu_backward(g1, a1, C1, s.N2, gr + OB1);
        // L1
        im2col(CIN, s.H, s.W, HW, t->y + (size_t)b * CIN * HW, s.h2, s.w2, cols, s.N2);
        gemm_nt(C1, CIN * 9, s.N2, g1, cols, gr + OW1);
    }
    for (int k = 0; k < C3 * C4 * 9; ++k) gr[OW4 + k] += hsum(load(gw4v + (size_t)k * V));
    for (int k = 0; k < CIN * C4 * 9; ++k) gr[OW5 + k] += hsum(load(gw5v + (size_t)k * V));
}

static int prepare(Weights* w, const float* const* p) {
    w->w1 = p[0]; w->b1 = p[1]; w->w2 = p[2]; w->b2 = p[3]; w->w3 = p[4];
    w->b3 = p[5]; w->w4 = p[6]; w->b4 = p[7]; w->w5 = p[8]; w->b5 = p[9];
    size_t n = (size_t)C3 * 9 * C2 + C1 * 9 * C2;
    float* buf = (float*)malloc(n * sizeof(float));
    if (!buf) return 1;
    w->w3t = buf; w->w2t = w->w3t + C3 * 9 * C2;
    transpose(w->w3, C2, C3 * 9, w->w3t);
    transpose(w->w2, C2, C1 * 9, w->w2t);
    return 0;
}

static void forward_task(void* tasks, int i) { forward_images((Task*)tasks + i); }
static void backward_task(void* tasks, int i) { backward_images((Task*)tasks + i); }

static int run(Task* tasks, int n, void (*fn)(void*, int)) {
    run_tasks(tasks, n, fn);
    int status = 0;
    for (int i = 0; i < n; ++i) status |= tasks[i].status;
    return status;
}

// Checks the size, prepares the weights, gives each thread a contiguous share of the batch
// (task i: images B i / n to B (i + 1) / n, gradient row i) and runs fn on every share.
static int dispatch(Task proto, int B, int H, int W, const float* const* params, int threads, void (*fn)(void*, int)) {
    if (H % 4 || W % 4 || H < 4 || W < 4) return 2;
    Weights w;
    if (prepare(&w, params)) return 1;
    proto.s = make_shape(H, W);
    proto.wt = &w;
    proto.status = 0;
    int n = threads < 1 ? 1 : threads;
    if (n > MAX_THREADS) n = MAX_THREADS;
    if (n > B) n = B > 0 ? B : 1;
    Task tasks[MAX_THREADS];
    for (int i = 0; i < n; ++i) {
        tasks[i] = proto;
        tasks[i].b0 = (int)((int64_t)B * i / n);
        tasks[i].b1 = (int)((int64_t)B * (i + 1) / n);
        if (proto.grad) tasks[i].grad = proto.grad + (size_t)i * NPARAM;
    }
    int status = run(tasks, n, fn);
    free(w.w3t);
    return status;
}

extern "C" {

int cae_num_params(void) { return NPARAM; }

// Per-channel sizes of the saved activations a1, a2, a3, a4: N2, N4, PN (bordered plane), 4 PN (parity planes).
void cae_padded(int H, int W, int* n) { Shape s = make_shape(H, W); n[0] = s.N2; n[1] = s.N4; n[2] = s.PN; n[3] = 4 * s.PN; }

// params: 10 pointers (w1, b1, ..., w5, b5; torch layouts, float32, contiguous).
// a1..a4: [B][C1][N2], [B][C2][N4], [B][C3][PN], [B][C4][4 PN] (cae_padded), or all NULL (inference).
// Returns 0, 1 (out of memory) or 2 (H or W not a positive multiple of 4).
int cae_forward(int B, int H, int W, const float* y, const float* const* params, float* out,
                float* a1, float* a2, float* a3, float* a4, int threads) {
    Task t = {};
    t.y = y; t.out = out; t.a1 = a1; t.a2 = a2; t.a3 = a3; t.a4 = a4;
    return dispatch(t, B, H, W, params, threads, forward_task);
}

// grad: [threads][NPARAM] zeroed by the caller; thread i adds its images' gradients to row i.
int cae_backward(int B, int H, int W, const float* y, const float* const* params, const float* out,
                 const float* a1, const float* a2, const float* a3, const float* a4, const float* gout,
                 float* grad, int threads) {
    Task t = {};
    t.y = y; t.out = (float*)out; t.gout = gout; t.grad = grad;
    t.a1 = (float*)a1; t.a2 = (float*)a2; t.a3 = (float*)a3; t.a4 = (float*)a4;
    return dispatch(t, B, H, W, params, threads, backward_task);
}

}  // extern "C"
