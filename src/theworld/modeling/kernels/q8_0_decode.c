/* Q8_0 matrix products for CPU decoding: out = x @ W.T with W in blocks of 32 int8 weights and one fp16 scale.
 *
 * Why by hand: decoding reads every weight once per token, so its speed is memory bandwidth over weight bytes.
 * On x86 CPUs with AVX2 but no AVX-512, the int8/int4 weight-only kernels of PyTorch and torchao run far below
 * memory speed, and fbgemm's int8 has one activation scale per row, which Gemma's activation outliers break
 * (docs/real-gemma.md). The format is GGUF's Q8_0 (x = d * q, q in [-127, 127]), so weights that came from a
 * Q8_0 tensor of a GGUF are kept exactly.
 *
 * The activations are rounded to 16 bits in blocks of 32, each with its fp32 scale (llama.cpp rounds them to 8
 * bits: 16 cost the same here, as the weights are widened to int16 either way, and they make the rounding of the
 * activations vanish next to the weights'). One block's dot product is then an exact int32 sum of 32 products
 * (AVX2's madd: |w| <= 127, |a| <= 32767; each of the 8 partial sums adds 4 products, under 2^24, so their
 * conversion to fp32 is exact too), scaled once by both scales.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define BLOCK 32
#define PREFETCH 2048 /* bytes ahead: the hardware prefetcher alone leaves a core's memory bandwidth unused */

/* One layer's weights, as `block_quantization.BlockLinear` keeps them: values (rows, cols) int8, scales
 * (rows, cols / 32) fp16; norm_scale (cols) when the layer's input is first RMS-normalised (Gemma's norm before a
 * projection, one call instead of two), else NULL. */
struct block_weights {
    int64_t rows, cols;
    const int8_t *values;
    const uint16_t *scales;
    const float *norm_scale;
    float norm_eps;
    int64_t gated; /* 1: the input is [gate | up], 2 * cols per token, and the layer reads gelu_tanh(gate) * up */
};

/* e^x, 8 at a time, for |x| <= 20 (Cephes' expf: x = n ln2 + r, a degree-6 polynomial in r, times 2^n). */
static inline __m256 exp8(__m256 x) {
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x); /* ln2 in two parts: r stays exact */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i power = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(power));
}

/* GELU, tanh approximation (Gemma's activation), times the up projection: the MLP's product before its down
 * projection. Vectorised: tanhf one value at a time is a visible share of a decode step.
 * tanh(u) = 1 - 2 / (e^2u + 1), with u clamped to [-10, 10], where tanh is +-1 in fp32. cols is a multiple of 8. */
static void gelu_times(const float *gate, const float *up, int64_t cols, float *out) {
    const __m256 limit = _mm256_set1_ps(10.0f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    for (int64_t j = 0; j < cols; j += 8) {
        __m256 v = _mm256_loadu_ps(gate + j);
        __m256 cube = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
        __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), cube, v));
        u = _mm256_max_ps(_mm256_min_ps(u, limit), _mm256_sub_ps(_mm256_setzero_ps(), limit));
        __m256 tanh = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(exp8(_mm256_add_ps(u, u)), one)));
        __m256 gelu = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(one, tanh));
        _mm256_storeu_ps(out + j, _mm256_mul_ps(gelu, _mm256_loadu_ps(up + j)));
    }
}

static void normalise(const float *v, const float *scale, int64_t cols, float eps, float *out) {
    double squares = 0.0;
    for (int64_t j = 0; j < cols; j++) squares += (double)v[j] * v[j];
    float inverse = (float)(1.0 / sqrt(squares / (double)cols + eps));
    for (int64_t j = 0; j < cols; j++) out[j] = v[j] * inverse * scale[j];
}

/* x (rows, cols) fp32 -> q (rows, cols) int16 and scales (rows, cols / 32) fp32; cols is a multiple of 32. Each
 * block: scale = max|v| / 32767, q = v * (32767 / max|v|) rounded to the nearest, ties to even, 8 at a time. */
