/*
 * test_tcf.c - tests of the IAB TCF v2 TC string decoder (tcf.c).
 *
 * Known-answer vectors are built here bit by bit from the specification
 * ("Consent string and vendor list formats v2", IAB Tech Lab) with a small
 * bit writer, and each one is also pinned as its base64url text; the
 * decoded values were cross-checked against the IAB reference decoder
 * (iabtcf-es). The IAB strings of test_iab_strings carry the values the
 * IAB's own Java decoder tests assert for them.
 *
 * Every malformed class is its own assertion on the status and on the
 * message, so that each can fail.
 */
/* ck-test: fast */
#include "tcf.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CK_FAULT_INJECTION
#include "fault.h"
#endif

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

/* ------------------------------------------------------------------------ */
/* A bit writer and base64url encoder                                       */
/* ------------------------------------------------------------------------ */

#define BW_BYTES 70000u

typedef struct bw {
    uint8_t b[BW_BYTES];
    size_t n; /* bits written */
} bw;

static bw *bw_new(void)
{
    bw *w = calloc(1, sizeof *w);
    assert_non_null(w);
    return w;
}

/* Append the n low bits of v, most significant first. */
static void bw_u(bw *w, uint64_t v, unsigned int n)
{
    assert_true(w->n + n <= 8u * BW_BYTES);
    for (unsigned int i = n; i-- > 0;) {
        if ((v >> i) & 1u)
            w->b[w->n >> 3] |= (uint8_t)(0x80u >> (w->n & 7u));
        w->n++;
    }
}

/* Bit (id - 1) of a set stands for id, written left to right. */
#define ID(i) ((uint64_t)1 << ((i)-1))

static void bw_set(bw *w, uint64_t set, unsigned int n)
{
    for (unsigned int id = 1; id <= n; id++)
        bw_u(w, (set >> (id - 1)) & 1u, 1);
}

static void bw_letters(bw *w, const char *two)
{
    bw_u(w, (uint64_t)(two[0] - 'A'), 6);
    bw_u(w, (uint64_t)(two[1] - 'A'), 6);
}

/* Base64url of the bits, zero-padded to a multiple of `pad` bits (24 as the
 * reference encoder does, 8 as byte-oriented encoders do), appended to
 * `out` (NUL-terminated, room for max bytes). */
static void bw_emit_pad(const bw *w, char *out, size_t max, unsigned int pad)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t bits = (w->n + pad - 1) / pad * pad;
    size_t len = strlen(out);
    for (size_t i = 0; i < bits; i += 6) {
        unsigned int v = 0;
        for (size_t k = i; k < i + 6; k++) {
            unsigned int bit = k < w->n ? (w->b[k >> 3] >> (7u - (k & 7u))) & 1u : 0u;
            v = v << 1 | bit;
        }
        assert_true(len + 2 <= max);
        out[len++] = A[v];
    }
    out[len] = '\0';
}

static void bw_emit(const bw *w, char *out, size_t max)
{
    bw_emit_pad(w, out, max, 24);
}

/* Append text t to the NUL-terminated s of room max. */
static void append(char *s, size_t max, const char *t)
{
    size_t a = strlen(s), b = strlen(t);
    assert_true(a + b < max);
    memcpy(s + a, t, b + 1);
}

/* The core fields up to PublisherCC. */
typedef struct core {
    unsigned int version;
    uint64_t created, updated; /* deciseconds */
    unsigned int cmp_id, cmp_version, screen;
    const char *lang;
    unsigned int vlv, policy, service_specific, non_standard;
    uint64_t sfo, pc, pli; /* id sets */
    unsigned int p1t;
    const char *cc;
} core;

/* 2024-03-01T12:00:00Z and 2024-03-02T08:30:15.7Z in deciseconds. */
#define T_CREATED 17092944000ULL
#define T_UPDATED 17093682157ULL

static core core_default(void)
{
    core c = {2,
              T_CREATED,
              T_UPDATED,
              300,
              7,
              3,
              "EN",
              215,
              4,
              0,
              0,
              ID(1) | ID(2),
              ID(1) | ID(3) | ID(24),
              ID(2) | ID(7) | ID(10),
              0,
              "DE"};
    return c;
}

static void bw_core(bw *w, const core *c)
{
    bw_u(w, c->version, 6);
    bw_u(w, c->created, 36);
    bw_u(w, c->updated, 36);
    bw_u(w, c->cmp_id, 12);
    bw_u(w, c->cmp_version, 12);
    bw_u(w, c->screen, 6);
    bw_letters(w, c->lang);
    bw_u(w, c->vlv, 12);
    bw_u(w, c->policy, 6);
    bw_u(w, c->service_specific, 1);
    bw_u(w, c->non_standard, 1);
    bw_set(w, c->sfo, 12);
    bw_set(w, c->pc, 24);
    bw_set(w, c->pli, 24);
    bw_u(w, c->p1t, 1);
    bw_letters(w, c->cc);
}

/* A vendor section as a bitfield of `max` bits with `ids` set. */
static void bw_vbits(bw *w, unsigned int max, const unsigned int *ids, size_t n)
{
    bw_u(w, max, 16);
    bw_u(w, 0, 1);
    size_t at = w->n;
    for (unsigned int i = 0; i < max; i++)
        bw_u(w, 0, 1);
    for (size_t k = 0; k < n; k++) {
        assert_true(ids[k] >= 1 && ids[k] <= max);
        size_t b = at + ids[k] - 1;
        w->b[b >> 3] |= (uint8_t)(0x80u >> (b & 7u));
    }
}

/* Range entries: {a, b}; a single id when a == b. */
static void bw_entries(bw *w, const unsigned int (*r)[2], size_t n)
{
    bw_u(w, n, 12);
    for (size_t k = 0; k < n; k++) {
        bw_u(w, r[k][0] != r[k][1], 1);
        bw_u(w, r[k][0], 16);
        if (r[k][0] != r[k][1])
            bw_u(w, r[k][1], 16);
    }
}

static void bw_vranges(bw *w, unsigned int max, const unsigned int (*r)[2], size_t n)
{
    bw_u(w, max, 16);
    bw_u(w, 1, 1);
    bw_entries(w, r, n);
}

/* An empty vendor section (MaxVendorId 0, bitfield). */
static void bw_vnone(bw *w)
{
    bw_vbits(w, 0, NULL, 0);
}

/* A core segment with default fields, empty vendor sections and no
 * restriction, as base64url appended to out. */
static void core_min(char *out, size_t max)
{
    bw *w = bw_new();
    core c = core_default();
    bw_core(w, &c);
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 0, 12);
    bw_emit(w, out, max);
    free(w);
}

/* ------------------------------------------------------------------------ */
/* Checking helpers                                                         */
/* ------------------------------------------------------------------------ */

