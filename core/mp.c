/*
 * mp.c - the bounded msgpack pull reader and the msgpack writer.
 *
 * The reader works over untrusted bytes. Every function decodes the header
 * of the next object into a struct mp_head (mp_head_read), which checks,
 * before anything else uses them, that the header itself is complete, that a
 * str/bin/ext payload fits in the bytes left and that a container's element
 * count could fit in them (every element takes at least one byte). Readers
 * then look at the head and advance only on success, so on any error the
 * reader is left where it was.
 *
 * The writer is msgpack-c's packer with a write callback that appends to a
 * ck_buf and keeps the first error.
 */
#include "internal.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Reader                                                                   */
/* ------------------------------------------------------------------------ */

/* The decoded header of the next object. */
struct mp_head {
    ck_mp_kind kind;
    size_t hdr;  /* bytes of the header (type byte included) */
    size_t body; /* payload bytes after the header: str, bin, ext data; the
                    value bytes of a number are counted in hdr */
    uint64_t u;  /* UINT: the value; STR/BIN/EXT: the length; ARRAY/MAP: the
                    count; BOOL: 0 or 1 */
    int64_t i;   /* INT: the (negative) value */
    double f;    /* FLOAT */
    int8_t ext;  /* EXT: the type */
};

static uint64_t be_load(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t k = 0; k < n; k++)
        v = (v << 8) | p[k];
    return v;
}

/* Two's-complement reinterpretation of an n-byte big-endian signed value,
 * without implementation-defined conversions. */
static int64_t be_load_signed(const uint8_t *p, size_t n)
{
    uint64_t v = be_load(p, n);
    uint64_t sign = (uint64_t)1 << (n * 8 - 1);

    if ((v & sign) == 0)
        return (int64_t)v;
    /* v - 2^(8n), computed as -(2^(8n) - v) in a form that never overflows:
     * 2^(8n) - v = (~v & mask) + 1 with mask the low 8n bits. */
    uint64_t mask = n == 8 ? UINT64_MAX : (((uint64_t)1 << (n * 8)) - 1);
    uint64_t mag = (~v & mask) + 1; /* 1 .. 2^(8n-1) */
    if (mag == ((uint64_t)1 << 63))
        return INT64_MIN;
    return -(int64_t)mag;
}

static int8_t to_int8(uint8_t b)
{
    return b < 128 ? (int8_t)b : (int8_t)((int)b - 256);
}

/* Fill h->kind, h->hdr and, for a negative value, h->i; for a non-negative
 * one, h->u. `n` value bytes follow the type byte. */
static void head_int(struct mp_head *h, const uint8_t *p, size_t n, bool is_signed)
{
    h->hdr = 1 + n;
    if (!is_signed) {
        h->kind = CK_MP_UINT;
        h->u = be_load(p + 1, n);
        return;
    }
    int64_t v = be_load_signed(p + 1, n);
    if (v >= 0) {
        h->kind = CK_MP_UINT;
        h->u = (uint64_t)v;
    } else {
        h->kind = CK_MP_INT;
        h->i = v;
    }
}

/*
 * Decode the header of the next object without moving the reader.
 * `lenbytes` is the width of a length or count field that follows the type
 * byte (and, for ext, is followed by the type byte). CK_EFORMAT at the end
 * of the input, on 0xc1, or when the object cannot fit in the bytes left.
 */
