/*
 * Antialiased resizing of 3-channel uint8 images with Pillow's arithmetic, so that the pixels equal
 * PIL.Image.resize(size, BICUBIC or BILINEAR) of the same image, bit for bit.
 *
 * The arithmetic is Pillow's (src/libImaging/Resample.c, 8 bits per channel): the filter's taps for each output
 * position are computed in double precision, normalised to sum 1, rounded to 22-bit fixed point; each pass sums
 * integer products plus half a unit and clamps the shifted sum to [0, 255]. The horizontal pass runs first, over
 * only the rows the vertical pass reads, except where Pillow >= 13 runs the vertical one first (the height loses
 * more than twice as many pixels as the width). Integer sums do not depend on their order, so the passes are free
 * to be organised for vector units: both are weighted sums of whole lines (contiguous runs of bytes; the horizontal
 * pass filters the image's transpose), written out for AVX-512 and left to the compiler's vectoriser elsewhere.
 *
 * resample(src, dst, filter, pillow13)
 *   src: (H, W, 3) uint8 buffer (any row stride, 3-byte pixels); dst: writable C-contiguous (h, w, 3) uint8;
 *   filter: 0 bilinear, 1 bicubic (Pillow's BILINEAR / BICUBIC, a = -0.5); pillow13: the pass order of Pillow >= 13
 *   (vertical first when the height loses more than twice as many pixels as the width), else horizontal first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIXED_BITS 22 /* 32 bits - 8 for the pixel - 2 for filters whose partial sums leave [0, 1] */

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__)
/* the portable kernels also compiled for AVX2 machines, picked at load time (GCC's function multi-versioning) */
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86_SIMD 1
#endif

/* The kernels in use, chosen once from the CPU: 2 AVX-512 (F + BW), 1 AVX2, 0 portable C. MIMLAB_RESAMPLE_SIMD
   (avx512, avx2 or none) caps the choice, so that tests can run every kernel on one machine. */
static int simd_level = -1;

static void choose_simd_level(void) {
    int level = 0;
#ifdef HAVE_X86_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) level = 1;
    if (level && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) level = 2;
#endif
    const char *cap = getenv("MIMLAB_RESAMPLE_SIMD");
    if (cap && strcmp(cap, "none") == 0) level = 0;
    if (cap && strcmp(cap, "avx2") == 0 && level > 1) level = 1;
    simd_level = level;
}

typedef struct {
    int taps;     /* slots per output position */
    int *first;   /* first input index read by each output */
    int *count;   /* inputs read by each output */
    int32_t *w;   /* fixed-point weights, taps per output */
} Taps;

static double bicubic(double x) { /* Keys' cubic convolution with a = -0.5 */
    if (x < 0.0) x = -x;
    if (x < 1.0) return (1.5 * x - 2.5) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5;
    return 0.0;
}

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void free_taps(Taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
    t->first = t->count = NULL;
    t->w = NULL;
}