static void expect_json(const char *tc, const char *want)
{
    char *json = NULL;
    char err[CK_ERRMSG_MAX];
    int rc = ck_tcf_decode_json(&json, tc, strlen(tc), err, sizeof err);
    if (rc != CK_OK)
        fail_msg("decode of %s failed (%d): %s", tc, rc, err);
    assert_string_equal(err, "");
    assert_string_equal(json, want);
    ck_free(json);
}

/* The decode fails with `want_rc` and a message containing `want_msg`. */
static void expect_fail_n(const char *tc, size_t len, int want_rc, const char *want_msg)
{
    char *json = (char *)&json; /* must be reset to NULL */
    char err[CK_ERRMSG_MAX];
    int rc = ck_tcf_decode_json(&json, tc, len, err, sizeof err);
    if (rc != want_rc || strstr(err, want_msg) == NULL)
        fail_msg("expected %d with \"%s\", got %d: \"%s\"", want_rc, want_msg, rc, err);
    assert_null(json);

    ck_tcf *t = (ck_tcf *)&t;
    char err2[CK_ERRMSG_MAX];
    assert_int_equal(ck_tcf__decode(&t, tc, len, err2, sizeof err2), want_rc);
    assert_null(t);
    assert_string_equal(err, err2);
}

static void expect_fail(const char *tc, int want_rc, const char *want_msg)
{
    expect_fail_n(tc, strlen(tc), want_rc, want_msg);
}

static ck_tcf *decode_ok(const char *tc)
{
    ck_tcf *t = NULL;
    char err[CK_ERRMSG_MAX];
    int rc = ck_tcf__decode(&t, tc, strlen(tc), err, sizeof err);
    if (rc != CK_OK)
        fail_msg("decode of %s failed (%d): %s", tc, rc, err);
    assert_non_null(t);
    return t;
}

static void assert_ids(const ck_tcf_ids *s, const unsigned int *want, size_t n)
{
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->ids[i], want[i]);
}

/* ------------------------------------------------------------------------ */
/* Strings from the IAB's documentation and decoder tests                   */
/* ------------------------------------------------------------------------ */

static void test_iab_strings(void **state)
{
    (void)state;
    /* iabtcf-java TCStringV2Test.testCanConstructTCModelFromBase64String. */
    const char *s1 = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA";
    ck_tcf *t = decode_ok(s1);
    char text[CK_TS_TEXT_MAX];
    assert_int_equal(t->version, 2);
    assert_int_equal(ck_tcf__time_text(text, sizeof text, t->created), CK_OK);
    assert_string_equal(text, "2020-01-26T17:01:00Z");
    assert_int_equal(ck_tcf__time_text(text, sizeof text, t->last_updated), CK_OK);
    assert_string_equal(text, "2021-02-02T17:01:00Z");
    assert_int_equal(t->cmp_id, 675);
    assert_int_equal(t->cmp_version, 2);
    assert_int_equal(t->consent_screen, 1);
    assert_int_equal(t->vendor_list_version, 15);
    assert_int_equal(t->policy_version, 2);
    assert_string_equal(t->consent_language, "EN");
    assert_string_equal(t->publisher_cc, "AA");
    assert_false(t->is_service_specific);
    assert_true(t->purpose_one_treatment);
    assert_false(t->use_non_standard_texts);
    assert_int_equal(t->special_feature_optins, ID(1));
    assert_int_equal(t->purpose_consents, ID(2) | ID(10));
    assert_int_equal(t->purpose_li, ID(2) | ID(9));
    ck_tcf__free(t);
    expect_json(s1, "{\"version\":2,\"created\":\"2020-01-26T17:01:00Z\","
                    "\"lastUpdated\":\"2021-02-02T17:01:00Z\",\"cmpId\":675,\"cmpVersion\":2,"
                    "\"consentScreen\":1,\"consentLanguage\":\"EN\",\"vendorListVersion\":15,"
                    "\"policyVersion\":2,\"isServiceSpecific\":false,\"useNonStandardTexts\":false,"
                    "\"specialFeatureOptins\":[1],\"purposeConsents\":[2,10],"
                    "\"purposeLegitimateInterests\":[2,9],\"purposeOneTreatment\":true,"
                    "\"publisherCountryCode\":\"AA\",\"vendorConsents\":[],"
                    "\"vendorLegitimateInterests\":[],\"publisherRestrictions\":[],"
                    "\"vendorsDisclosed\":[],\"vendorsAllowed\":[],\"publisherConsents\":[],"
                    "\"publisherLegitimateInterests\":[],\"numCustomPurposes\":0,"
                    "\"publisherCustomConsents\":[],\"publisherCustomLegitimateInterests\":[]}");

    /* testConstructConsentsFromBitFields and testCanParseDisclosedAndAllowedVendors. */
    t = decode_ok("COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAA"
                  "AABAAA.IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA");
    assert_int_equal(t->purpose_consents, ID(3) | ID(4) | ID(5) | ID(6) | ID(7) | ID(8) | ID(9));
    static const unsigned int vc[] = {23, 37, 47, 48, 53, 65, 98};
    static const unsigned int vli[] = {37, 47, 48, 53, 65, 98, 129};
    static const unsigned int va[] = {12, 23, 37, 47, 48, 53};
    static const unsigned int vd[] = {23, 37, 47, 48, 53, 65, 98, 129};
    assert_ids(&t->vendor_consents, vc, CK_ARRAY_LEN(vc));
    assert_ids(&t->vendor_li, vli, CK_ARRAY_LEN(vli));
    assert_ids(&t->vendors_allowed, va, CK_ARRAY_LEN(va));
    assert_ids(&t->vendors_disclosed, vd, CK_ARRAY_LEN(vd));
    assert_int_equal(t->segments, CK_TCF_SEG_DISCLOSED | CK_TCF_SEG_ALLOWED);
    ck_tcf__free(t);

    /* testCanParseRangeEncodedVendorLegitimateInterests. */
    t = decode_ok("COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA");
    static const unsigned int v128[] = {128};
    assert_ids(&t->vendor_li, v128, 1);
    ck_tcf__free(t);

    /* testRange: two range-encoded strings with a disclosed-vendors segment. */
    const char *disclosed =
        "IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAF"
        "AAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw";
    char s[512];
    snprintf(s, sizeof s, "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA.%s",
             disclosed);
    t = decode_ok(s);
    static const unsigned int v702[] = {702, 703};
    assert_ids(&t->vendor_consents, v702, 2);
    ck_tcf__free(t);
    snprintf(s, sizeof s, "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAQFfgUbABAUaAAA.%s", disclosed);
    t = decode_ok(s);
    assert_ids(&t->vendor_consents, v702 + 1, 1);
    ck_tcf__free(t);

    /* testPurposesConsent. */
    t = decode_ok("COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA");
    assert_true(ck_tcf__bit(t->purpose_consents, 1));
    assert_true(ck_tcf__bit(t->purpose_consents, 2));
    ck_tcf__free(t);

    /* A TCF v1 string (the examples of the v2 specification are v1 strings). */
    expect_fail("BObdrPUOevsguAfDqFENCNAAAAAmeAAA", CK_EINVAL,
                "core segment: version 1 is not supported (only TCF v2 strings are decoded)");
}

