/*
 * tcf.c - decoder of IAB TCF v2 TC strings ("Consent string and vendor list
 * formats v2", IAB Tech Lab), into a ck_tcf and into JSON.
 *
 * A TC string is segments of base64url text (no padding) joined by '.':
 * the core segment first, then optional segments that each start with a
 * 3-bit SegmentType (1 disclosed vendors, 2 allowed vendors, 3 publisher
 * TC), each at most once, in any order. Each segment is decoded from its
 * base64url text into a packed bit buffer and read by a bounded reader:
 * every read checks the bits left first and names the field it wanted when
 * there are too few. Bits after a segment's content must be zero (the
 * padding encoders add); anything else is refused.
 *
 * Vendor sets are built in an 8 KiB bitset over ids 0..65535, filled a word
 * at a time from ranges (so a range costs at most 1024 word writes, never
 * one step per id), then turned into sorted id lists. The total number of
 * ids of a result is capped (CK_TCF_IDS_MAX): a few bytes of range entries
 * can name 65535 vendors, and the JSON form spells each one out.
 */
#include "tcf.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_WORDS    (65536u / 64u) /* words of a bitset over ids 0..65535 */
#define NUM_SLOTS   (CK_TCF_PURPOSE_ID_MAX * 3u)
#define SEG_UNKNOWN 0u

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct tcf_msg {
    char *buf;
    size_t max;
} tcf_msg;