/* The taps mapping n_in samples onto n_out (the whole axis); 0 on success, -1 when out of memory. */
static int make_taps(Taps *t, int n_in, int n_out, int cubic) {
    double radius = cubic ? 2.0 : 1.0;
    double step = (double)n_in / n_out;       /* input samples per output sample */
    double widen = step < 1.0 ? 1.0 : step;   /* the filter stretches when shrinking (antialiasing) */
    double reach = radius * widen, inv = 1.0 / widen;
    t->taps = (int)ceil(reach) * 2 + 1;
    t->first = malloc(sizeof(int) * n_out);
    t->count = malloc(sizeof(int) * n_out);
    t->w = calloc((size_t)n_out * t->taps, sizeof(int32_t));
    double *raw = malloc(sizeof(double) * t->taps);
    if (!t->first || !t->count || !t->w || !raw) {
        free(raw);
        free_taps(t);
        return -1;
    }
    for (int o = 0; o < n_out; o++) {
        double centre = (o + 0.5) * step;
        int lo = (int)(centre - reach + 0.5), hi = (int)(centre + reach + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        int n = hi - lo;
        double total = 0.0;
        for (int j = 0; j < n; j++) {
            double x = ((double)(j + lo) - centre + 0.5) * inv;
            raw[j] = cubic ? bicubic(x) : triangle(x);
            total += raw[j];
        }
        int32_t *w = t->w + (size_t)o * t->taps;
        for (int j = 0; j < n; j++) {
            double v = total != 0.0 ? raw[j] / total : raw[j];
            double f = v * (double)(1 << FIXED_BITS);
            w[j] = (int32_t)(v < 0 ? f - 0.5 : f + 0.5); /* rounds half away from zero */
        }
        t->first[o] = lo;
        t->count[o] = n;
    }
    free(raw);
    return 0;
}

/* dst[i] = clamp((2^21 + sum_j w[j] * src[j * stride + i]) >> 22, 0, 255) for i < n: a weighted sum of k lines,
   in blocks of BLOCK accumulators (registers, when the block is whole) */
enum { BLOCK = 64 };

static inline void mix_block(uint8_t *dst, const uint8_t *src, ptrdiff_t stride, const int32_t *w, int k, int m) {
    int32_t acc[BLOCK];
    for (int i = 0; i < m; i++) acc[i] = 1 << (FIXED_BITS - 1);
    for (int j = 0; j < k; j++) {
        const uint8_t *s = src + j * stride;
        int32_t wj = w[j];
        for (int i = 0; i < m; i++) acc[i] += (int32_t)s[i] * wj;
    }
    for (int i = 0; i < m; i++) {
        int32_t v = acc[i] >> FIXED_BITS;
        dst[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

VECTOR_CLONES static void mix_lines_auto(uint8_t *dst, const uint8_t *src, ptrdiff_t stride, const int32_t *w,
                                         int k, int n) {
    int i0 = 0;
    for (; i0 + BLOCK <= n; i0 += BLOCK) mix_block(dst + i0, src + i0, stride, w, k, BLOCK);
    if (i0 < n) mix_block(dst + i0, src + i0, stride, w, k, n - i0);
}

#ifdef HAVE_X86_SIMD
/* The same with AVX-512 written out (~1.6x the compiler's version of mix_lines_auto, whose byte -> int32 widening
   and clamping take several shuffles): 64 accumulators in 4 registers, 16 bytes widened by one instruction. */
#define MIX16(acc, off) \
    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(s + off))), wj))
#define STORE16(acc, off) \
    _mm_storeu_si128((__m128i *)(d + off), \
                     _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(acc, FIXED_BITS), zero)))

__attribute__((target("avx512f,avx512bw"))) static void mix_lines_avx512(uint8_t *dst, const uint8_t *src,
                                                                          ptrdiff_t stride, const int32_t *w, int k,
                                                                          int n) {
    const __m512i half = _mm512_set1_epi32(1 << (FIXED_BITS - 1)), zero = _mm512_setzero_si512();
    int i0 = 0;
    for (; i0 + BLOCK <= n; i0 += BLOCK) {
        __m512i a0 = half, a1 = half, a2 = half, a3 = half;
        const uint8_t *s = src + i0;
        for (int j = 0; j < k; j++, s += stride) {
            __m512i wj = _mm512_set1_epi32(w[j]);
            MIX16(a0, 0);
            MIX16(a1, 16);
            MIX16(a2, 32);
            MIX16(a3, 48);
        }
        uint8_t *d = dst + i0; /* (v >> 22) clamped: max with 0, then vpmovusdb saturates at 255 */
        STORE16(a0, 0);
        STORE16(a1, 16);
        STORE16(a2, 32);
        STORE16(a3, 48);
    }
    if (i0 < n) mix_block(dst + i0, src + i0, stride, w, k, n - i0);
}

/* AVX2: 32 accumulators in 4 registers, 8 bytes widened at a time; the two saturating packs clamp to [0, 255] and
   leave 4-byte groups in the order 0 2 4 6 1 3 5 7, which one permutation undoes. */
#define MIX8(acc, off) \
    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(s + off))), wj))

__attribute__((target("avx2"))) static void mix_lines_avx2(uint8_t *dst, const uint8_t *src, ptrdiff_t stride,
                                                            const int32_t *w, int k, int n) {
    const __m256i half = _mm256_set1_epi32(1 << (FIXED_BITS - 1));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int i0 = 0;
    for (; i0 + 32 <= n; i0 += 32) {
        __m256i a0 = half, a1 = half, a2 = half, a3 = half;
        const uint8_t *s = src + i0;
        for (int j = 0; j < k; j++, s += stride) {
            __m256i wj = _mm256_set1_epi32(w[j]);
            MIX8(a0, 0);
            MIX8(a1, 8);
            MIX8(a2, 16);
            MIX8(a3, 24);
        }
        __m256i p01 = _mm256_packs_epi32(_mm256_srai_epi32(a0, FIXED_BITS), _mm256_srai_epi32(a1, FIXED_BITS));
        __m256i p23 = _mm256_packs_epi32(_mm256_srai_epi32(a2, FIXED_BITS), _mm256_srai_epi32(a3, FIXED_BITS));
        __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), order);
        _mm256_storeu_si256((__m256i *)(dst + i0), bytes);
    }
    if (i0 < n) mix_block(dst + i0, src + i0, stride, w, k, n - i0);
}
#endif