/* ------------------------------------------------------------------------ */
/* Known answers built from the specification                              */
/* ------------------------------------------------------------------------ */

/* The JSON text from "vendorConsents" on, for vectors whose core fields are
 * core_default(). */
#define CORE_DEFAULT_JSON                                                                          \
    "{\"version\":2,\"created\":\"2024-03-01T12:00:00Z\",\"lastUpdated\":\"2024-03-02T08:30:15."   \
    "7Z\","                                                                                        \
    "\"cmpId\":300,\"cmpVersion\":7,\"consentScreen\":3,\"consentLanguage\":\"EN\","               \
    "\"vendorListVersion\":215,\"policyVersion\":4,\"isServiceSpecific\":false,"                   \
    "\"useNonStandardTexts\":false,\"specialFeatureOptins\":[1,2],\"purposeConsents\":[1,3,24],"   \
    "\"purposeLegitimateInterests\":[2,7,10],\"purposeOneTreatment\":false,"                       \
    "\"publisherCountryCode\":\"DE\","

#define NO_SEGMENTS_JSON                                                                           \
    "\"vendorsDisclosed\":[],\"vendorsAllowed\":[],\"publisherConsents\":[],"                      \
    "\"publisherLegitimateInterests\":[],\"numCustomPurposes\":0,"                                 \
    "\"publisherCustomConsents\":[],\"publisherCustomLegitimateInterests\":[]}"

static void test_core_bitfields(void **state)
{
    (void)state;
    char s[4096] = "";
    bw *w = bw_new();
    core c = core_default();
    bw_core(w, &c);
    static const unsigned int vc[] = {1, 3, 64, 65, 500};
    static const unsigned int vli[] = {2, 3, 40};
    bw_vbits(w, 500, vc, CK_ARRAY_LEN(vc));
    bw_vbits(w, 40, vli, CK_ARRAY_LEN(vli));
    bw_u(w, 0, 12);
    bw_emit(w, s, sizeof s);
    free(w);
    assert_string_equal(
        s, "CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgD6KAAAAAAAAABgAAAAAAAAAAAAAAAAAAAAAAAAAA"
           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAKDAAAAAAgAAAA");
    expect_json(s, CORE_DEFAULT_JSON "\"vendorConsents\":[1,3,64,65,500],"
                                     "\"vendorLegitimateInterests\":[2,3,40],"
                                     "\"publisherRestrictions\":[]," NO_SEGMENTS_JSON);

    ck_tcf *t = decode_ok(s);
    assert_int_equal(t->vendor_consents.max_id, 500);
    assert_int_equal(t->vendor_li.max_id, 40);
    assert_true(ck_tcf__has(&t->vendor_consents, 1));
    assert_true(ck_tcf__has(&t->vendor_consents, 500));
    assert_false(ck_tcf__has(&t->vendor_consents, 2));
    assert_false(ck_tcf__has(&t->vendor_consents, 501));
    assert_false(ck_tcf__has(&t->vendor_consents, 0));
    assert_true(ck_tcf__has(&t->vendor_li, 40));
    assert_false(ck_tcf__has(&t->vendors_disclosed, 1));
    assert_true(ck_tcf__bit(t->purpose_consents, 24));
    assert_false(ck_tcf__bit(t->purpose_consents, 2));
    assert_false(ck_tcf__bit(t->purpose_consents, 0));
    assert_false(ck_tcf__bit(t->purpose_consents, 65));
    assert_int_equal(t->segments, 0);
    ck_tcf__free(t);

    /* The same content padded to a byte instead of 24 bits decodes alike;
     * so does one with extra zero characters. */
    char s8[4096] = "";
    w = bw_new();
    bw_core(w, &c);
    bw_vbits(w, 500, vc, CK_ARRAY_LEN(vc));
    bw_vbits(w, 40, vli, CK_ARRAY_LEN(vli));
    bw_u(w, 0, 12);
    bw_emit_pad(w, s8, sizeof s8, 8);
    free(w);
    assert_true(strlen(s8) < strlen(s));
    assert_memory_equal(s8, s, strlen(s8));
    t = decode_ok(s8);
    assert_ids(&t->vendor_consents, vc, CK_ARRAY_LEN(vc));
    ck_tcf__free(t);
    append(s, sizeof s, "AAAAAAAA");
    t = decode_ok(s);
    assert_ids(&t->vendor_li, vli, CK_ARRAY_LEN(vli));
    ck_tcf__free(t);
}

static void test_core_ranges(void **state)
{
    (void)state;
    char s[4096] = "";
    bw *w = bw_new();
    core c = core_default();
    c.created = T_CREATED + 5; /* .5 */
    c.updated = T_CREATED + 10;
    c.service_specific = 1;
    c.non_standard = 1;
    c.p1t = 1;
    c.lang = "FR";
    c.cc = "ZZ";
    c.sfo = ID(12);
    c.pc = 0;
    c.pli = 0;
    /* Out of order, overlapping and single entries: a sorted set results. */
    static const unsigned int rc_[][2] = {{700, 703}, {5, 5}, {2, 4}, {3, 6}, {65535, 65535}};
    static const unsigned int rli[][2] = {{1, 1}, {128, 130}};
    bw_core(w, &c);
    bw_vranges(w, 65535, rc_, CK_ARRAY_LEN(rc_));
    bw_vranges(w, 130, rli, CK_ARRAY_LEN(rli));
    bw_u(w, 0, 12);
    bw_emit(w, s, sizeof s);
    free(w);
    assert_string_equal(s,
                        "CP60aCFP60aCKEsAHDFRDXEwAQAAAAAAALLP__wBYFeAV-AAWAAQACQADAAZ__4BBQAgAAwCAA"
                        "IIAAAA");
    expect_json(s, "{\"version\":2,\"created\":\"2024-03-01T12:00:00.5Z\","
                   "\"lastUpdated\":\"2024-03-01T12:00:01Z\",\"cmpId\":300,\"cmpVersion\":7,"
                   "\"consentScreen\":3,\"consentLanguage\":\"FR\",\"vendorListVersion\":215,"
                   "\"policyVersion\":4,\"isServiceSpecific\":true,\"useNonStandardTexts\":true,"
                   "\"specialFeatureOptins\":[12],\"purposeConsents\":[],"
                   "\"purposeLegitimateInterests\":[],\"purposeOneTreatment\":true,"
                   "\"publisherCountryCode\":\"ZZ\","
                   "\"vendorConsents\":[2,3,4,5,6,700,701,702,703,65535],"
                   "\"vendorLegitimateInterests\":[1,128,129,130],"
                   "\"publisherRestrictions\":[]," NO_SEGMENTS_JSON);
}

static void test_restrictions(void **state)
{
    (void)state;
    char s[4096] = "";
    bw *w = bw_new();
    core c = core_default();
    bw_core(w, &c);
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 5, 12); /* NumPubRestrictions */
    static const unsigned int r1[][2] = {{10, 12}, {99, 99}};
    static const unsigned int r2[][2] = {{7, 7}};
    static const unsigned int r3[][2] = {{1, 2}, {11, 11}};
    /* purpose 2, require consent: 10-12, 99 */
    bw_u(w, 2, 6);
    bw_u(w, CK_TCF_REQUIRE_CONSENT, 2);
    bw_entries(w, r1, CK_ARRAY_LEN(r1));
    /* purpose 1, not allowed: 7 */
    bw_u(w, 1, 6);
    bw_u(w, CK_TCF_NOT_ALLOWED, 2);
    bw_entries(w, r2, CK_ARRAY_LEN(r2));
    /* purpose 63, require LI: no vendor at all */
    bw_u(w, 63, 6);
    bw_u(w, CK_TCF_REQUIRE_LI, 2);
    bw_entries(w, NULL, 0);
    /* purpose 2, require consent again: merged with the first */
    bw_u(w, 2, 6);
    bw_u(w, CK_TCF_REQUIRE_CONSENT, 2);
    bw_entries(w, r3, CK_ARRAY_LEN(r3));
    /* purpose 2, require LI: 11 (a second type for vendor 11) */
    bw_u(w, 2, 6);
    bw_u(w, CK_TCF_REQUIRE_LI, 2);
    bw_entries(w, r2 + 0, 0);
    bw_emit(w, s, sizeof s);
    free(w);
    assert_string_equal(s,
                        "CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgAAAAAAChIAUACgAMADGCAAgAH_gAAkAKAAIABA"
                        "ALCgAA");
    expect_json(s, CORE_DEFAULT_JSON
                "\"vendorConsents\":[],\"vendorLegitimateInterests\":[],"
                "\"publisherRestrictions\":["
                "{\"purposeId\":1,\"restrictionType\":0,\"vendorIds\":[7]},"
                "{\"purposeId\":2,\"restrictionType\":1,\"vendorIds\":[1,2,10,11,12,99]},"
                "{\"purposeId\":2,\"restrictionType\":2,\"vendorIds\":[]},"
                "{\"purposeId\":63,\"restrictionType\":2,\"vendorIds\":[]}]," NO_SEGMENTS_JSON);

    ck_tcf *t = decode_ok(s);
    assert_int_equal(t->nrestrictions, 4);
    assert_int_equal(ck_tcf__restrictions_for(t, 1, 7), 1u << CK_TCF_NOT_ALLOWED);
    assert_int_equal(ck_tcf__restrictions_for(t, 2, 11), 1u << CK_TCF_REQUIRE_CONSENT);
    assert_int_equal(ck_tcf__restrictions_for(t, 2, 7), 0);
    assert_int_equal(ck_tcf__restrictions_for(t, 3, 7), 0);
    ck_tcf__free(t);

    /* A vendor restricted two ways for one purpose: both types reported. */
    s[0] = '\0';
    w = bw_new();
    bw_core(w, &c);
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 2, 12);
    bw_u(w, 4, 6);
    bw_u(w, CK_TCF_NOT_ALLOWED, 2);
    bw_entries(w, r2, 1);
    bw_u(w, 4, 6);
    bw_u(w, CK_TCF_REQUIRE_LI, 2);
    bw_entries(w, r2, 1);
    bw_emit(w, s, sizeof s);
    free(w);
    t = decode_ok(s);
    assert_int_equal(ck_tcf__restrictions_for(t, 4, 7),
                     (1u << CK_TCF_NOT_ALLOWED) | (1u << CK_TCF_REQUIRE_LI));
    ck_tcf__free(t);
}