static void quantize_rows(const float *x, int64_t rows, int64_t cols, int16_t *q, float *scales) {
    int64_t blocks = rows * (cols / BLOCK);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < blocks; i++) {
        __m256 parts[4], amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            parts[k] = _mm256_loadu_ps(x + i * BLOCK + 8 * k);
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, parts[k]), amax);
        }
        __m128 top4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        top4 = _mm_max_ps(top4, _mm_movehl_ps(top4, top4));
        float top = _mm_cvtss_f32(_mm_max_ss(top4, _mm_movehdup_ps(top4)));
        __m256 inverse = _mm256_set1_ps(top > 0.0f ? 32767.0f / top : 0.0f);
        scales[i] = top / 32767.0f;
        __m256i rounded[4];
        for (int k = 0; k < 4; k++) rounded[k] = _mm256_cvtps_epi32(_mm256_mul_ps(parts[k], inverse));
        /* The pack interleaves two vectors by 128-bit lane; the permutation puts the 16 values back in order. */
        for (int k = 0; k < 2; k++) {
            __m256i packed = _mm256_packs_epi32(rounded[2 * k], rounded[2 * k + 1]);
            _mm256_storeu_si256((__m256i *)(q + i * BLOCK + 16 * k), _mm256_permute4x64_epi64(packed, 0xD8));
        }
    }
}

/* The 8 int32 partial sums of one block's 32 products, the block's 32 weights already widened to int16. */
static inline __m256i block_sums(__m256i w_low, __m256i w_high, const int16_t *a) {
    __m256i low = _mm256_madd_epi16(w_low, _mm256_loadu_si256((const __m256i *)a));
    return _mm256_add_epi32(low, _mm256_madd_epi16(w_high, _mm256_loadu_si256((const __m256i *)(a + 16))));
}

static inline __m256i widen(const int8_t *w) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
}

/* acc + scale[b] * the partial sums of block b. */
static inline __m256 add_block(const int8_t *w, const int16_t *a, const float *scale, int64_t b, __m256 acc) {
    __m256i sums = block_sums(widen(w + b * BLOCK), widen(w + b * BLOCK + 16), a + b * BLOCK);
    return _mm256_fmadd_ps(_mm256_broadcast_ss(scale + b), _mm256_cvtepi32_ps(sums), acc);
}

/* both[b] = weight scale b (fp16) * activation scale b, 8 at a time: the dot product's loop then scales a block
 * with one broadcast load instead of a conversion, a product and a broadcast of its own. */
static inline void block_scales(const uint16_t *w_scales, const float *a_scales, int64_t blocks, float *both) {
    int64_t b = 0;
    for (; b + 8 <= blocks; b += 8) {
        __m256 w = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w_scales + b)));
        _mm256_storeu_ps(both + b, _mm256_mul_ps(w, _mm256_loadu_ps(a_scales + b)));
    }
    for (; b < blocks; b++) both[b] = _cvtsh_ss(w_scales[b]) * a_scales[b];
}

static inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* out[m, n] for rows n in [start, end) and every token m; out is (tokens, w->rows). Tokens go four at a time
 * (a prompt's prefill), sharing each weight block's load, widening and scale. */
static void rows_times_tokens(const struct block_weights *w, const int16_t *acts, const float *act_scales,
                              float *out, int64_t tokens, int64_t start, int64_t end) {
    int64_t blocks = w->cols / BLOCK;
    float both[blocks];
    for (int64_t n = start; n < end; n++) {
        const int8_t *wq = w->values + n * w->cols;
        const uint16_t *ws = w->scales + n * blocks;
        int64_t m = 0;
        for (; m + 4 <= tokens; m += 4) {
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int64_t b = 0; b < blocks; b++) {
                __m256i w_low = widen(wq + b * BLOCK), w_high = widen(wq + b * BLOCK + 16);
                float scale = _cvtsh_ss(ws[b]);
                for (int k = 0; k < 4; k++) {
                    __m256i sums = block_sums(w_low, w_high, acts + (m + k) * w->cols + b * BLOCK);
                    __m256 both = _mm256_set1_ps(scale * act_scales[(m + k) * blocks + b]);
                    acc[k] = _mm256_fmadd_ps(both, _mm256_cvtepi32_ps(sums), acc[k]);
                }
            }
            for (int k = 0; k < 4; k++) out[(m + k) * w->rows + n] = horizontal_sum(acc[k]);
        }
        for (; m < tokens; m++) {
            const int16_t *aq = acts + m * w->cols;
            block_scales(ws, act_scales + m * blocks, blocks, both);
            __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps(); /* two chains hide the FMA latency */
            int64_t b = 0;
            for (; b + 1 < blocks; b += 2) {
                _mm_prefetch((const char *)(wq + b * BLOCK + PREFETCH), _MM_HINT_T0);
                _mm_prefetch((const char *)(wq + b * BLOCK + PREFETCH + 64), _MM_HINT_T0);
                even = add_block(wq, aq, both, b, even);
                odd = add_block(wq, aq, both, b + 1, odd);
            }
            if (b < blocks) even = add_block(wq, aq, both, b, even);
            out[m * w->rows + n] = horizontal_sum(_mm256_add_ps(even, odd));
        }
    }
}

