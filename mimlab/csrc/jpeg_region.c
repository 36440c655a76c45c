/*
 * Decode one region of a JPEG with libjpeg-turbo, optionally at 1/2, 1/4 or 1/8 scale (DCT scaling).
 *
 * Only the work the region needs is done: rows above it are skipped (entropy-decoded, no IDCT or colour
 * conversion: jpeg_skip_scanlines), columns outside it are not inverse-transformed (jpeg_crop_scanline), and
 * decoding stops after its last row. Pixels equal a full decode's at the same positions (islow IDCT, fancy
 * upsampling, as cv2.imdecode and Pillow decode).
 *
 * decode_region(data, scale, y1, x1, y2, x2) -> (bytearray, rows, cols, dx, width)
 *   data: the encoded bytes; scale: 1, 2, 4 or 8; the box [y1, y2) x [x1, x2) is in the 1/scale image and is
 *   clamped to it (rows = y2 - y1, width = x2 - x1 after clamping). The bytearray holds rows x cols x 3 BGR uint8;
 *   the box's columns are [dx, dx + width) (the decoder widens the region to whole iMCU columns).
 * Raises ValueError with libjpeg's message on a corrupt or unsupported (e.g. CMYK) file.
 *
 * header(data) -> (height, width, orientation)
 *   The image size and the EXIF orientation tag (1 when absent) from the markers, without decoding. Raises
 *   ValueError for data that is not a JPEG.
 *
 * resample(src, dst, filter, pillow13): see resample.c.
 *
 * planar(src, dst, h, w, flip)
 *   Writes the C-contiguous (h, w, 3) uint8 image src into the (3, h, w) buffer dst, mirrored left-right when flip
 *   (PackInputs' HWC -> CHW copy; SSSE3 byte shuffles, 16 pixels at a time, where the CPU has them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <tmmintrin.h>
#define HAVE_X86 1
#endif

struct error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void error_exit(j_common_ptr cinfo) {
    struct error_mgr *err = (struct error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

static void output_message(j_common_ptr cinfo) { (void)cinfo; } /* warnings (e.g. truncated data) stay silent */

static unsigned read16(const unsigned char *p, int little) {
    return little ? (unsigned)(p[0] | (p[1] << 8)) : (unsigned)((p[0] << 8) | p[1]);
}

static unsigned read32(const unsigned char *p, int little) {
    return little ? ((unsigned)p[0] | ((unsigned)p[1] << 8) | ((unsigned)p[2] << 16) | ((unsigned)p[3] << 24))
                  : (((unsigned)p[0] << 24) | ((unsigned)p[1] << 16) | ((unsigned)p[2] << 8) | (unsigned)p[3]);
}

/* The orientation tag (0x0112) of IFD0 in an APP1 "Exif" marker; 1 when absent or malformed. */
static int exif_orientation(const unsigned char *d, unsigned n) {
    if (n < 14 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    const unsigned char *t = d + 6; /* the TIFF header */
    unsigned len = n - 6;
    int little;
    if (t[0] == 'I' && t[1] == 'I') little = 1;
    else if (t[0] == 'M' && t[1] == 'M') little = 0;
    else return 1;
    unsigned ifd = read32(t + 4, little);
    if (ifd > len || len - ifd < 2) return 1;
    unsigned count = read16(t + ifd, little);
    for (unsigned i = 0; i < count; i++) {
        unsigned e = ifd + 2 + 12 * i;
        if (e > len || len - e < 12) return 1;
        if (read16(t + e, little) == 0x0112) {
            unsigned v = read16(t + e + 8, little); /* type SHORT: the value sits in the first two bytes */
            return (v >= 1 && v <= 8) ? (int)v : 1;
        }
    }
    return 1;
}

static PyObject *header(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    struct jpeg_decompress_struct cinfo;
    struct error_mgr err;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = error_exit;
    err.pub.output_message = output_message;
    err.message[0] = '\0';
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "libjpeg: %s", err.message);
        return NULL;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)view.buf, (unsigned long)view.len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != NULL; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            orientation = exif_orientation(m->data, m->data_length);
            break;
        }
    }
    int height = (int)cinfo.image_height, width = (int)cinfo.image_width;
    jpeg_destroy_decompress(&cinfo);
    PyBuffer_Release(&view);
    return Py_BuildValue("(iii)", height, width, orientation);
}