static void test_optional_segments(void **state)
{
    (void)state;
    char s[4096] = "";
    core_min(s, sizeof s);
    assert_string_equal(s, "CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgAAAAAAAA");

    /* Publisher TC first, then allowed (ranges), then disclosed (bitfield). */
    bw *w = bw_new();
    bw_u(w, 3, 3);
    bw_set(w, ID(1) | ID(24), 24);
    bw_set(w, ID(2), 24);
    bw_u(w, 5, 6);
    bw_set(w, ID(1) | ID(5), 5);
    bw_set(w, ID(3), 5);
    append(s, sizeof s, ".");
    bw_emit(w, s, sizeof s);
    free(w);

    w = bw_new();
    static const unsigned int ra[][2] = {{8, 8}, {20, 22}};
    bw_u(w, 2, 3);
    bw_vranges(w, 22, ra, CK_ARRAY_LEN(ra));
    append(s, sizeof s, ".");
    bw_emit(w, s, sizeof s);
    free(w);

    w = bw_new();
    static const unsigned int vd[] = {1, 8, 20, 21, 22, 23};
    bw_u(w, 1, 3);
    bw_vbits(w, 23, vd, CK_ARRAY_LEN(vd));
    append(s, sizeof s, ".");
    bw_emit(w, s, sizeof s);
    free(w);

    assert_string_equal(
        s, "CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgAAAAAAAA.cAAAKAAAAsSA.QALQAgAEQAUABYAA."
           "IALoEAHg");
    expect_json(s, CORE_DEFAULT_JSON
                "\"vendorConsents\":[],\"vendorLegitimateInterests\":[],"
                "\"publisherRestrictions\":[],"
                "\"vendorsDisclosed\":[1,8,20,21,22,23],\"vendorsAllowed\":[8,20,21,22],"
                "\"publisherConsents\":[1,24],\"publisherLegitimateInterests\":[2],"
                "\"numCustomPurposes\":5,\"publisherCustomConsents\":[1,5],"
                "\"publisherCustomLegitimateInterests\":[3]}");

    ck_tcf *t = decode_ok(s);
    assert_int_equal(t->segments, CK_TCF_SEG_DISCLOSED | CK_TCF_SEG_ALLOWED | CK_TCF_SEG_PUBLISHER);
    assert_int_equal(t->vendors_allowed.max_id, 22);
    assert_int_equal(t->vendors_disclosed.max_id, 23);
    assert_int_equal(t->num_custom_purposes, 5);
    assert_true(ck_tcf__bit(t->custom_consents, 5));
    assert_false(ck_tcf__bit(t->custom_li, 1));
    assert_true(ck_tcf__bit(t->pub_consents, 24));
    ck_tcf__free(t);

    /* The most custom purposes (63), every one consented. */
    s[0] = '\0';
    core_min(s, sizeof s);
    w = bw_new();
    bw_u(w, 3, 3);
    bw_set(w, 0, 24);
    bw_set(w, 0, 24);
    bw_u(w, 63, 6);
    bw_set(w, ~(uint64_t)0 >> 1, 63);
    bw_set(w, ID(63), 63);
    append(s, sizeof s, ".");
    bw_emit(w, s, sizeof s);
    free(w);
    t = decode_ok(s);
    assert_int_equal(t->num_custom_purposes, 63);
    assert_int_equal(t->custom_consents, ~(uint64_t)0 >> 1);
    assert_int_equal(t->custom_li, ID(63));
    ck_tcf__free(t);
}

