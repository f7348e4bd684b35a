/* Q8_0 matrix products for CPU decoding: out = x @ W.T with W in blocks of 32 int8 weights and one fp16 scale.
 *
 * Why by hand: decoding reads every weight once per token, so its speed is memory bandwidth over weight bytes.
 * On x86 CPUs with AVX2 but no AVX-512, the int8/int4 weight-only kernels of PyTorch and torchao run far below
 * memory speed, and fbgemm's int8 has one activation scale per row, which Gemma's activation outliers break
 * (docs/real-gemma.md). The format is GGUF's Q8_0 (x = d * q, q in [-127, 127]), so weights that came from a
 * Q8_0 tensor of a GGUF are kept exactly.
 *
 * The activations are rounded to 8 bits in blocks of 32 too, each with its fp32 scale, so one block's dot product
 * is an exact int32 sum of 32 products (AVX2's maddubs on |w| and a with w's sign: |w|, |a| <= 127, so no pair of
 * products overflows int16), scaled once by both scales.
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

/* GELU, tanh approximation (Gemma's activation), times the up projection: the MLP's product before its down
 * projection. */
static void gelu_times(const float *gate, const float *up, int64_t cols, float *out) {
    for (int64_t j = 0; j < cols; j++) {
        float v = gate[j];
        out[j] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v))) * up[j];
    }
}

static void normalise(const float *v, const float *scale, int64_t cols, float eps, float *out) {
    double squares = 0.0;
    for (int64_t j = 0; j < cols; j++) squares += (double)v[j] * v[j];
    float inverse = (float)(1.0 / sqrt(squares / (double)cols + eps));
    for (int64_t j = 0; j < cols; j++) out[j] = v[j] * inverse * scale[j];
}

/* x (rows, cols) fp32 -> q (rows, cols) int8 and scales (rows, cols / 32) fp32; cols is a multiple of 32. */
static void quantize_rows(const float *x, int64_t rows, int64_t cols, int8_t *q, float *scales) {
    int64_t blocks = rows * (cols / BLOCK);
    for (int64_t i = 0; i < blocks; i++) {
        const float *v = x + i * BLOCK;
        float amax = 0.0f;
        for (int j = 0; j < BLOCK; j++) amax = fmaxf(amax, fabsf(v[j]));
        float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
        scales[i] = amax / 127.0f;
        for (int j = 0; j < BLOCK; j++) q[i * BLOCK + j] = (int8_t)lrintf(v[j] * inverse);
    }
}

/* acc + (weight scale * activation scale) * the 8 int32 partial sums of block b's 32 products. */
static inline __m256 add_block(const int8_t *w, const uint16_t *w_scales, const int8_t *a, const float *a_scales,
                               int64_t b, __m256 acc) {
    __m256i wq = _mm256_loadu_si256((const __m256i *)(w + b * BLOCK));
    __m256i aq = _mm256_loadu_si256((const __m256i *)(a + b * BLOCK));
    __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq));
    __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    return _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(w_scales[b]) * a_scales[b]), sums, acc);
}

static inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* out[m, n] for rows n in [start, end) and every token m; out is (tokens, w->rows). Tokens go four at a time
 * (a prompt's prefill), sharing each weight block's load, magnitude and scale. */
static void rows_times_tokens(const struct block_weights *w, const int8_t *acts, const float *act_scales,
                              float *out, int64_t tokens, int64_t start, int64_t end) {
    int64_t blocks = w->cols / BLOCK;
    for (int64_t n = start; n < end; n++) {
        const int8_t *wq = w->values + n * w->cols;
        const uint16_t *ws = w->scales + n * blocks;
        int64_t m = 0;
        for (; m + 4 <= tokens; m += 4) {
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int64_t b = 0; b < blocks; b++) {
                __m256i weights = _mm256_loadu_si256((const __m256i *)(wq + b * BLOCK));
                __m256i magnitude = _mm256_sign_epi8(weights, weights);
                float scale = _cvtsh_ss(ws[b]);
                for (int k = 0; k < 4; k++) {
                    const int8_t *aq = acts + (m + k) * w->cols + b * BLOCK;
                    __m256i a = _mm256_loadu_si256((const __m256i *)aq);
                    __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(a, weights));
                    __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
                    __m256 both = _mm256_set1_ps(scale * act_scales[(m + k) * blocks + b]);
                    acc[k] = _mm256_fmadd_ps(both, sums, acc[k]);
                }
            }
            for (int k = 0; k < 4; k++) out[(m + k) * w->rows + n] = horizontal_sum(acc[k]);
        }
        for (; m < tokens; m++) {
            const int8_t *aq = acts + m * w->cols;
            const float *as = act_scales + m * blocks;
            __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps(); /* two chains hide the FMA latency */
            int64_t b = 0;
            for (; b + 1 < blocks; b += 2) {
                _mm_prefetch((const char *)(wq + b * BLOCK + PREFETCH), _MM_HINT_T0);
                _mm_prefetch((const char *)(wq + b * BLOCK + PREFETCH + 64), _MM_HINT_T0);
                even = add_block(wq, ws, aq, as, b, even);
                odd = add_block(wq, ws, aq, as, b + 1, odd);
            }
            if (b < blocks) even = add_block(wq, ws, aq, as, b, even);
            out[m * w->rows + n] = horizontal_sum(_mm256_add_ps(even, odd));
        }
    }
}

/* out (tokens, rows) = x (tokens, cols) @ W.T, the rows split between `threads` threads. 0 on success, 1 when the
 * activations' buffer cannot be allocated. */
int block_linear(const struct block_weights *w, const float *x, int64_t tokens, float *out, int64_t threads) {
    int8_t *acts = malloc((size_t)(tokens * w->cols));
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

/* Gemma's RMSNorm, out = x / sqrt(mean(x^2) + eps) * scale (scale = 1 + its weight), in one call: a decode step
 * normalises a hundred small vectors, and PyTorch's CPU rms_norm is several ops each. Token t's `groups` vectors
 * of `cols` values start at x + t * x_stride (the heads of a fused projection's output, or one hidden state);
 * vector g uses scale row g; out is (tokens, groups, cols), contiguous. With `residual` (the same shape as out),
 * out = residual + the norm: Gemma's norm after a block and the residual add, one call. With cos and sin
 * (tokens, cols), each vector then gets token t's rotary embedding: the query and key norms and the rotary
 * embedding of a layer's heads, one call. 0 on success, 1 when the rotary's buffer cannot be allocated. */
int rms_norm(const float *x, int64_t tokens, int64_t x_stride, const float *scale, int64_t groups, int64_t cols,
             float eps, const float *residual, const float *cos, const float *sin, float *out) {
    int64_t half = cols / 2;
    float *normed = cos == NULL ? NULL : malloc((size_t)cols * sizeof(float));
    if (cos != NULL && normed == NULL) return 1;
    for (int64_t t = 0; t < tokens; t++) {
        for (int64_t g = 0; g < groups; g++) {
            int64_t at = (t * groups + g) * cols;
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