static PyObject *decode_region(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    int scale, y1, x1, y2, x2;
    if (!PyArg_ParseTuple(args, "y*iiiii", &view, &scale, &y1, &x1, &y2, &x2)) return NULL;
    if (scale != 1 && scale != 2 && scale != 4 && scale != 8) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "scale must be 1, 2, 4 or 8, got %d", scale);
        return NULL;
    }

    struct jpeg_decompress_struct cinfo;
    struct error_mgr err;
    PyObject *volatile out = NULL;
    PyThreadState *volatile released = NULL;
    volatile int rows = 0, cols = 0, dx = 0;

    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = error_exit;
    err.pub.output_message = output_message;
    err.message[0] = '\0';
    if (setjmp(err.jump)) {
        if (released) PyEval_RestoreThread(released);
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&view);
        Py_XDECREF(out);
        PyErr_Format(PyExc_ValueError, "libjpeg: %s", err.message);
        return NULL;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)view.buf, (unsigned long)view.len);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)scale;
    cinfo.out_color_space = JCS_EXT_BGR;
    jpeg_start_decompress(&cinfo);

    int height = (int)cinfo.output_height, width = (int)cinfo.output_width;
    if (y1 < 0) y1 = 0;
    if (x1 < 0) x1 = 0;
    if (y2 > height) y2 = height;
    if (x2 > width) x2 = width;
    if (y1 >= y2 || x1 >= x2) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "empty region [%d, %d) x [%d, %d) in a %d x %d image", y1, y2, x1, x2,
                     height, width);
        return NULL;
    }
    /* one pixel of margin on the left and two on the right: libjpeg upsamples chroma at a cropped region's edges
       as at the image's edges, so the box's own edge columns need their neighbours inside the region */
    int cx1 = x1 > 0 ? x1 - 1 : 0, cx2 = x2 + 2 < width ? x2 + 2 : width;
    JDIMENSION xoffset = (JDIMENSION)cx1, crop_width = (JDIMENSION)(cx2 - cx1);
    if (xoffset > 0 || crop_width < (JDIMENSION)width) jpeg_crop_scanline(&cinfo, &xoffset, &crop_width);
    rows = y2 - y1;
    cols = (int)cinfo.output_width;
    dx = x1 - (int)xoffset;
    out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)rows * cols * 3);
    if (out == NULL) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyByteArray_AS_STRING(out);
    size_t stride = (size_t)cols * 3;

    released = PyEval_SaveThread();
    if (y1 > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)y1);
    while ((int)cinfo.output_scanline < y2) {
        JSAMPROW row = dst + (size_t)((int)cinfo.output_scanline - y1) * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_abort_decompress(&cinfo);
    PyEval_RestoreThread(released);
    released = NULL;

    jpeg_destroy_decompress(&cinfo);
    PyBuffer_Release(&view);
    return Py_BuildValue("(Niiii)", out, rows, cols, dx, x2 - x1);
}

/* one row of 3-channel pixels to three planes, px(x) = row[3 * (flip ? w - 1 - x : x)] */
static void planar_row_scalar(const unsigned char *row, unsigned char *o0, unsigned char *o1, unsigned char *o2,
                              int x0, int w, int flip) {
    for (int x = x0; x < w; x++) {
        const unsigned char *px = row + (size_t)3 * (flip ? w - 1 - x : x);
        o0[x] = px[0];
        o1[x] = px[1];
        o2[x] = px[2];
    }
}

#ifdef HAVE_X86
/* 16 pixels (48 bytes in 3 vectors) -> 16 bytes of each channel: each output gathers its bytes from the three
   inputs with one shuffle each (index -1 writes 0) and ORs them */