static void test_times(void **state)
{
    (void)state;
    char text[CK_TS_TEXT_MAX];
    assert_int_equal(ck_tcf__time_text(text, sizeof text, 0), CK_OK);
    assert_string_equal(text, "1970-01-01T00:00:00Z");
    assert_int_equal(ck_tcf__time_text(text, sizeof text, 1), CK_OK);
    assert_string_equal(text, "1970-01-01T00:00:00.1Z");
    assert_int_equal(ck_tcf__time_text(text, sizeof text, T_CREATED), CK_OK);
    assert_string_equal(text, "2024-03-01T12:00:00Z");
    assert_int_equal(ck_tcf__time_text(text, sizeof text, T_CREATED + 9), CK_OK);
    assert_string_equal(text, "2024-03-01T12:00:00.9Z");
    /* The largest 36-bit value: 6871947673.5 s. */
    assert_int_equal(ck_tcf__time_text(text, sizeof text, ((uint64_t)1 << 36) - 1), CK_OK);
    assert_string_equal(text, "2187-10-06T10:21:13.5Z");
    assert_int_equal(ck_tcf__time_text(text, sizeof text, (uint64_t)1 << 36), CK_EINVAL);
    assert_string_equal(text, "");
    assert_int_equal(ck_tcf__time_text(text, 5, 0), CK_EINVAL);

    /* Through the decoder: created with and without a tenth. */
    char s[256] = "";
    bw *w = bw_new();
    core c = core_default();
    c.created = ((uint64_t)1 << 36) - 1;
    c.updated = 0;
    bw_core(w, &c);
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 0, 12);
    bw_emit(w, s, sizeof s);
    free(w);
    ck_tcf *t = decode_ok(s);
    assert_int_equal(t->created, ((uint64_t)1 << 36) - 1);
    assert_int_equal(t->last_updated, 0);
    ck_tcf__free(t);
    char *json = NULL;
    assert_int_equal(ck_tcf_decode_json(&json, s, strlen(s), NULL, 0), CK_OK);
    assert_non_null(strstr(json, "\"created\":\"2187-10-06T10:21:13.5Z\","
                                 "\"lastUpdated\":\"1970-01-01T00:00:00Z\""));
    ck_free(json);
}

/* ------------------------------------------------------------------------ */
/* Refusals                                                                 */
/* ------------------------------------------------------------------------ */

static void test_bad_text(void **state)
{
    (void)state;
    char s[4096] = "";
    core_min(s, sizeof s);
    size_t n = strlen(s);

    expect_fail("", CK_EINVAL, "the TC string is empty");
    expect_fail_n(NULL, 0, CK_EINVAL, "the TC string is empty");

    /* Bad alphabet, at a reported offset. */
    char b[8192];
    memcpy(b, s, n + 1);
    b[10] = '!';
    expect_fail(b, CK_EINVAL, "character at offset 10 is not base64url");
    b[10] = '+';
    expect_fail(b, CK_EINVAL, "character at offset 10 is standard base64, not base64url");
    b[10] = '/';
    expect_fail(b, CK_EINVAL, "character at offset 10 is standard base64");
    b[10] = ' ';
    expect_fail(b, CK_EINVAL, "character at offset 10 is not base64url");
    b[10] = '\0';
    expect_fail_n(b, n, CK_EINVAL, "character at offset 10 is not base64url");
    b[10] = (char)0xc3;
    expect_fail(b, CK_EINVAL, "character at offset 10 is not base64url");

    /* '=' padding (n is 44). */
    assert_int_equal(n, 44);
    snprintf(b, sizeof b, "%s==", s);
    expect_fail(b, CK_EINVAL, "'=' padding at offset 44: TC strings are base64url without padding");
    snprintf(b, sizeof b, "%s.IAAA=", s);
    expect_fail(b, CK_EINVAL, "'=' padding at offset 49");
    /* Whitespace around is the caller's to trim. */
    snprintf(b, sizeof b, "%s\n", s);
    expect_fail(b, CK_EINVAL, "character at offset 44 is not base64url");

    /* Empty segments. */
    snprintf(b, sizeof b, "%s..IAAA", s);
    expect_fail(b, CK_EINVAL, "segment 2 is empty (at offset 45)");
    snprintf(b, sizeof b, ".%s", s);
    expect_fail(b, CK_EINVAL, "segment 1 is empty (at offset 0)");
    snprintf(b, sizeof b, "%s.", s);
    expect_fail(b, CK_EINVAL, "segment 2 is empty (at offset 45)");
    snprintf(b, sizeof b, "%s.IAAA.", s);
    expect_fail(b, CK_EINVAL, "segment 3 is empty (at offset 50)");
    expect_fail(".", CK_EINVAL, "segment 1 is empty (at offset 0)");
    expect_fail("a..b", CK_EINVAL, "segment 2 is empty (at offset 2)");

    /* Too long, and the longest accepted (zero padding up to the limit). */
    char *big = malloc(CK_TCF_TEXT_MAX + 2);
    assert_non_null(big);
    memset(big, 'A', CK_TCF_TEXT_MAX + 1);
    memcpy(big, s, n);
    expect_fail_n(big, CK_TCF_TEXT_MAX + 1, CK_ELIMIT, "the TC string is longer than 65536 bytes");
    char *json = NULL;
    assert_int_equal(ck_tcf_decode_json(&json, big, CK_TCF_TEXT_MAX, NULL, 0), CK_OK);
    ck_free(json);
    free(big);

    /* NULL arguments. */
    char err[CK_ERRMSG_MAX];
    assert_int_equal(ck_tcf_decode_json(NULL, s, n, err, sizeof err), CK_EINVAL);
    assert_string_equal(err, "no output pointer");
    assert_int_equal(ck_tcf__decode(NULL, s, n, NULL, 0), CK_EINVAL);
    expect_fail_n(NULL, 5, CK_EINVAL, "the TC string is empty");
    /* A message is cut to the room given, NUL included. */
    assert_int_equal(ck_tcf_decode_json(&json, "", 0, err, 4), CK_EINVAL);
    assert_string_equal(err, "the");
}