static void mix_lines(uint8_t *dst, const uint8_t *src, ptrdiff_t stride, const int32_t *w, int k, int n) {
#ifdef HAVE_X86_SIMD
    if (simd_level == 2) {
        mix_lines_avx512(dst, src, stride, w, k, n);
        return;
    }
    if (simd_level == 1) {
        mix_lines_avx2(dst, src, stride, w, k, n);
        return;
    }
#endif
    mix_lines_auto(dst, src, stride, w, k, n);
}

/* dst (cols, rows, 3), contiguous <- the transpose of src (rows, cols, 3) whose rows are row_stride bytes apart.
   Pixels move as 4-byte words (the 4th byte is overwritten by the next pixel's store), except in the last row,
   whose words could reach past either buffer. */
static void transpose3_auto(uint8_t *dst, const uint8_t *src, int rows, int cols, ptrdiff_t row_stride) {
    enum { TILE = 64 };
    for (int r0 = 0; r0 < rows; r0 += TILE) {
        int r1 = r0 + TILE < rows ? r0 + TILE : rows;
        int last = r1 == rows;
        for (int c = 0; c < cols; c++) {
            const uint8_t *s = src + (size_t)c * 3;
            uint8_t *d = dst + ((size_t)c * rows) * 3;
            int r = r0;
            for (; r < r1 - last; r++) {
                uint32_t v;
                memcpy(&v, s + r * row_stride, 4);
                memcpy(d + 3 * r, &v, 4);
            }
            if (last) memcpy(d + 3 * r, s + r * row_stride, 3);
        }
    }
}

#ifdef HAVE_X86_SIMD
/* The same, 16 rows of one column at a time: one gather of 16 4-byte words, the 4th bytes squeezed out (a byte
   shuffle within each 128-bit lane, then a word permutation across them), one 48-byte store. The last column (whose
   words could reach past src) and the rows after the last multiple of 16 go through transpose3_auto's loop. */
__attribute__((target("avx512f,avx512bw"))) static void transpose3_avx512(uint8_t *dst, const uint8_t *src,
                                                                           int rows, int cols,
                                                                           ptrdiff_t row_stride) {
    const __m512i squeeze = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1));
    const __m512i gather_words = _mm512_setr_epi32(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 15, 15, 15);
    const __mmask64 first48 = 0x0000FFFFFFFFFFFFull;
    int rows16 = rows & ~15;
    if (rows16 && cols > 1 && (ptrdiff_t)rows16 * row_stride < INT32_MAX) {
        __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32((int)row_stride));
        for (int r0 = 0; r0 < rows16; r0 += 16) {
            const uint8_t *base = src + r0 * row_stride;
            for (int c = 0; c < cols - 1; c++) {
                __m512i v = _mm512_i32gather_epi32(offsets, (const void *)(base + (size_t)c * 3), 1);
                v = _mm512_permutexvar_epi32(gather_words, _mm512_shuffle_epi8(v, squeeze));
                _mm512_mask_storeu_epi8(dst + ((size_t)c * rows + r0) * 3, first48, v);
            }
        }
        for (int r = 0; r < rows16; r++) /* the last column */
            memcpy(dst + ((size_t)(cols - 1) * rows + r) * 3, src + r * row_stride + (size_t)(cols - 1) * 3, 3);
    } else {
        rows16 = 0;
    }
    if (rows16 < rows) { /* the remaining rows */
        for (int c = 0; c < cols; c++)
            for (int r = rows16; r < rows; r++)
                memcpy(dst + ((size_t)c * rows + r) * 3, src + r * row_stride + (size_t)c * 3, 3);
    }
}
/* AVX2: 8 rows of one column at a time (a gather of 8 words, squeezed to 24 bytes) */
__attribute__((target("avx2"))) static void transpose3_avx2(uint8_t *dst, const uint8_t *src, int rows, int cols,
                                                             ptrdiff_t row_stride) {
    const __m256i squeeze = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6,
                                             8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const __m256i gather_words = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
    int rows8 = rows & ~7;
    if (rows8 && cols > 1 && (ptrdiff_t)rows8 * row_stride < INT32_MAX) {
        __m256i offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                             _mm256_set1_epi32((int)row_stride));
        for (int r0 = 0; r0 < rows8; r0 += 8) {
            const uint8_t *base = src + r0 * row_stride;
            for (int c = 0; c < cols - 1; c++) {
                __m256i v = _mm256_i32gather_epi32((const int *)(base + (size_t)c * 3), offsets, 1);
                v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, squeeze), gather_words);
                uint8_t *d = dst + ((size_t)c * rows + r0) * 3;
                _mm_storeu_si128((__m128i *)d, _mm256_castsi256_si128(v));
                _mm_storel_epi64((__m128i *)(d + 16), _mm256_extracti128_si256(v, 1));
            }
        }
        for (int r = 0; r < rows8; r++) /* the last column */
            memcpy(dst + ((size_t)(cols - 1) * rows + r) * 3, src + r * row_stride + (size_t)(cols - 1) * 3, 3);
    } else {
        rows8 = 0;
    }
    for (int c = 0; c < cols; c++) /* the remaining rows */
        for (int r = rows8; r < rows; r++)
            memcpy(dst + ((size_t)c * rows + r) * 3, src + r * row_stride + (size_t)c * 3, 3);
}
#endif