static int mp_head_read(const ck_mp *r, struct mp_head *h)
{
    size_t left = ck_mp__left(r);
    const uint8_t *p = r->p;
    size_t lenbytes = 0;

    memset(h, 0, sizeof(*h));
    if (left == 0)
        return CK_EFORMAT;
    uint8_t t = p[0];

    /* Fixed-size forms whose value sits in the type byte. */
    if (t <= 0x7f) {
        h->kind = CK_MP_UINT;
        h->hdr = 1;
        h->u = t;
        return CK_OK;
    }
    if (t >= 0xe0) {
        h->kind = CK_MP_INT;
        h->hdr = 1;
        h->i = (int64_t)t - 256;
        return CK_OK;
    }
    if (t <= 0x8f || (t >= 0x90 && t <= 0x9f)) {
        h->kind = t <= 0x8f ? CK_MP_MAP : CK_MP_ARRAY;
        h->hdr = 1;
        h->u = t & 0x0f;
        goto count_check;
    }
    if (t >= 0xa0 && t <= 0xbf) {
        h->kind = CK_MP_STR;
        h->hdr = 1;
        h->u = t & 0x1f;
        goto body_check;
    }

    switch (t) {
    case 0xc0:
        h->kind = CK_MP_NIL;
        h->hdr = 1;
        return CK_OK;
    case 0xc2:
    case 0xc3:
        h->kind = CK_MP_BOOL;
        h->hdr = 1;
        h->u = t == 0xc3;
        return CK_OK;
    case 0xc4:
    case 0xc5:
    case 0xc6: /* bin 8/16/32 */
        h->kind = CK_MP_BIN;
        lenbytes = (size_t)1 << (t - 0xc4);
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9: /* ext 8/16/32 */
        h->kind = CK_MP_EXT;
        lenbytes = (size_t)1 << (t - 0xc7);
        break;
    case 0xca:
    case 0xcb: { /* float 32/64 */
        size_t n = t == 0xca ? 4 : 8;
        if (left < 1 + n)
            return CK_EFORMAT;
        h->kind = CK_MP_FLOAT;
        h->hdr = 1 + n;
        if (n == 4) {
            uint32_t bits = (uint32_t)be_load(p + 1, 4);
            float f;
            memcpy(&f, &bits, sizeof(f));
            h->f = (double)f;
        } else {
            uint64_t bits = be_load(p + 1, 8);
            memcpy(&h->f, &bits, sizeof(h->f));
        }
        return CK_OK;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: /* uint 8..64 */
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: { /* int 8..64 */
        bool is_signed = t >= 0xd0;
        size_t n = (size_t)1 << (t - (is_signed ? 0xd0 : 0xcc));
        if (left < 1 + n)
            return CK_EFORMAT;
        head_int(h, p, n, is_signed);
        return CK_OK;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext */
        if (left < 2)
            return CK_EFORMAT;
        h->kind = CK_MP_EXT;
        h->hdr = 2;
        h->u = (uint64_t)1 << (t - 0xd4);
        h->ext = to_int8(p[1]);
        goto body_check;
    case 0xd9:
    case 0xda:
    case 0xdb: /* str 8/16/32 */
        h->kind = CK_MP_STR;
        lenbytes = (size_t)1 << (t - 0xd9);
        break;
    case 0xdc:
    case 0xdd: /* array 16/32 */
        h->kind = CK_MP_ARRAY;
        lenbytes = (size_t)2 << (t - 0xdc);
        if (left < 1 + lenbytes)
            return CK_EFORMAT;
        h->hdr = 1 + lenbytes;
        h->u = be_load(p + 1, lenbytes);
        goto count_check;
    case 0xde:
    case 0xdf: /* map 16/32 */
        h->kind = CK_MP_MAP;
        lenbytes = (size_t)2 << (t - 0xde);
        if (left < 1 + lenbytes)
            return CK_EFORMAT;
        h->hdr = 1 + lenbytes;
        h->u = be_load(p + 1, lenbytes);
        goto count_check;
    default: /* 0xc1, never used */
        return CK_EFORMAT;
    }

    /* str, bin and ext with an explicit length field (ext: then its type). */
    h->hdr = 1 + lenbytes + (h->kind == CK_MP_EXT ? 1 : 0);
    if (left < h->hdr)
        return CK_EFORMAT;
    h->u = be_load(p + 1, lenbytes);
    if (h->kind == CK_MP_EXT)
        h->ext = to_int8(p[1 + lenbytes]);

body_check:
    /* The payload must be in the input. h->u <= UINT32_MAX here. */
    if (h->u > left - h->hdr)
        return CK_EFORMAT;
    h->body = (size_t)h->u;
    return CK_OK;

count_check:
    /* Each element takes at least one byte (a map entry two), so a count the
     * bytes left cannot hold is refused before anyone loops over it. The
     * count is <= UINT32_MAX, so 2 * count cannot overflow 64 bits. */
    if (h->u * (h->kind == CK_MP_MAP ? 2u : 1u) > (uint64_t)(left - h->hdr))
        return CK_EFORMAT;
    return CK_OK;
}

static void mp_advance(ck_mp *r, const struct mp_head *h)
{
    r->p += h->hdr + h->body;
}

/* The next object's head, required to be of `kind`. */
static int mp_expect(const ck_mp *r, struct mp_head *h, ck_mp_kind kind)
{
    CK_TRY(mp_head_read(r, h));
    return h->kind == kind ? CK_OK : CK_EFORMAT;
}

/* Unlike its name suggests this also validates the whole header: a
 * truncated object is reported as CK_EFORMAT here already. A non-negative
 * value in a signed encoding is CK_MP_UINT. */
int ck_mp__peek(const ck_mp *r, ck_mp_kind *out)
{
    struct mp_head h;

    CK_TRY(mp_head_read(r, &h));
    *out = h.kind;
    return CK_OK;
}

int ck_mp__nil(ck_mp *r)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_NIL));
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__bool(ck_mp *r, bool *out)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_BOOL));
    *out = h.u != 0;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__u64(ck_mp *r, uint64_t *out)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_UINT)); /* a negative value never fits */
    *out = h.u;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__i64(ck_mp *r, int64_t *out)
{
    struct mp_head h;

    CK_TRY(mp_head_read(r, &h));
    if (h.kind == CK_MP_INT) {
        *out = h.i;
    } else if (h.kind == CK_MP_UINT && h.u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)h.u;
    } else {
        return CK_EFORMAT;
    }
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__u32(ck_mp *r, uint32_t *out)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_UINT));
    if (h.u > UINT32_MAX)
        return CK_EFORMAT;
    *out = (uint32_t)h.u;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__f64(ck_mp *r, double *out)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_FLOAT));
    *out = h.f;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__str(ck_mp *r, const char **out, uint32_t *len)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_STR));
    *out = (const char *)(r->p + h.hdr);
    *len = (uint32_t)h.u;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__bin(ck_mp *r, const uint8_t **out, uint32_t *len)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_BIN));
    *out = r->p + h.hdr;
    *len = (uint32_t)h.u;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__array(ck_mp *r, uint32_t *count)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_ARRAY));
    *count = (uint32_t)h.u;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__map(ck_mp *r, uint32_t *count)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_MAP));
    *count = (uint32_t)h.u;
    mp_advance(r, &h);
    return CK_OK;
}