static void test_truncation(void **state)
{
    (void)state;
    char s[4096] = "";
    bw *w = bw_new();
    core c = core_default();
    bw_core(w, &c);
    static const unsigned int vc[] = {1, 3, 64, 65, 500};
    static const unsigned int rli[][2] = {{1, 1}, {128, 130}};
    static const unsigned int r1[][2] = {{10, 12}, {99, 99}};
    bw_vbits(w, 500, vc, CK_ARRAY_LEN(vc));
    bw_vranges(w, 130, rli, CK_ARRAY_LEN(rli));
    bw_u(w, 1, 12);
    bw_u(w, 2, 6);
    bw_u(w, CK_TCF_REQUIRE_CONSENT, 2);
    bw_entries(w, r1, CK_ARRAY_LEN(r1));
    size_t content = w->n;
    bw_emit(w, s, sizeof s);
    free(w);
    size_t n = strlen(s);

    /* Every prefix: refused as truncated, unless all that was cut is zero
     * padding after the content. */
    char err[CK_ERRMSG_MAX];
    for (size_t k = 1; k < n; k++) {
        char *json = NULL;
        int rc = ck_tcf_decode_json(&json, s, k, err, sizeof err);
        if (6 * k >= content) {
            assert_int_equal(rc, CK_OK);
            ck_free(json);
        } else {
            assert_int_equal(rc, CK_EINVAL);
            assert_non_null(strstr(err, "core segment: "));
            assert_true(strstr(err, "truncated at bit") != NULL ||
                        strstr(err, "version 0 is not supported") != NULL);
            assert_null(json);
        }
    }

    /* Named places. Core fields end at bit 213. */
    expect_fail_n(s, 1, CK_EINVAL, "core segment: truncated at bit 6 (Created)");
    expect_fail_n(s, 10, CK_EINVAL, "core segment: truncated at bit 42 (LastUpdated)");
    expect_fail_n(s, 35, CK_EINVAL, "core segment: truncated at bit 201 (PublisherCC)");
    expect_fail_n(s, 36, CK_EINVAL,
                  "core segment: truncated at bit 213 (vendor consents: "
                  "MaxVendorId)");
    expect_fail_n(s, 38, CK_EINVAL,
                  "core segment: truncated at bit 213 (vendor consents: "
                  "MaxVendorId)");
    expect_fail_n(s, 39, CK_EINVAL,
                  "core segment: truncated at bit 230 (vendor consents: "
                  "bitfield of 500 bits, 4 left)");
    /* 213 + 17 + 500 = 730: the LI section; its entries start at 730 + 29:
     * a single id at 759, a range at 776. */
    expect_fail_n(s, 122, CK_EINVAL,
                  "core segment: truncated at bit 730 (vendor legitimate "
                  "interests: MaxVendorId)");
    expect_fail_n(s, 125, CK_EINVAL,
                  "core segment: truncated at bit 747 (vendor legitimate "
                  "interests: NumEntries)");
    expect_fail_n(s, 127, CK_EINVAL,
                  "core segment: truncated at bit 760 (vendor legitimate "
                  "interests: StartOrOnlyVendorId)");
    expect_fail_n(s, 130, CK_EINVAL,
                  "core segment: truncated at bit 777 (vendor legitimate "
                  "interests: StartOrOnlyVendorId)");
    expect_fail_n(s, 133, CK_EINVAL,
                  "core segment: truncated at bit 793 (vendor legitimate "
                  "interests: EndVendorId)");
    /* 776 + 33 = 809: the restrictions. */
    expect_fail_n(s, 135, CK_EINVAL,
                  "core segment: truncated at bit 809 (publisher "
                  "restrictions: NumPubRestrictions)");
    expect_fail_n(s, 137, CK_EINVAL,
                  "core segment: truncated at bit 821 (publisher "
                  "restriction 1: PurposeId)");
    expect_fail_n(s, 138, CK_EINVAL,
                  "core segment: truncated at bit 827 (publisher "
                  "restriction 1: RestrictionType)");
    expect_fail_n(s, 139, CK_EINVAL,
                  "core segment: truncated at bit 829 (publisher "
                  "restriction 1: NumEntries)");
    expect_fail_n(s, 141, CK_EINVAL,
                  "core segment: truncated at bit 842 (publisher restriction 1: "
                  "StartOrOnlyVendorId)");

    /* Optional segments truncated (emitted without padding beyond the
     * next character). */
    char b[4096] = "";
    core_min(b, sizeof b);
    append(b, sizeof b, ".IA");
    expect_fail(b, CK_EINVAL,
                "disclosed vendors segment: truncated at bit 3 (disclosed vendors: "
                "MaxVendorId)");
    b[0] = '\0';
    core_min(b, sizeof b);
    append(b, sizeof b, ".");
    w = bw_new();
    bw_u(w, 1, 3);
    bw_u(w, 5, 16);
    bw_u(w, 0, 1);
    bw_emit_pad(w, b, sizeof b, 6);
    free(w);
    expect_fail(b, CK_EINVAL,
                "disclosed vendors segment: truncated at bit 20 (disclosed vendors: "
                "bitfield of 5 bits, 4 left)");
    b[0] = '\0';
    core_min(b, sizeof b);
    append(b, sizeof b, ".");
    w = bw_new();
    bw_u(w, 2, 3);
    bw_u(w, 0, 16);
    bw_u(w, 1, 1);
    bw_emit_pad(w, b, sizeof b, 6);
    free(w);
    expect_fail(b, CK_EINVAL,
                "allowed vendors segment: truncated at bit 20 (allowed vendors: "
                "NumEntries)");
    b[0] = '\0';
    core_min(b, sizeof b);
    append(b, sizeof b, ".cAAA");
    expect_fail(b, CK_EINVAL, "publisher TC segment: truncated at bit 3 (PubPurposesConsent)");
    b[0] = '\0';
    core_min(b, sizeof b);
    append(b, sizeof b, ".");
    w = bw_new();
    bw_u(w, 3, 3);
    bw_u(w, 0, 48);
    bw_u(w, 63, 6);
    bw_emit_pad(w, b, sizeof b, 6);
    free(w);
    expect_fail(b, CK_EINVAL, "publisher TC segment: truncated at bit 57 (CustomPurposesConsent)");
}

/* A core segment with the default fields and the given tail written by
 * `tail`, into s. */
typedef void (*tail_fn)(bw *w);

static void with_tail(char *s, size_t max, const core *c, tail_fn tail)
{
    bw *w = bw_new();
    bw_core(w, c);
    tail(w);
    s[0] = '\0';
    bw_emit(w, s, max);
    free(w);
}

static void tail_empty(bw *w)
{
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 0, 12);
}

static void tail_restriction_type3(bw *w)
{
    static const unsigned int r[][2] = {{1, 1}};
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 2, 12);
    bw_u(w, 1, 6);
    bw_u(w, 0, 2);
    bw_entries(w, r, 1);
    bw_u(w, 1, 6);
    bw_u(w, 3, 2);
    bw_entries(w, r, 1);
}