/* out (tokens, rows) = x (tokens, cols) @ W.T, the rows split between `threads` threads. 0 on success, 1 when the
 * activations' buffer cannot be allocated. */
static int project(const struct block_weights *w, const float *x, int64_t tokens, float *out, int64_t threads) {
    int16_t *acts = malloc((size_t)(tokens * w->cols) * sizeof(int16_t));
    float *act_scales = malloc((size_t)(tokens * (w->cols / BLOCK)) * sizeof(float));
    int prepared = w->norm_scale != NULL || w->gated;
    float *normalised = prepared ? malloc((size_t)(tokens * w->cols) * sizeof(float)) : NULL;
    if (acts == NULL || act_scales == NULL || (prepared && normalised == NULL)) {
        free(acts);
        free(act_scales);
        free(normalised);
        return 1;
    }
    if (w->gated) {
        for (int64_t t = 0; t < tokens; t++)
            gelu_times(x + 2 * t * w->cols, x + (2 * t + 1) * w->cols, w->cols, normalised + t * w->cols);
        x = normalised;
    } else if (w->norm_scale != NULL) {
        for (int64_t t = 0; t < tokens; t++)
            normalise(x + t * w->cols, w->norm_scale, w->cols, w->norm_eps, normalised + t * w->cols);
        x = normalised;
    }
    quantize_rows(x, tokens, w->cols, acts, act_scales);
    int64_t chunks = threads < 1 ? 1 : threads;
#pragma omp parallel for num_threads(chunks) if (chunks > 1)
    for (int64_t c = 0; c < chunks; c++)
        rows_times_tokens(w, acts, act_scales, out, tokens, w->rows * c / chunks, w->rows * (c + 1) / chunks);
    free(acts);
    free(act_scales);
    free(normalised);
    return 0;
}

/* Token t's `groups` vectors of `cols` values start at x + t * x_stride and go to out + t * out_stride (out may be
 * x itself: each vector is read whole before it is written); vector g is normalised with scale row g, then added
 * to `residual` (laid out as out) or rotated by token t's row of cos and sin (tokens, cols), where those are not
 * NULL. 0 on success, 1 when the rotary's buffer cannot be allocated. */
static int normalise_vectors(const float *x, int64_t tokens, int64_t x_stride, const float *scale, int64_t groups,
                             int64_t cols, float eps, const float *residual, const float *cos, const float *sin,
                             float *out, int64_t out_stride) {
    int64_t half = cols / 2;
    float *normed = cos == NULL ? NULL : malloc((size_t)cols * sizeof(float));
    if (cos != NULL && normed == NULL) return 1;
    for (int64_t t = 0; t < tokens; t++) {
        for (int64_t g = 0; g < groups; g++) {
            int64_t at = t * out_stride + g * cols;
            if (cos == NULL) {
                normalise(x + t * x_stride + g * cols, scale + g * cols, cols, eps, out + at);
            } else { /* the rotary embedding of token t: n * cos + (-n[half:], n[:half]) * sin */
                const float *c = cos + t * cols, *s = sin + t * cols;
                normalise(x + t * x_stride + g * cols, scale + g * cols, cols, eps, normed);
                for (int64_t j = 0; j < half; j++) out[at + j] = normed[j] * c[j] - normed[j + half] * s[j];
                for (int64_t j = half; j < cols; j++) out[at + j] = normed[j] * c[j] + normed[j - half] * s[j];
            }
            if (residual != NULL)
                for (int64_t j = 0; j < cols; j++) out[at + j] += residual[at + j];
        }
    }
    free(normed);
    return 0;
}