static int msg_set(const tcf_msg *m, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int msg_set(const tcf_msg *m, int rc, const char *fmt, ...)
{
    if (m->buf != NULL && m->max > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->buf, m->max, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Bounded bit reader                                                       */
/* ------------------------------------------------------------------------ */

typedef struct tcf_rd {
    const uint8_t *p; /* packed bits, most significant bit of p[0] first */
    size_t nbits;
    size_t pos;
    const char *seg;     /* "core segment", ... */
    const char *section; /* "vendor consents", ... or "" */
    const tcf_msg *msg;
    char segbuf[32]; /* "segment N" before the type is known */
    char secbuf[48]; /* "publisher restriction N" */
} tcf_rd;

static int rd_fail(const tcf_rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "<segment>: <text>" as the message; CK_EINVAL. */
static int rd_fail(const tcf_rd *r, const char *fmt, ...)
{
    char text[CK_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return msg_set(r->msg, CK_EINVAL, "%s: %s", r->seg, text);
}

/* Read `n` (at most 64) bits as a big-endian unsigned number. */
static int rd_u(tcf_rd *r, unsigned int n, const char *field, uint64_t *out)
{
    *out = 0;
    if (n > r->nbits - r->pos)
        return rd_fail(r, "truncated at bit %zu (%s%s%s)", r->pos, r->section,
                       r->section[0] != '\0' ? ": " : "", field);
    uint64_t v = 0;
    for (unsigned int i = 0; i < n; i++) {
        size_t b = r->pos + i;
        v = v << 1 | (uint64_t)((r->p[b >> 3] >> (7u - (b & 7u))) & 1u);
    }
    r->pos += n;
    *out = v;
    return CK_OK;
}

/* Read an n-bit (n <= 64) field whose first bit stands for id 1, into a
 * bitset where bit (id - 1) stands for id. */
static int rd_idbits(tcf_rd *r, unsigned int n, const char *field, uint64_t *out)
{
    uint64_t v;
    *out = 0;
    CK_TRY(rd_u(r, n, field, &v));
    uint64_t set = 0;
    for (unsigned int i = 0; i < n; i++)
        if ((v >> (n - 1u - i)) & 1u)
            set |= (uint64_t)1 << i;
    *out = set;
    return CK_OK;
}

/* Two letters of 6 bits each, A = 0 .. Z = 25. */
static int rd_letters(tcf_rd *r, const char *field, char out[3])
{
    uint64_t v;
    memset(out, 0, 3);
    CK_TRY(rd_u(r, 12, field, &v));
    unsigned int a = (unsigned int)(v >> 6), b = (unsigned int)(v & 63u);
    if (a > 25 || b > 25)
        return rd_fail(r, "%s: letter value %u is not A-Z (bit %zu)", field, a > 25 ? a : b,
                       r->pos - (a > 25 ? 12u : 6u));
    out[0] = (char)('A' + a);
    out[1] = (char)('A' + b);
    return CK_OK;
}

/* Every bit from the reader's position to the end must be zero. */
static int rd_end(const tcf_rd *r)
{
    for (size_t b = r->pos; b < r->nbits; b++)
        if ((r->p[b >> 3] >> (7u - (b & 7u))) & 1u)
            return rd_fail(r, "non-zero bit %zu after the end of the segment's content (bit %zu)",
                           b, r->pos);
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Base64url                                                                */
/* ------------------------------------------------------------------------ */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* The text's syntax, before any segment is decoded: base64url characters
 * and dots, no empty segment. */
static int check_text(const tcf_msg *m, const char *tc, size_t len)
{
    size_t seg_start = 0;
    unsigned int index = 1;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || tc[i] == '.') {
            if (i == seg_start)
                return msg_set(m, CK_EINVAL, "segment %u is empty (at offset %zu)", index, i);
            seg_start = i + 1;
            index++;
            continue;
        }
        unsigned char c = (unsigned char)tc[i];
        if (b64_value(c) >= 0)
            continue;
        if (c == '=')
            return msg_set(m, CK_EINVAL,
                           "'=' padding at offset %zu: TC strings are base64url "
                           "without padding",
                           i);
        if (c == '+' || c == '/')
            return msg_set(m, CK_EINVAL,
                           "character at offset %zu is standard base64, not "
                           "base64url ('-' and '_' stand for '+' and '/')",
                           i);
        return msg_set(m, CK_EINVAL, "character at offset %zu is not base64url", i);
    }
    return CK_OK;
}

/* Decode `n` base64url characters (checked by check_text) at tc + off into
 * packed bits (6 per character) in `bits`, which holds at least
 * (6n + 7) / 8 bytes. */
static void b64_bits(const char *tc, size_t off, size_t n, uint8_t *bits)
{
    memset(bits, 0, (6 * n + 7) / 8);
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)tc[off + i]);
        if (v < 0)
            v = 0; /* not reached after check_text */
        for (unsigned int k = 0; k < 6; k++) {
            size_t b = 6 * i + k;
            if (((unsigned int)v >> (5u - k)) & 1u)
                bits[b >> 3] |= (uint8_t)(0x80u >> (b & 7u));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Vendor sets                                                              */
/* ------------------------------------------------------------------------ */

/* State shared by the sections of one decode. */
typedef struct tcf_dec {
    uint64_t *scratch; /* ID_WORDS words */
    size_t total_ids;  /* ids in the result so far */
    const tcf_msg *msg;
} tcf_dec;

/* Set ids a..b (a <= b <= 65535) in the bitset. */
static void bits_set_range(uint64_t *w, uint32_t a, uint32_t b)
{
    uint32_t wa = a >> 6, wb = b >> 6;
    uint64_t ma = ~(uint64_t)0 << (a & 63u);
    uint64_t mb = ~(uint64_t)0 >> (63u - (b & 63u));
    if (wa == wb) {
        w[wa] |= ma & mb;
        return;
    }
    w[wa] |= ma;
    for (uint32_t i = wa + 1; i < wb; i++)
        w[i] = ~(uint64_t)0;
    w[wb] |= mb;
}

/* Turn the scratch bitset into a sorted id list and clear it (on success:
 * a failure ends the decode). */
static int take_ids(tcf_dec *d, ck_tcf_ids *out)
{
    size_t n = 0;
    for (uint32_t i = 0; i < ID_WORDS; i++)
        n += (size_t)__builtin_popcountll(d->scratch[i]);
    if (n > CK_TCF_IDS_MAX - d->total_ids)
        return msg_set(d->msg, CK_ELIMIT, "the string names more than %u vendor ids in all",
                       (unsigned)CK_TCF_IDS_MAX);
    out->ids = NULL;
    out->n = 0;
    if (n > 0) {
        out->ids = ck_mem__malloc(n * sizeof *out->ids);
        if (out->ids == NULL)
            return msg_set(d->msg, CK_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (uint32_t i = 0; i < ID_WORDS; i++) {
        uint64_t w = d->scratch[i];
        while (w != 0) {
            unsigned int bit = (unsigned int)__builtin_ctzll(w);
            out->ids[k++] = (uint16_t)(i * 64u + bit);
            w &= w - 1;
        }
        d->scratch[i] = 0;
    }
    out->n = n;
    d->total_ids += n;
    return CK_OK;
}

/* One RangeEntry: IsARange 1, StartOrOnlyVendorId 16, [EndVendorId 16].
 * `max` bounds the ids (65535 where the section declares none). */
static int read_range_entry(tcf_rd *r, uint64_t entry, uint32_t max, uint32_t *a, uint32_t *b)
{
    uint64_t is_range, start, end;
    CK_TRY(rd_u(r, 1, "IsARange", &is_range));
    CK_TRY(rd_u(r, 16, "StartOrOnlyVendorId", &start));
    end = start;
    if (is_range)
        CK_TRY(rd_u(r, 16, "EndVendorId", &end));
    if (start == 0)
        return rd_fail(r, "%s: range entry %llu names vendor id 0 (ids start at 1)", r->section,
                       (unsigned long long)entry);
    if (end < start)
        return rd_fail(r, "%s: range entry %llu ends at vendor id %llu, before its start %llu",
                       r->section, (unsigned long long)entry, (unsigned long long)end,
                       (unsigned long long)start);
    if (end > max)
        return rd_fail(r, "%s: range entry %llu goes past MaxVendorId %u (to %llu)", r->section,
                       (unsigned long long)entry, (unsigned)max, (unsigned long long)end);
    *a = (uint32_t)start;
    *b = (uint32_t)end;
    return CK_OK;
}

/* A vendor section: MaxVendorId 16, IsRangeEncoding 1, then a bitfield of
 * MaxVendorId bits or NumEntries 12 and range entries. */
static int read_vendors(tcf_rd *r, tcf_dec *d, const char *section, ck_tcf_ids *out)
{
    uint64_t max, is_range, v;
    r->section = section;
    CK_TRY(rd_u(r, 16, "MaxVendorId", &max));
    CK_TRY(rd_u(r, 1, "IsRangeEncoding", &is_range));
    out->max_id = (uint16_t)max;
    if (!is_range) {
        if (max > r->nbits - r->pos)
            return rd_fail(r, "truncated at bit %zu (%s: bitfield of %llu bits, %zu left)", r->pos,
                           section, (unsigned long long)max, r->nbits - r->pos);
        for (uint64_t id = 1; id <= max; id++) {
            CK_TRY(rd_u(r, 1, "bitfield", &v));
            if (v)
                d->scratch[id >> 6] |= (uint64_t)1 << (id & 63u);
        }
    } else {
        uint64_t n;
        CK_TRY(rd_u(r, 12, "NumEntries", &n));
        for (uint64_t e = 1; e <= n; e++) {
            uint32_t a = 0, b = 0;
            CK_TRY(read_range_entry(r, e, (uint32_t)max, &a, &b));
            bits_set_range(d->scratch, a, b);
        }
    }
    r->section = "";
    return take_ids(d, out);
}

/* ------------------------------------------------------------------------ */
/* Publisher restrictions                                                   */
/* ------------------------------------------------------------------------ */

typedef struct pr_range {
    uint16_t slot; /* (purpose_id - 1) * 3 + type */
    uint16_t a, b;
} pr_range;

static int read_restrictions(tcf_rd *r, tcf_dec *d, ck_tcf *t)
{
    int rc;
    uint64_t count, purpose, type, n;
    bool present[NUM_SLOTS] = {false};
    pr_range *ranges = NULL;
    size_t nranges = 0, nslots = 0;
    /* Every range entry takes at least 17 bits: a bound on their number. */
    size_t cap = (r->nbits - r->pos) / 17 + 1;

    r->section = "publisher restrictions";
    CK_GUARD(rd_u(r, 12, "NumPubRestrictions", &count));
    if (count > 0) {
        ranges = ck_mem__calloc(cap, sizeof *ranges);
        CK_ENSURE(ranges != NULL, msg_set(d->msg, CK_ENOMEM, "out of memory"));
    }
    for (uint64_t i = 1; i <= count; i++) {
        snprintf(r->secbuf, sizeof r->secbuf, "publisher restriction %llu", (unsigned long long)i);
        r->section = r->secbuf;
        CK_GUARD(rd_u(r, 6, "PurposeId", &purpose));
        CK_GUARD(rd_u(r, 2, "RestrictionType", &type));
        CK_GUARD(rd_u(r, 12, "NumEntries", &n));
        if (purpose == 0) {
            rc = rd_fail(r, "%s has purpose id 0 (ids start at 1)", r->section);
            goto cleanup;
        }
        if (type > CK_TCF_REQUIRE_LI) {
            rc = rd_fail(r, "%s has restriction type 3, which is undefined", r->section);
            goto cleanup;
        }
        unsigned int slot = ((unsigned int)purpose - 1u) * 3u + (unsigned int)type;
        if (!present[slot]) {
            present[slot] = true;
            nslots++;
        }
        for (uint64_t e = 1; e <= n; e++) {
            uint32_t a = 0, b = 0;
            CK_GUARD(read_range_entry(r, e, 65535u, &a, &b));
            /* Every entry took 17 bits or more of what was left: never hit. */
            CK_ENSURE(nranges < cap, msg_set(d->msg, CK_EINTERNAL, "too many range entries"));
            ranges[nranges].slot = (uint16_t)slot;
            ranges[nranges].a = (uint16_t)a;
            ranges[nranges].b = (uint16_t)b;
            nranges++;
        }
    }
    r->section = "";
    if (nslots > 0) {
        t->restrictions = ck_mem__calloc(nslots, sizeof *t->restrictions);
        CK_ENSURE(t->restrictions != NULL, msg_set(d->msg, CK_ENOMEM, "out of memory"));
    }
    for (unsigned int slot = 0; slot < NUM_SLOTS; slot++) {
        if (!present[slot])
            continue;
        ck_tcf_restriction *pr = &t->restrictions[t->nrestrictions++];
        pr->purpose_id = (uint8_t)(slot / 3u + 1u);
        pr->type = (uint8_t)(slot % 3u);
        for (size_t k = 0; k < nranges; k++)
            if (ranges[k].slot == slot)
                bits_set_range(d->scratch, ranges[k].a, ranges[k].b);
        CK_GUARD(take_ids(d, &pr->vendors));
    }
    rc = CK_OK;
cleanup:
    if (ranges != NULL) {
        sodium_memzero(ranges, cap * sizeof *ranges);
        ck_mem__free(ranges);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Segments                                                                 */
/* ------------------------------------------------------------------------ */

static int read_core(tcf_rd *r, tcf_dec *d, ck_tcf *t)
{
    uint64_t v;
    CK_TRY(rd_u(r, 6, "Version", &v));
    if (v != 2)
        return rd_fail(r, "version %llu is not supported (only TCF v2 strings are decoded)",
                       (unsigned long long)v);
    t->version = 2;
    CK_TRY(rd_u(r, 36, "Created", &t->created));
    CK_TRY(rd_u(r, 36, "LastUpdated", &t->last_updated));
    CK_TRY(rd_u(r, 12, "CmpId", &v));
    t->cmp_id = (uint16_t)v;
    CK_TRY(rd_u(r, 12, "CmpVersion", &v));
    t->cmp_version = (uint16_t)v;
    CK_TRY(rd_u(r, 6, "ConsentScreen", &v));
    t->consent_screen = (uint8_t)v;
    CK_TRY(rd_letters(r, "ConsentLanguage", t->consent_language));
    CK_TRY(rd_u(r, 12, "VendorListVersion", &v));
    t->vendor_list_version = (uint16_t)v;
    CK_TRY(rd_u(r, 6, "TcfPolicyVersion", &v));
    t->policy_version = (uint8_t)v;
    CK_TRY(rd_u(r, 1, "IsServiceSpecific", &v));
    t->is_service_specific = v != 0;
    CK_TRY(rd_u(r, 1, "UseNonStandardTexts", &v));
    t->use_non_standard_texts = v != 0;
    CK_TRY(rd_idbits(r, 12, "SpecialFeatureOptIns", &v));
    t->special_feature_optins = (uint32_t)v;
    CK_TRY(rd_idbits(r, 24, "PurposesConsent", &v));
    t->purpose_consents = (uint32_t)v;
    CK_TRY(rd_idbits(r, 24, "PurposesLITransparency", &v));
    t->purpose_li = (uint32_t)v;
    CK_TRY(rd_u(r, 1, "PurposeOneTreatment", &v));
    t->purpose_one_treatment = v != 0;
    CK_TRY(rd_letters(r, "PublisherCC", t->publisher_cc));
    CK_TRY(read_vendors(r, d, "vendor consents", &t->vendor_consents));
    CK_TRY(read_vendors(r, d, "vendor legitimate interests", &t->vendor_li));
    return read_restrictions(r, d, t);
}

static int read_publisher_tc(tcf_rd *r, ck_tcf *t)
{
    uint64_t v;
    CK_TRY(rd_idbits(r, 24, "PubPurposesConsent", &v));
    t->pub_consents = (uint32_t)v;
    CK_TRY(rd_idbits(r, 24, "PubPurposesLITransparency", &v));
    t->pub_li = (uint32_t)v;
    CK_TRY(rd_u(r, 6, "NumCustomPurposes", &v));
    t->num_custom_purposes = (uint8_t)v;
    CK_TRY(rd_idbits(r, t->num_custom_purposes, "CustomPurposesConsent", &t->custom_consents));
    return rd_idbits(r, t->num_custom_purposes, "CustomPurposesLITransparency", &t->custom_li);
}

static const char *segment_name(unsigned int type)
{
    switch (type) {
    case 1:
        return "disclosed vendors segment";
    case 2:
        return "allowed vendors segment";
    case 3:
        return "publisher TC segment";
    default:
        return "segment";
    }
}

/* Decode optional segment number `index` (2, 3, ...): its type, then its
 * fields. `seen` holds the CK_TCF_SEG_* bits of the segments read so far. */
static int read_optional(tcf_rd *r, tcf_dec *d, ck_tcf *t, unsigned int index)
{
    uint64_t type;
    snprintf(r->segbuf, sizeof r->segbuf, "segment %u", index);
    r->seg = r->segbuf;
    CK_TRY(rd_u(r, 3, "SegmentType", &type));
    if (type == 0)
        return rd_fail(r, "segment type 0 (core) is allowed only as the first segment");
    if (type > 3)
        return rd_fail(r, "unknown segment type %llu", (unsigned long long)type);
    unsigned int bit = 1u << (type - 1);
    r->seg = segment_name((unsigned int)type);
    if (t->segments & bit)
        return msg_set(d->msg, CK_EINVAL, "segment %u: a second %s", index, r->seg);
    t->segments |= bit;
    switch (type) {
    case 1:
        return read_vendors(r, d, "disclosed vendors", &t->vendors_disclosed);
    case 2:
        return read_vendors(r, d, "allowed vendors", &t->vendors_allowed);
    default:
        return read_publisher_tc(r, t);
    }
}

int ck_tcf__decode(ck_tcf **out, const char *tc, size_t len, char *err, size_t err_max)
{
    int rc;
    tcf_msg m = {err, err_max};
    tcf_dec d = {NULL, 0, &m};
    ck_tcf *t = NULL;
    uint8_t *bits = NULL;
    size_t bits_max = 0;

    if (err != NULL && err_max > 0)
        err[0] = '\0';
    if (out == NULL)
        return msg_set(&m, CK_EINVAL, "no output pointer");
    *out = NULL;
    if (len > CK_TCF_TEXT_MAX)
        return msg_set(&m, CK_ELIMIT, "the TC string is longer than %u bytes",
                       (unsigned)CK_TCF_TEXT_MAX);
    if (tc == NULL || len == 0)
        return msg_set(&m, CK_EINVAL, "the TC string is empty");
    CK_TRY(check_text(&m, tc, len));

    t = ck_mem__calloc(1, sizeof *t);
    CK_ENSURE(t != NULL, msg_set(&m, CK_ENOMEM, "out of memory"));
    d.scratch = ck_mem__calloc(ID_WORDS, sizeof *d.scratch);
    CK_ENSURE(d.scratch != NULL, msg_set(&m, CK_ENOMEM, "out of memory"));
    bits_max = (6 * len + 7) / 8; /* enough for the longest segment */
    bits = ck_mem__malloc(bits_max);
    CK_ENSURE(bits != NULL, msg_set(&m, CK_ENOMEM, "out of memory"));

    size_t start = 0;
    for (unsigned int index = 1;; index++) {
        const char *dot = memchr(tc + start, '.', len - start);
        size_t end = dot != NULL ? (size_t)(dot - tc) : len;
        b64_bits(tc, start, end - start, bits); /* not empty: checked */
        tcf_rd r = {bits, 6 * (end - start), 0, "core segment", "", &m, {0}, {0}};
        if (index == 1)
            CK_GUARD(read_core(&r, &d, t));
        else
            CK_GUARD(read_optional(&r, &d, t, index));
        CK_GUARD(rd_end(&r));
        if (dot == NULL)
            break;
        start = end + 1;
    }
    *out = t;
    t = NULL;
    rc = CK_OK;
cleanup:
    if (bits != NULL) {
        sodium_memzero(bits, bits_max);
        ck_mem__free(bits);
    }
    if (d.scratch != NULL) {
        sodium_memzero(d.scratch, ID_WORDS * sizeof *d.scratch);
        ck_mem__free(d.scratch);
    }
    ck_tcf__free(t);
    return rc;
}

static void ids_free(ck_tcf_ids *s)
{
    if (s->ids != NULL) {
        sodium_memzero(s->ids, s->n * sizeof *s->ids);
        ck_mem__free(s->ids);
    }
    s->ids = NULL;
    s->n = 0;
}

void ck_tcf__free(ck_tcf *t)
{
    if (t == NULL)
        return;
    ids_free(&t->vendor_consents);
    ids_free(&t->vendor_li);
    ids_free(&t->vendors_disclosed);
    ids_free(&t->vendors_allowed);
    for (size_t i = 0; i < t->nrestrictions; i++)
        ids_free(&t->restrictions[i].vendors);
    ck_mem__free(t->restrictions);
    sodium_memzero(t, sizeof *t);
    ck_mem__free(t);
}

/* ------------------------------------------------------------------------ */
/* Lookups                                                                  */
/* ------------------------------------------------------------------------ */

bool ck_tcf__has(const ck_tcf_ids *s, unsigned int id)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ids[mid] == id)
            return true;
        if (s->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

unsigned int ck_tcf__restrictions_for(const ck_tcf *t, unsigned int purpose_id,
                                      unsigned int vendor_id)
{
    unsigned int types = 0;
    for (size_t i = 0; i < t->nrestrictions; i++) {
        const ck_tcf_restriction *pr = &t->restrictions[i];
        if (pr->purpose_id == purpose_id && ck_tcf__has(&pr->vendors, vendor_id))
            types |= 1u << pr->type;
    }
    return types;
}

int ck_tcf__time_text(char *out, size_t out_max, uint64_t deciseconds)
{
    ck_value v;
    memset(&v, 0, sizeof v);
    v.type = CK_TYPE_TIMESTAMP;
    if (deciseconds >= ((uint64_t)1 << 36)) {
        if (out_max > 0)
            out[0] = '\0';
        return CK_EINVAL; /* not a 36-bit field */
    }
    v.u.ts.sec = (int64_t)(deciseconds / 10u);
    v.u.ts.nsec = (int32_t)(deciseconds % 10u) * 100000000;
    return ck_ts__format(out, out_max, &v);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

/* json_object_set_new that remembers a failure in *ok. */
/* (Both steal `v`, also when they fail.) */
static void jset(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (o == NULL || v == NULL) {
        json_decref(v);
        *ok = false;
    } else if (json_object_set_new(o, key, v) != 0) {
        *ok = false;
    }
}

static void jappend(json_t *a, json_t *v, bool *ok)
{
    if (a == NULL || v == NULL) {
        json_decref(v);
        *ok = false;
    } else if (json_array_append_new(a, v) != 0) {
        *ok = false;
    }
}

static json_t *ids_json(const ck_tcf_ids *s, bool *ok)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->n && *ok; i++)
        jappend(a, json_integer((json_int_t)s->ids[i]), ok);
    return a;
}

/* The ids of the set bits of an n-bit id bitset. */
static json_t *bits_json(uint64_t set, unsigned int n, bool *ok)
{
    json_t *a = json_array();
    for (unsigned int id = 1; id <= n && *ok; id++)
        if (ck_tcf__bit(set, id))
            jappend(a, json_integer((json_int_t)id), ok);
    return a;
}

static json_t *time_json(uint64_t deciseconds)
{
    char text[CK_TS_TEXT_MAX];
    if (ck_tcf__time_text(text, sizeof text, deciseconds) != CK_OK)
        return NULL;
    return json_string(text);
}

int ck_tcf__to_json(char **out, const ck_tcf *t)
{
    if (out != NULL)
        *out = NULL;
    if (out == NULL || t == NULL)
        return CK_EINVAL;
    int rc;
    bool ok = true;
    json_t *root = json_object();
    json_t *prs = json_array();

    *out = NULL;
    jset(root, "version", json_integer(t->version), &ok);
    jset(root, "created", time_json(t->created), &ok);
    jset(root, "lastUpdated", time_json(t->last_updated), &ok);
    jset(root, "cmpId", json_integer(t->cmp_id), &ok);
    jset(root, "cmpVersion", json_integer(t->cmp_version), &ok);
    jset(root, "consentScreen", json_integer(t->consent_screen), &ok);
    jset(root, "consentLanguage", json_string(t->consent_language), &ok);
    jset(root, "vendorListVersion", json_integer(t->vendor_list_version), &ok);
    jset(root, "policyVersion", json_integer(t->policy_version), &ok);
    jset(root, "isServiceSpecific", json_boolean(t->is_service_specific), &ok);
    jset(root, "useNonStandardTexts", json_boolean(t->use_non_standard_texts), &ok);
    jset(root, "specialFeatureOptins", bits_json(t->special_feature_optins, 12, &ok), &ok);
    jset(root, "purposeConsents", bits_json(t->purpose_consents, 24, &ok), &ok);
    jset(root, "purposeLegitimateInterests", bits_json(t->purpose_li, 24, &ok), &ok);
    jset(root, "purposeOneTreatment", json_boolean(t->purpose_one_treatment), &ok);
    jset(root, "publisherCountryCode", json_string(t->publisher_cc), &ok);
    jset(root, "vendorConsents", ids_json(&t->vendor_consents, &ok), &ok);
    jset(root, "vendorLegitimateInterests", ids_json(&t->vendor_li, &ok), &ok);
    for (size_t i = 0; i < t->nrestrictions && ok; i++) {
        const ck_tcf_restriction *pr = &t->restrictions[i];
        json_t *o = json_object();
        jset(o, "purposeId", json_integer(pr->purpose_id), &ok);
        jset(o, "restrictionType", json_integer(pr->type), &ok);
        jset(o, "vendorIds", ids_json(&pr->vendors, &ok), &ok);
        jappend(prs, o, &ok);
    }
    jset(root, "publisherRestrictions", prs, &ok);
    jset(root, "vendorsDisclosed", ids_json(&t->vendors_disclosed, &ok), &ok);
    jset(root, "vendorsAllowed", ids_json(&t->vendors_allowed, &ok), &ok);
    jset(root, "publisherConsents", bits_json(t->pub_consents, 24, &ok), &ok);
    jset(root, "publisherLegitimateInterests", bits_json(t->pub_li, 24, &ok), &ok);
    jset(root, "numCustomPurposes", json_integer(t->num_custom_purposes), &ok);
    jset(root, "publisherCustomConsents",
         bits_json(t->custom_consents, t->num_custom_purposes, &ok), &ok);
    jset(root, "publisherCustomLegitimateInterests",
         bits_json(t->custom_li, t->num_custom_purposes, &ok), &ok);
    CK_ENSURE(ok, CK_ENOMEM);
    rc = ck_out__json(out, root, JSON_COMPACT | JSON_PRESERVE_ORDER);
cleanup:
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public                                                                   */
/* ------------------------------------------------------------------------ */

CK_EXPORT int ck_tcf_decode_json(char **out, const char *tc, size_t len, char *err, size_t err_max)
{
    tcf_msg m = {err, err_max};
    ck_tcf *t = NULL;
    if (err != NULL && err_max > 0)
        err[0] = '\0';
    if (out == NULL)
        return msg_set(&m, CK_EINVAL, "no output pointer");
    *out = NULL;
    int rc = ck_tcf__decode(&t, tc, len, err, err_max);
    if (rc != CK_OK)
        return rc;
    rc = ck_tcf__to_json(out, t);
    ck_tcf__free(t);
    if (rc != CK_OK)
        return msg_set(&m, rc, "out of memory");
    return CK_OK;
}