static void tail_purpose0(bw *w)
{
    static const unsigned int r[][2] = {{1, 1}};
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 1, 12);
    bw_u(w, 0, 6);
    bw_u(w, 1, 2);
    bw_entries(w, r, 1);
}

static void tail_range_backwards(bw *w)
{
    bw_u(w, 100, 16);
    bw_u(w, 1, 1);
    bw_u(w, 2, 12);
    bw_u(w, 0, 1);
    bw_u(w, 5, 16);
    bw_u(w, 1, 1);
    bw_u(w, 50, 16);
    bw_u(w, 40, 16);
}

static void tail_vendor0(bw *w)
{
    static const unsigned int r[][2] = {{3, 3}, {0, 0}};
    bw_vnone(w);
    bw_vranges(w, 10, r, 2);
}

static void tail_vendor0_range(bw *w)
{
    static const unsigned int r[][2] = {{0, 4}};
    bw_vranges(w, 10, r, 1);
}

static void tail_past_max(bw *w)
{
    static const unsigned int r[][2] = {{3, 3}, {5, 11}};
    bw_vranges(w, 10, r, 2);
}

static void tail_restriction_vendor0(bw *w)
{
    static const unsigned int r[][2] = {{0, 0}};
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 1, 12);
    bw_u(w, 1, 6);
    bw_u(w, 0, 2);
    bw_entries(w, r, 1);
}

static void tail_restriction_backwards(bw *w)
{
    static const unsigned int r[][2] = {{9, 8}};
    bw_vnone(w);
    bw_vnone(w);
    bw_u(w, 1, 12);
    bw_u(w, 1, 6);
    bw_u(w, 0, 2);
    bw_entries(w, r, 1);
}

static void tail_bitfield_long(bw *w)
{
    bw_u(w, 65535, 16);
    bw_u(w, 0, 1);
    bw_u(w, 0xffff, 16);
}

static void tail_trailing_one(bw *w)
{
    tail_empty(w);
    bw_u(w, 0, 5);
    bw_u(w, 1, 1);
}

/* Many ranges over every id: more ids than CK_TCF_IDS_MAX. */
static void tail_too_many_ids(bw *w)
{
    static const unsigned int all[][2] = {{1, 65535}};
    bw_vranges(w, 65535, all, 1);
    bw_vranges(w, 65535, all, 1);
    bw_u(w, 63 * 3, 12);
    for (unsigned int p = 1; p <= 63; p++)
        for (unsigned int type = 0; type < 3; type++) {
            bw_u(w, p, 6);
            bw_u(w, type, 2);
            bw_entries(w, all, 1);
        }
}

/* Just within: 8 full lists of 65535 and 8 more ids. */
static void tail_ids_at_limit(bw *w)
{
    static const unsigned int all[][2] = {{1, 65535}};
    static const unsigned int few[][2] = {{1, 8}};
    bw_vranges(w, 65535, all, 1);
    bw_vranges(w, 65535, all, 1);
    bw_u(w, 7, 12);
    for (unsigned int p = 1; p <= 6; p++) {
        bw_u(w, p, 6);
        bw_u(w, 0, 2);
        bw_entries(w, all, 1);
    }
    bw_u(w, 7, 6);
    bw_u(w, 0, 2);
    bw_entries(w, few, 1);
}

static void test_bad_core(void **state)
{
    (void)state;
    char s[8192];
    core c = core_default();

    c.version = 1;
    with_tail(s, sizeof s, &c, tail_empty);
    expect_fail(s, CK_EINVAL, "core segment: version 1 is not supported");
    c.version = 3;
    with_tail(s, sizeof s, &c, tail_empty);
    expect_fail(s, CK_EINVAL, "core segment: version 3 is not supported");
    c.version = 0;
    with_tail(s, sizeof s, &c, tail_empty);
    expect_fail(s, CK_EINVAL, "core segment: version 0 is not supported");

    c = core_default();
    c.lang = "E[";
    with_tail(s, sizeof s, &c, tail_empty);
    expect_fail(s, CK_EINVAL,
                "core segment: ConsentLanguage: letter value 26 is not A-Z (bit 114)");
    c.lang = "\x7f"
             "A"; /* 63 */
    with_tail(s, sizeof s, &c, tail_empty);
    expect_fail(s, CK_EINVAL,
                "core segment: ConsentLanguage: letter value 62 is not A-Z (bit 108)");
    c = core_default();
    c.cc = "D_";
    with_tail(s, sizeof s, &c, tail_empty);
    expect_fail(s, CK_EINVAL, "core segment: PublisherCC: letter value 30 is not A-Z (bit 207)");

    c = core_default();
    with_tail(s, sizeof s, &c, tail_restriction_type3);
    expect_fail(s, CK_EINVAL,
                "core segment: publisher restriction 2 has restriction type 3, "
                "which is undefined");
    with_tail(s, sizeof s, &c, tail_purpose0);
    expect_fail(s, CK_EINVAL, "core segment: publisher restriction 1 has purpose id 0");
    with_tail(s, sizeof s, &c, tail_range_backwards);
    expect_fail(s, CK_EINVAL,
                "core segment: vendor consents: range entry 2 ends at vendor id 40, "
                "before its start 50");
    with_tail(s, sizeof s, &c, tail_vendor0);
    expect_fail(s, CK_EINVAL,
                "core segment: vendor legitimate interests: range entry 2 names "
                "vendor id 0");
    with_tail(s, sizeof s, &c, tail_vendor0_range);
    expect_fail(s, CK_EINVAL, "core segment: vendor consents: range entry 1 names vendor id 0");
    with_tail(s, sizeof s, &c, tail_past_max);
    expect_fail(s, CK_EINVAL,
                "core segment: vendor consents: range entry 2 goes past MaxVendorId "
                "10 (to 11)");
    with_tail(s, sizeof s, &c, tail_restriction_vendor0);
    expect_fail(s, CK_EINVAL,
                "core segment: publisher restriction 1: range entry 1 names vendor "
                "id 0");
    with_tail(s, sizeof s, &c, tail_restriction_backwards);
    expect_fail(s, CK_EINVAL,
                "core segment: publisher restriction 1: range entry 1 ends at vendor "
                "id 8, before its start 9");
    with_tail(s, sizeof s, &c, tail_bitfield_long);
    expect_fail(s, CK_EINVAL,
                "core segment: truncated at bit 230 (vendor consents: bitfield of "
                "65535 bits, 34 left)");
    with_tail(s, sizeof s, &c, tail_trailing_one);
    expect_fail(s, CK_EINVAL,
                "core segment: non-zero bit 264 after the end of the segment's "
                "content (bit 259)");
    with_tail(s, sizeof s, &c, tail_too_many_ids);
    expect_fail(s, CK_ELIMIT, "the string names more than 524288 vendor ids in all");
    with_tail(s, sizeof s, &c, tail_ids_at_limit);
    ck_tcf *t = decode_ok(s);
    assert_int_equal(t->vendor_consents.n, 65535);
    assert_int_equal(t->nrestrictions, 7);
    assert_int_equal(t->restrictions[6].vendors.n, 8);
    ck_tcf__free(t);
}