static void transpose3(uint8_t *dst, const uint8_t *src, int rows, int cols, ptrdiff_t row_stride) {
#ifdef HAVE_X86_SIMD
    if (simd_level == 2) {
        transpose3_avx512(dst, src, rows, cols, row_stride);
        return;
    }
    if (simd_level == 1) {
        transpose3_avx2(dst, src, rows, cols, row_stride);
        return;
    }
#endif
    transpose3_auto(dst, src, rows, cols, row_stride);
}

/* Scratch memory kept by each thread between calls: fresh large blocks would come from mmap and cost a page fault
   per 4 KiB on every image. Up to SCRATCH_KEPT bytes are kept (an ImageNet-sized image needs ~1 MB) until the thread
   ends; a larger need (a huge image) gets a block of its own, freed after the call (*own set). */
#define SCRATCH_KEPT ((size_t)32 << 20)
static _Thread_local uint8_t *scratch;
static _Thread_local size_t scratch_size;

static uint8_t *get_scratch(size_t size, uint8_t **own) {
    *own = NULL;
    if (size > SCRATCH_KEPT) return *own = malloc(size);
    if (size > scratch_size) {
        free(scratch);
        scratch = malloc(size);
        scratch_size = scratch ? size : 0;
    }
    return scratch;
}

/* Vertical pass: dst row y (of h) <- the weighted sum of src rows tv.first[y] - y0 ... (row strides in bytes) */
static void vertical_pass(uint8_t *dst, ptrdiff_t dst_stride, const uint8_t *src, ptrdiff_t src_stride,
                          const Taps *tv, int y0, int h, int row_bytes) {
    for (int y = 0; y < h; y++)
        mix_lines(dst + y * dst_stride, src + (tv->first[y] - y0) * src_stride, src_stride,
                  tv->w + (size_t)y * tv->taps, tv->count[y], row_bytes);
}

/* Horizontal pass over R rows of W pixels into the contiguous (R, w, 3) dst, on the transpose: each output column
   is a weighted sum of input columns. work: 3 * R * (W + w) bytes. */
static void horizontal_pass(uint8_t *dst, const uint8_t *src, ptrdiff_t src_stride, int R, int W, const Taps *th,
                            int w, uint8_t *work) {
    size_t line = (size_t)R * 3;
    uint8_t *cols = work, *cols_out = work + (size_t)W * line;
    transpose3(cols, src, R, W, src_stride);
    for (int x = 0; x < w; x++)
        mix_lines(cols_out + x * line, cols + th->first[x] * line, (ptrdiff_t)line, th->w + (size_t)x * th->taps,
                  th->count[x], (int)line);
    transpose3(dst, cols_out, w, R, (ptrdiff_t)line);
}

/* The resize proper, run without the GIL; 0 on success, -1 when out of memory. pillow13: the pass order of
   Pillow >= 13, which runs the vertical pass first when the height loses more than twice as many pixels as the
   width; older Pillows always run the horizontal pass first. */