int ck_mp__ext(ck_mp *r, int8_t *type, const uint8_t **out, uint32_t *len)
{
    struct mp_head h;

    CK_TRY(mp_expect(r, &h, CK_MP_EXT));
    *type = h.ext;
    *out = r->p + h.hdr;
    *len = (uint32_t)h.u;
    mp_advance(r, &h);
    return CK_OK;
}

/*
 * ck_mp__skip - skip one whole object, containers included.
 *
 * Iterative, with one counter of objects still to skip per open container:
 * every step either consumes at least one input byte or closes a container
 * that an earlier step opened, so the cost is linear in the input whatever
 * its shape. Opening a container deeper than CK_MP_MAX_DEPTH (an empty one
 * included) is CK_EFORMAT. The reader moves only if the whole object is
 * well-formed.
 */
int ck_mp__skip(ck_mp *r)
{
    /* pending[d]: objects left to skip at nesting depth d. A map's count is
     * doubled (keys and values), hence 64 bits. */
    uint64_t pending[CK_MP_MAX_DEPTH + 1];
    size_t depth = 0;
    ck_mp cur = *r;
    struct mp_head h;

    pending[0] = 1;
    for (;;) {
        if (pending[depth] == 0) {
            if (depth == 0)
                break;
            depth--;
            continue;
        }
        pending[depth]--;
        CK_TRY(mp_head_read(&cur, &h));
        mp_advance(&cur, &h);
        if (h.kind == CK_MP_ARRAY || h.kind == CK_MP_MAP) {
            if (depth == CK_MP_MAX_DEPTH)
                return CK_EFORMAT;
            depth++;
            pending[depth] = h.kind == CK_MP_MAP ? 2 * h.u : h.u;
        }
    }
    *r = cur;
    return CK_OK;
}

bool ck_mp__str_eq(const char *s, uint32_t len, const char *key)
{
    size_t n = strlen(key);

    return n == len && (n == 0 || memcmp(s, key, n) == 0);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

/* msgpack-c's write callback: append to the writer's buffer. After the first
 * failure every write is refused, so the buffer never holds an encoding with
 * a hole in it; w->rc keeps the first error. */
static int mp_write_cb(void *data, const char *buf, size_t len)
{
    ck_mp_writer *w = data;
    int rc;

    if (w->rc != CK_OK)
        return -1;
    rc = ck_buf__append(w->out, buf, len);
    if (rc != CK_OK) {
        w->rc = rc;
        return -1;
    }
    return 0;
}

/* The packer keeps a pointer to `w`: do not move or copy `w` after this. */
void ck_mp_writer__init(ck_mp_writer *w, ck_buf *out)
{
    w->out = out;
    w->rc = CK_OK;
    msgpack_packer_init(&w->pk, w, mp_write_cb);
}

void ck_mp_writer__str(ck_mp_writer *w, const char *s, size_t len)
{
    if (w->rc != CK_OK)
        return;
    if (len > UINT32_MAX) {
        w->rc = CK_ELIMIT;
        return;
    }
    if (msgpack_pack_str(&w->pk, len) == 0)
        (void)msgpack_pack_str_body(&w->pk, s, len);
}

void ck_mp_writer__cstr(ck_mp_writer *w, const char *s)
{
    ck_mp_writer__str(w, s, strlen(s));
}

void ck_mp_writer__bin(ck_mp_writer *w, const void *p, size_t len)
{
    if (w->rc != CK_OK)
        return;
    if (len > UINT32_MAX) {
        w->rc = CK_ELIMIT;
        return;
    }
    if (msgpack_pack_bin(&w->pk, len) == 0)
        (void)msgpack_pack_bin_body(&w->pk, p, len);
}

/* The rest record their errors through the callback. */
void ck_mp_writer__u64(ck_mp_writer *w, uint64_t v)
{
    (void)msgpack_pack_uint64(&w->pk, v);
}

void ck_mp_writer__i64(ck_mp_writer *w, int64_t v)
{
    (void)msgpack_pack_int64(&w->pk, v);
}

void ck_mp_writer__map(ck_mp_writer *w, uint32_t n)
{
    (void)msgpack_pack_map(&w->pk, n);
}

void ck_mp_writer__array(ck_mp_writer *w, uint32_t n)
{
    (void)msgpack_pack_array(&w->pk, n);
}

void ck_mp_writer__bool(ck_mp_writer *w, bool v)
{
    (void)(v ? msgpack_pack_true(&w->pk) : msgpack_pack_false(&w->pk));
}