static void test_bad_segments(void **state)
{
    (void)state;
    char base[256] = "";
    char s[512];
    core_min(base, sizeof base);

    /* Unknown types 4..7 (the first character's top 3 bits) and a second
     * core (type 0). */
    static const char *const first[] = {"g", "o", "w", "4"};
    for (unsigned int type = 4; type < 8; type++) {
        char want[64];
        snprintf(s, sizeof s, "%s.%sAAA", base, first[type - 4]);
        snprintf(want, sizeof want, "segment 2: unknown segment type %u", type);
        expect_fail(s, CK_EINVAL, want);
    }
    snprintf(s, sizeof s, "%s.AAAA", base);
    expect_fail(s, CK_EINVAL,
                "segment 2: segment type 0 (core) is allowed only as the first "
                "segment");
    snprintf(s, sizeof s, "%s.%s", base, base);
    expect_fail(s, CK_EINVAL, "segment 2: segment type 0 (core)");

    /* Each type at most once. */
    snprintf(s, sizeof s, "%s.IAAA.QAAA.IAAA", base);
    expect_fail(s, CK_EINVAL, "segment 4: a second disclosed vendors segment");
    snprintf(s, sizeof s, "%s.QAAA.QAAA", base);
    expect_fail(s, CK_EINVAL, "segment 3: a second allowed vendors segment");
    snprintf(s, sizeof s, "%s.cAAAAAAAAAAA.cAAAAAAAAAAA", base);
    expect_fail(s, CK_EINVAL, "segment 3: a second publisher TC segment");
    snprintf(s, sizeof s, "%s.IAAA.QAAA.cAAAAAAAAAAA", base);
    ck_tcf *t = decode_ok(s);
    ck_tcf__free(t);

    /* Ranges and non-zero padding inside optional segments. */
    bw *w = bw_new();
    static const unsigned int r[][2] = {{3, 9}};
    bw_u(w, 2, 3);
    bw_vranges(w, 8, r, 1);
    snprintf(s, sizeof s, "%s.", base);
    bw_emit(w, s, sizeof s);
    free(w);
    expect_fail(s, CK_EINVAL,
                "allowed vendors segment: allowed vendors: range entry 1 goes past "
                "MaxVendorId 8 (to 9)");
    snprintf(s, sizeof s, "%s.IAAB", base);
    expect_fail(s, CK_EINVAL,
                "disclosed vendors segment: non-zero bit 23 after the end of the "
                "segment's content (bit 20)");
    snprintf(s, sizeof s, "%s.cAAAAAAAAAAE", base);
    expect_fail(s, CK_EINVAL,
                "publisher TC segment: non-zero bit 69 after the end of the "
                "segment's content (bit 57)");
}

/* Arbitrary changes of valid strings: never a crash or a read past the end
 * (valgrind and the sanitizers watch), always a known status, and a message
 * with every failure. */
static void test_mutations(void **state)
{
    (void)state;
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=";
    const char *seeds[] = {
        ("COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA."
         "IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA"),
        "CP60aCFP60aCKEsAHDFRDXEwAQAAAAAAALLP__wBYFeAV-AAWAAQACQADAAZ__4BBQAgAAwCAAIIAAAA",
        "CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgAAAAAAChIAUACgAMADGCAAgAH_gAAkAKAAIABAALCgAA",
        "CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgAAAAAAAA.cAAAKAAAAsSA.QALQAgAEQAUABYAA.IALoEAHg",
    };
    uint32_t x = 12345;
    char buf[512];
    char err[CK_ERRMSG_MAX];
    for (size_t i = 0; i < 4000; i++) {
        const char *seed = seeds[i % CK_ARRAY_LEN(seeds)];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        unsigned int edits = 1 + i % 4;
        for (unsigned int e = 0; e < edits; e++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % n;
            x = x * 1103515245u + 12345u;
            switch ((x >> 16) % 3) {
            case 0: /* replace a character */
                buf[at] = A[(x >> 4) % (sizeof A - 1)];
                break;
            case 1: /* cut */
                n = at + 1;
                break;
            default: /* flip a bit of the byte */
                buf[at] = (char)(buf[at] ^ (1 << ((x >> 4) % 8)));
                break;
            }
        }
        char *json = NULL;
        int rc = ck_tcf_decode_json(&json, buf, n, err, sizeof err);
        if (rc == CK_OK) {
            assert_non_null(json);
            assert_string_equal(err, "");
            ck_free(json);
        } else {
            assert_true(rc == CK_EINVAL || rc == CK_ELIMIT);
            assert_null(json);
            assert_true(err[0] != '\0');
        }
    }
}

#ifdef CK_FAULT_INJECTION
/* Every allocation of a decode into JSON, failed in turn: CK_ENOMEM and
 * nothing left behind (the sanitizers and valgrind see any leak). */
static void test_fault_injection(void **state)
{
    (void)state;
    const char *s =
        "CP60aCAP63OPtEsAHDENDXEMAKAAAUJAAAYgAAAAAAChIAUACgAMADGCAAgAH_gAAkAKAAIABAALCgAA"
        ".cAAAKAAAAsSA.QALQAgAEQAUABYAA.IALoEAHg";
    int failures = 0;
    for (unsigned long n = 1;; n++) {
        char *json = NULL;
        char err[CK_ERRMSG_MAX];
        ck_fault__arm(n);
        int rc = ck_tcf_decode_json(&json, s, strlen(s), err, sizeof err);
        unsigned long seen = ck_fault__count();
        ck_fault__arm(0);
        if (seen < n) {
            assert_int_equal(rc, CK_OK);
            ck_free(json);
            break;
        }
        assert_int_equal(rc, CK_ENOMEM);
        assert_null(json);
        assert_string_equal(err, "out of memory");
        failures++;
    }
    assert_true(failures >= 8);
}
#endif

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iab_strings),       cmocka_unit_test(test_core_bitfields),
        cmocka_unit_test(test_core_ranges),       cmocka_unit_test(test_restrictions),
        cmocka_unit_test(test_optional_segments), cmocka_unit_test(test_times),
        cmocka_unit_test(test_bad_text),          cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bad_core),          cmocka_unit_test(test_bad_segments),
        cmocka_unit_test(test_mutations),
#ifdef CK_FAULT_INJECTION
        cmocka_unit_test(test_fault_injection),
#endif
    };
    return cmocka_run_group_tests_name("tcf", tests, NULL, NULL);
}