static int resample_image(const uint8_t *src, int H, int W, ptrdiff_t row_stride, uint8_t *dst, int h, int w,
                          int cubic, int pillow13) {
    if (simd_level < 0) choose_simd_level();
    int need_h = w != W, need_v = h != H;
    ptrdiff_t out_stride = (ptrdiff_t)w * 3;
    if (!need_h && !need_v) {
        for (int y = 0; y < h; y++) memcpy(dst + y * out_stride, src + y * row_stride, (size_t)w * 3);
        return 0;
    }
    Taps tv = {0}, th = {0};
    uint8_t *own = NULL; /* scratch too large to keep, freed at the end */
    int status = -1;
    if ((need_v && make_taps(&tv, H, h, cubic)) || (need_h && make_taps(&th, W, w, cubic))) goto done;
    int vertical_first = pillow13 && H - h > 0 && H - h > 2 * (W - w);
    if (!need_h) {
        vertical_pass(dst, out_stride, src, row_stride, &tv, 0, h, w * 3);
    } else if (!need_v) {
        uint8_t *work = get_scratch((size_t)3 * H * (W + w), &own);
        if (!work) goto done;
        horizontal_pass(dst, src, row_stride, H, W, &th, w, work);
    } else if (vertical_first) { /* (H, W) -> (h, W) -> (h, w) */
        size_t mid_size = (size_t)3 * h * W;
        uint8_t *mid = get_scratch(mid_size + (size_t)3 * h * (W + w), &own);
        if (!mid) goto done;
        vertical_pass(mid, (ptrdiff_t)W * 3, src, row_stride, &tv, 0, h, W * 3);
        horizontal_pass(dst, mid, (ptrdiff_t)W * 3, h, W, &th, w, mid + mid_size);
    } else { /* the rows the vertical pass reads, (R, W) -> (R, w) -> (h, w) */
        int y0 = tv.first[0], R = tv.first[h - 1] + tv.count[h - 1] - y0;
        size_t mid_size = (size_t)3 * R * w;
        uint8_t *mid = get_scratch(mid_size + (size_t)3 * R * (W + w), &own);
        if (!mid) goto done;
        horizontal_pass(mid, src + y0 * row_stride, row_stride, R, W, &th, w, mid + mid_size);
        vertical_pass(dst, out_stride, mid, (ptrdiff_t)w * 3, &tv, y0, h, w * 3);
    }
    status = 0;
done:
    free(own);
    free_taps(&tv);
    free_taps(&th);
    return status;
}

PyObject *mimlab_resample(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *src_obj, *dst_obj;
    int filter, pillow13;
    if (!PyArg_ParseTuple(args, "OOip", &src_obj, &dst_obj, &filter, &pillow13)) return NULL;
    Py_buffer src, dst;
    if (PyObject_GetBuffer(src_obj, &src, PyBUF_STRIDED_RO) < 0) return NULL;
    if (PyObject_GetBuffer(dst_obj, &dst, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_ND) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    if (filter != 0 && filter != 1) {
        PyErr_Format(PyExc_ValueError, "resample: filter must be 0 (bilinear) or 1 (bicubic), got %d", filter);
    } else if (src.ndim != 3 || src.itemsize != 1 || src.shape[2] != 3 || src.strides[2] != 1 ||
               src.strides[1] != 3 || src.strides[0] < 3 * src.shape[1] || src.shape[0] < 1 || src.shape[1] < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "resample: src must be a non-empty (H, W, 3) uint8 buffer with 3-byte pixels and rows apart");
    } else if (dst.ndim != 3 || dst.itemsize != 1 || dst.shape[2] != 3 || dst.shape[0] < 1 || dst.shape[1] < 1) {
        PyErr_SetString(PyExc_ValueError, "resample: dst must be a non-empty C-contiguous (h, w, 3) uint8 buffer");
    } else if (src.shape[0] > INT32_MAX / 4 || src.shape[1] > INT32_MAX / 4 || dst.shape[0] > INT32_MAX / 4 ||
               dst.shape[1] > INT32_MAX / 4) {
        PyErr_SetString(PyExc_ValueError, "resample: image too large");
    } else {
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = resample_image((const uint8_t *)src.buf, (int)src.shape[0], (int)src.shape[1], src.strides[0],
                                (uint8_t *)dst.buf, (int)dst.shape[0], (int)dst.shape[1], filter, pillow13);
        Py_END_ALLOW_THREADS
        if (status)
            PyErr_NoMemory();
        else
            result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

/* resample_kernels() -> 'avx512', 'avx2' or 'portable': the kernels resample uses in this process. */
PyObject *mimlab_resample_kernels(PyObject *self, PyObject *unused) {
    static const char *names[] = {"portable", "avx2", "avx512"};
    if (simd_level < 0) choose_simd_level();
    return PyUnicode_FromString(names[simd_level]);
}