__attribute__((target("ssse3"))) static void planar_rows_ssse3(const unsigned char *src, unsigned char *dst, int h,
                                                                  int w, int flip) {
    const __m128i a0 = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i b0 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1);
    const __m128i c0 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13);
    const __m128i a1 = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i b1 = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1);
    const __m128i c1 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14);
    const __m128i a2 = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i b2 = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1);
    const __m128i c2 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15);
    const __m128i rev = _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    size_t plane = (size_t)h * w;
    for (int y = 0; y < h; y++) {
        const unsigned char *row = src + (size_t)y * w * 3;
        unsigned char *o0 = dst + (size_t)y * w, *o1 = o0 + plane, *o2 = o1 + plane;
        int x = 0;
        for (; x + 16 <= w; x += 16) {
            /* output pixels [x, x + 16) come from source pixels [s, s + 16), in reverse order when flipped */
            const unsigned char *p = row + (size_t)3 * (flip ? w - 16 - x : x);
            __m128i va = _mm_loadu_si128((const __m128i *)p);
            __m128i vb = _mm_loadu_si128((const __m128i *)(p + 16));
            __m128i vc = _mm_loadu_si128((const __m128i *)(p + 32));
            __m128i r0 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(va, a0), _mm_shuffle_epi8(vb, b0)),
                                      _mm_shuffle_epi8(vc, c0));
            __m128i r1 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(va, a1), _mm_shuffle_epi8(vb, b1)),
                                      _mm_shuffle_epi8(vc, c1));
            __m128i r2 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(va, a2), _mm_shuffle_epi8(vb, b2)),
                                      _mm_shuffle_epi8(vc, c2));
            if (flip) {
                r0 = _mm_shuffle_epi8(r0, rev);
                r1 = _mm_shuffle_epi8(r1, rev);
                r2 = _mm_shuffle_epi8(r2, rev);
            }
            _mm_storeu_si128((__m128i *)(o0 + x), r0);
            _mm_storeu_si128((__m128i *)(o1 + x), r1);
            _mm_storeu_si128((__m128i *)(o2 + x), r2);
        }
        planar_row_scalar(row, o0, o1, o2, x, w, flip);
    }
}
#endif

static PyObject *planar(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer src, dst;
    int h, w, flip;
    if (!PyArg_ParseTuple(args, "y*w*iip", &src, &dst, &h, &w, &flip)) return NULL;
    if (h < 0 || w < 0 || src.len != (Py_ssize_t)h * w * 3 || dst.len != src.len) {
        PyErr_Format(PyExc_ValueError, "planar: %zd and %zd bytes for a %d x %d x 3 image", src.len, dst.len, h, w);
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)src.buf;
    unsigned char *d = (unsigned char *)dst.buf;
    Py_BEGIN_ALLOW_THREADS
#ifdef HAVE_X86
    if (__builtin_cpu_supports("ssse3")) {
        planar_rows_ssse3(s, d, h, w, flip);
    } else
#endif
    {
        size_t plane = (size_t)h * w;
        for (int y = 0; y < h; y++)
            planar_row_scalar(s + (size_t)y * w * 3, d + (size_t)y * w, d + plane + (size_t)y * w,
                              d + 2 * plane + (size_t)y * w, 0, w, flip);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

PyObject *mimlab_resample(PyObject *self, PyObject *args);            /* resample.c */
PyObject *mimlab_resample_kernels(PyObject *self, PyObject *unused); /* resample.c */

static PyMethodDef methods[] = {
    {"decode_region", decode_region, METH_VARARGS,
     "decode_region(data, scale, y1, x1, y2, x2) -> (bytearray, rows, cols, dx, width): BGR uint8 pixels of a "
     "JPEG region at 1/scale."},
    {"planar", planar, METH_VARARGS,
     "planar(src, dst, h, w, flip): the (h, w, 3) uint8 image src written into dst as (3, h, w), mirrored "
     "left-right when flip."},
    {"resample", mimlab_resample, METH_VARARGS,
     "resample(src, dst, filter, pillow13): the (H, W, 3) uint8 image src resized into the (h, w, 3) buffer dst "
     "with Pillow's antialiased filter (0 bilinear, 1 bicubic) and pass order (pillow13: Pillow >= 13's), equal to "
     "PIL.Image.resize's pixels."},
    {"resample_kernels", mimlab_resample_kernels, METH_NOARGS,
     "resample_kernels() -> 'avx512', 'avx2' or 'portable': the kernels resample uses (chosen from the CPU once, "
     "capped by the MIMLAB_RESAMPLE_SIMD environment variable)."},
    {"header", header, METH_VARARGS,
     "header(data) -> (height, width, orientation): the size and EXIF orientation (1 when absent) of a JPEG."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpeg",
                                    "Region decoding of JPEGs (libjpeg-turbo) and Pillow-exact resampling.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__jpeg(void) { return PyModule_Create(&module); }