int block_linear(const struct block_weights *w, const float *x, int64_t tokens, float *out, int64_t threads) {
    return project(w, x, tokens, out, threads);
}

/* Gemma's RMSNorm, out = x / sqrt(mean(x^2) + eps) * scale (scale = 1 + its weight), in one call: PyTorch's CPU
 * rms_norm is several ops. Token t's `groups` vectors of `cols` values start at x + t * x_stride; vector g uses
 * scale row g; out is (tokens, groups, cols), contiguous. With `residual` (the same shape as out), out = residual +
 * the norm: Gemma's norm after a block and the residual add, one call. */
void rms_norm(const float *x, int64_t tokens, int64_t x_stride, const float *scale, int64_t groups, int64_t cols,
              float eps, const float *residual, float *out) {
    normalise_vectors(x, tokens, x_stride, scale, groups, cols, eps, residual, NULL, NULL, out, groups * cols);
}

/* A decoder layer's attention inputs in one call: q|k|v = norm(x) @ W.T (the input norm in w), then in place the
 * first `groups` vectors of `head_dim` values of each token's row (the query and key heads) normalised by their
 * scale rows and rotated by cos and sin (tokens, head_dim); the value heads stay as projected. out is
 * (tokens, w->rows). 0 on success, 1 when a buffer cannot be allocated. */
int attention_inputs(const struct block_weights *w, const float *x, int64_t tokens, const float *head_scale,
                     int64_t groups, int64_t head_dim, float eps, const float *cos, const float *sin, float *out,
                     int64_t threads) {
    if (project(w, x, tokens, out, threads)) return 1;
    return normalise_vectors(out, tokens, w->rows, head_scale, groups, head_dim, eps, NULL, cos, sin, out, w->rows);
}

/* What follows a decoder layer's attention, as `struct layer_tail` describes it, in Gemma's order:
 * h = x + post_attention_norm(attended @ O.T), then out = h + post_feedforward_norm(down(gelu(gate) * up)) with
 * gate|up = pre_feedforward_norm(h) @ GU.T (that norm is in gate_up's weights, the GELU in down's). */
struct layer_tail {
    const struct block_weights *o, *gate_up, *down;
    const float *post_attention_scale, *post_feedforward_scale;
    float post_attention_eps, post_feedforward_eps;
};

/* One call for it: attended (tokens, o->cols), x and out (tokens, o->rows). 0 on success, 1 when a buffer cannot
 * be allocated. */
int attention_outputs(const struct layer_tail *l, const float *attended, const float *x, int64_t tokens, float *out,
                      int64_t threads) {
    int64_t hidden = l->o->rows;
    float *projected = malloc((size_t)(tokens * hidden) * sizeof(float));
    float *h = malloc((size_t)(tokens * hidden) * sizeof(float));
    float *gate_up = malloc((size_t)(tokens * l->gate_up->rows) * sizeof(float));
    int failed = projected == NULL || h == NULL || gate_up == NULL;
    failed = failed || project(l->o, attended, tokens, projected, threads);
    failed = failed || normalise_vectors(projected, tokens, hidden, l->post_attention_scale, 1, hidden,
                                         l->post_attention_eps, x, NULL, NULL, h, hidden);
    failed = failed || project(l->gate_up, h, tokens, gate_up, threads);
    failed = failed || project(l->down, gate_up, tokens, projected, threads);
    failed = failed || normalise_vectors(projected, tokens, hidden, l->post_feedforward_scale, 1, hidden,
                                         l->post_feedforward_eps, h, NULL, NULL, out, hidden);
    free(projected);
    free(h);
    free(gate_up);
    return failed;
}
