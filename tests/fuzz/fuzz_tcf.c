/*
 * fuzz_tcf.c - libFuzzer target for the IAB TCF v2 TC string decoder.
 *
 * The input is the TC string text. Properties checked (abort() on
 * violation):
 *  - a failed decode returns CK_EINVAL, CK_ELIMIT or CK_ENOMEM, no result
 *    and a non-empty message; ck_tcf_decode_json agrees with ck_tcf__decode;
 *  - a decoded string keeps the invariants tcf.h promises: version 2,
 *    letters A-Z, bitsets within their widths, id lists strictly ascending
 *    in 1..65535 and within MaxVendorId, restrictions ordered and unique
 *    with purpose 1..63 and type 0..2, at most CK_TCF_IDS_MAX ids in all;
 *    ck_tcf__has finds every listed id;
 *  - its JSON text parses, has the 26 keys, and its id lists are the
 *    struct's;
 *  - re-encoded canonically (bitfields, one restriction per purpose and
 *    type) it decodes to the same content.
 *
 * Build: cmake -DCK_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_tcf).
 * Seeds: tests/fuzz/corpus/tcf/ (copy them elsewhere before fuzzing).
 */
#include "tcf.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static size_t check_ids(const ck_tcf_ids *s, bool bounded)
{
    CHECK((s->n == 0) == (s->ids == NULL));
    for (size_t i = 0; i < s->n; i++) {
        CHECK(s->ids[i] >= 1);
        CHECK(i == 0 || s->ids[i - 1] < s->ids[i]);
        CHECK(!bounded || s->ids[i] <= s->max_id);
        CHECK(ck_tcf__has(s, s->ids[i]));
    }
    CHECK(!ck_tcf__has(s, 0));
    return s->n;
}

static void check_letters(const char *l)
{
    CHECK(l[0] >= 'A' && l[0] <= 'Z' && l[1] >= 'A' && l[1] <= 'Z' && l[2] == '\0');
}

static void check_invariants(const ck_tcf *t)
{
    CHECK(t->version == 2);
    CHECK(t->created < ((uint64_t)1 << 36) && t->last_updated < ((uint64_t)1 << 36));
    CHECK(t->cmp_id < 4096 && t->cmp_version < 4096 && t->consent_screen < 64);
    CHECK(t->vendor_list_version < 4096 && t->policy_version < 64);
    check_letters(t->consent_language);
    check_letters(t->publisher_cc);
    CHECK(t->special_feature_optins < (1u << 12));
    CHECK(t->purpose_consents < (1u << 24) && t->purpose_li < (1u << 24));
    CHECK(t->pub_consents < (1u << 24) && t->pub_li < (1u << 24));
    CHECK(t->num_custom_purposes < 64);
    uint64_t custom_mask = ((uint64_t)1 << t->num_custom_purposes) - 1;
    CHECK((t->custom_consents & ~custom_mask) == 0 && (t->custom_li & ~custom_mask) == 0);
    CHECK((t->segments & ~(CK_TCF_SEG_DISCLOSED | CK_TCF_SEG_ALLOWED | CK_TCF_SEG_PUBLISHER)) == 0);
    if (!(t->segments & CK_TCF_SEG_DISCLOSED))
        CHECK(t->vendors_disclosed.n == 0 && t->vendors_disclosed.max_id == 0);
    if (!(t->segments & CK_TCF_SEG_ALLOWED))
        CHECK(t->vendors_allowed.n == 0 && t->vendors_allowed.max_id == 0);
    if (!(t->segments & CK_TCF_SEG_PUBLISHER))
        CHECK(t->pub_consents == 0 && t->pub_li == 0 && t->num_custom_purposes == 0);

    size_t total = check_ids(&t->vendor_consents, true) + check_ids(&t->vendor_li, true) +
                   check_ids(&t->vendors_disclosed, true) + check_ids(&t->vendors_allowed, true);
    CHECK(t->nrestrictions <= CK_TCF_PURPOSE_ID_MAX * 3);
    CHECK((t->nrestrictions == 0) == (t->restrictions == NULL));
    for (size_t i = 0; i < t->nrestrictions; i++) {
        const ck_tcf_restriction *pr = &t->restrictions[i];
        CHECK(pr->purpose_id >= 1 && pr->purpose_id <= CK_TCF_PURPOSE_ID_MAX);
        CHECK(pr->type <= CK_TCF_REQUIRE_LI);
        CHECK(pr->vendors.max_id == 0);
        if (i > 0) {
            const ck_tcf_restriction *q = &t->restrictions[i - 1];
            CHECK(q->purpose_id < pr->purpose_id ||
                  (q->purpose_id == pr->purpose_id && q->type < pr->type));
        }
        total += check_ids(&pr->vendors, false);
        for (size_t k = 0; k < pr->vendors.n; k++)
            CHECK(ck_tcf__restrictions_for(t, pr->purpose_id, pr->vendors.ids[k]) &
                  (1u << pr->type));
    }
    CHECK(total <= CK_TCF_IDS_MAX);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

static void check_json_ids(json_t *a, const ck_tcf_ids *s)
{
    CHECK(json_is_array(a) && json_array_size(a) == s->n);
    for (size_t i = 0; i < s->n; i++)
        CHECK(json_integer_value(json_array_get(a, i)) == s->ids[i]);
}

static void check_json(const char *text, const ck_tcf *t)
{
    json_error_t je;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return; /* out of memory only: checked below that it is valid */
    CHECK(json_is_object(o) && json_object_size(o) == 26);
    check_json_ids(json_object_get(o, "vendorConsents"), &t->vendor_consents);
    check_json_ids(json_object_get(o, "vendorLegitimateInterests"), &t->vendor_li);
    check_json_ids(json_object_get(o, "vendorsDisclosed"), &t->vendors_disclosed);
    check_json_ids(json_object_get(o, "vendorsAllowed"), &t->vendors_allowed);
    json_t *prs = json_object_get(o, "publisherRestrictions");
    CHECK(json_is_array(prs) && json_array_size(prs) == t->nrestrictions);
    for (size_t i = 0; i < t->nrestrictions; i++) {
        json_t *pr = json_array_get(prs, i);
        CHECK(json_integer_value(json_object_get(pr, "purposeId")) ==
              t->restrictions[i].purpose_id);
        CHECK(json_integer_value(json_object_get(pr, "restrictionType")) ==
              t->restrictions[i].type);
        check_json_ids(json_object_get(pr, "vendorIds"), &t->restrictions[i].vendors);
    }
    CHECK(json_is_string(json_object_get(o, "created")));
    CHECK(json_string_length(json_object_get(o, "consentLanguage")) == 2);
    json_decref(o);
}

/* ------------------------------------------------------------------------ */
/* Canonical re-encoding                                                    */
/* ------------------------------------------------------------------------ */

typedef struct bw {
    uint8_t *b;
    size_t n, cap; /* bits */
    bool full;
} bw;

static void bw_u(bw *w, uint64_t v, unsigned int n)
{
    if (w->n + n > w->cap) {
        w->full = true;
        return;
    }
    for (unsigned int i = n; i-- > 0; w->n++)
        if ((v >> i) & 1u)
            w->b[w->n >> 3] |= (uint8_t)(0x80u >> (w->n & 7u));
}

static void bw_set(bw *w, uint64_t set, unsigned int n)
{
    for (unsigned int id = 1; id <= n; id++)
        bw_u(w, ck_tcf__bit(set, id), 1);
}

static void bw_letters(bw *w, const char *l)
{
    bw_u(w, (uint64_t)(l[0] - 'A'), 6);
    bw_u(w, (uint64_t)(l[1] - 'A'), 6);
}

static void bw_bitfield(bw *w, const ck_tcf_ids *s)
{
    bw_u(w, s->max_id, 16);
    bw_u(w, 0, 1);
    size_t k = 0;
    for (unsigned int id = 1; id <= s->max_id; id++) {
        bool on = k < s->n && s->ids[k] == id;
        k += on;
        bw_u(w, on, 1);
    }
}

/* Base64url of w's bits into out (zero-padded to 6 bits), after a '.'
 * when `dot`. Returns the new length, or 0 when out_max is too small. */
static size_t emit(char *out, size_t len, size_t out_max, const bw *w, bool dot)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t chars = (w->n + 5) / 6;
    if (w->full || len + dot + chars >= out_max)
        return 0;
    if (dot)
        out[len++] = '.';
    for (size_t i = 0; i < chars; i++) {
        unsigned int v = 0;
        for (size_t k = 6 * i; k < 6 * i + 6; k++)
            v = v << 1 | (k < w->n ? (w->b[k >> 3] >> (7u - (k & 7u))) & 1u : 0u);
        out[len++] = A[v];
    }
    out[len] = '\0';
    return len;
}

static void bw_reset(bw *w)
{
    memset(w->b, 0, (w->cap + 7) / 8);
    w->n = 0;
    w->full = false;
}

/* The re-encoded text, or 0 when it would not fit (bitfields can be much
 * longer than the ranges they replace). */
static size_t encode(char *out, size_t out_max, const ck_tcf *t, bw *w)
{
    size_t len = 0;
    bw_reset(w);
    bw_u(w, t->version, 6);
    bw_u(w, t->created, 36);
    bw_u(w, t->last_updated, 36);
    bw_u(w, t->cmp_id, 12);
    bw_u(w, t->cmp_version, 12);
    bw_u(w, t->consent_screen, 6);
    bw_letters(w, t->consent_language);
    bw_u(w, t->vendor_list_version, 12);
    bw_u(w, t->policy_version, 6);
    bw_u(w, t->is_service_specific, 1);
    bw_u(w, t->use_non_standard_texts, 1);
    bw_set(w, t->special_feature_optins, 12);
    bw_set(w, t->purpose_consents, 24);
    bw_set(w, t->purpose_li, 24);
    bw_u(w, t->purpose_one_treatment, 1);
    bw_letters(w, t->publisher_cc);
    bw_bitfield(w, &t->vendor_consents);
    bw_bitfield(w, &t->vendor_li);
    bw_u(w, t->nrestrictions, 12);
    for (size_t i = 0; i < t->nrestrictions; i++) {
        const ck_tcf_restriction *pr = &t->restrictions[i];
        const ck_tcf_ids *v = &pr->vendors;
        size_t runs = 0;
        for (size_t k = 0; k < v->n; k++)
            runs += k == 0 || v->ids[k] != v->ids[k - 1] + 1;
        if (runs >= 4096)
            return 0;
        bw_u(w, pr->purpose_id, 6);
        bw_u(w, pr->type, 2);
        bw_u(w, runs, 12);
        for (size_t k = 0; k < v->n;) {
            size_t e = k;
            while (e + 1 < v->n && v->ids[e + 1] == v->ids[e] + 1)
                e++;
            bw_u(w, e > k, 1);
            bw_u(w, v->ids[k], 16);
            if (e > k)
                bw_u(w, v->ids[e], 16);
            k = e + 1;
        }
    }
    if ((len = emit(out, len, out_max, w, false)) == 0)
        return 0;
    if (t->segments & CK_TCF_SEG_DISCLOSED) {
        bw_reset(w);
        bw_u(w, 1, 3);
        bw_bitfield(w, &t->vendors_disclosed);
        if ((len = emit(out, len, out_max, w, true)) == 0)
            return 0;
    }
    if (t->segments & CK_TCF_SEG_ALLOWED) {
        bw_reset(w);
        bw_u(w, 2, 3);
        bw_bitfield(w, &t->vendors_allowed);
        if ((len = emit(out, len, out_max, w, true)) == 0)
            return 0;
    }
    if (t->segments & CK_TCF_SEG_PUBLISHER) {
        bw_reset(w);
        bw_u(w, 3, 3);
        bw_set(w, t->pub_consents, 24);
        bw_set(w, t->pub_li, 24);
        bw_u(w, t->num_custom_purposes, 6);
        bw_set(w, t->custom_consents, t->num_custom_purposes);
        bw_set(w, t->custom_li, t->num_custom_purposes);
        if ((len = emit(out, len, out_max, w, true)) == 0)
            return 0;
    }
    return len;
}

static bool ids_equal(const ck_tcf_ids *a, const ck_tcf_ids *b)
{
    return a->n == b->n && a->max_id == b->max_id &&
           (a->n == 0 || memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0);
}

static bool same(const ck_tcf *a, const ck_tcf *b)
{
    if (a->created != b->created || a->last_updated != b->last_updated || a->cmp_id != b->cmp_id ||
        a->cmp_version != b->cmp_version || a->consent_screen != b->consent_screen ||
        strcmp(a->consent_language, b->consent_language) != 0 ||
        a->vendor_list_version != b->vendor_list_version ||
        a->policy_version != b->policy_version ||
        a->is_service_specific != b->is_service_specific ||
        a->use_non_standard_texts != b->use_non_standard_texts ||
        a->special_feature_optins != b->special_feature_optins ||
        a->purpose_consents != b->purpose_consents || a->purpose_li != b->purpose_li ||
        a->purpose_one_treatment != b->purpose_one_treatment ||
        strcmp(a->publisher_cc, b->publisher_cc) != 0 || a->segments != b->segments ||
        a->pub_consents != b->pub_consents || a->pub_li != b->pub_li ||
        a->num_custom_purposes != b->num_custom_purposes ||
        a->custom_consents != b->custom_consents || a->custom_li != b->custom_li ||
        a->nrestrictions != b->nrestrictions)
        return false;
    if (!ids_equal(&a->vendor_consents, &b->vendor_consents) ||
        !ids_equal(&a->vendor_li, &b->vendor_li) ||
        !ids_equal(&a->vendors_disclosed, &b->vendors_disclosed) ||
        !ids_equal(&a->vendors_allowed, &b->vendors_allowed))
        return false;
    for (size_t i = 0; i < a->nrestrictions; i++)
        if (a->restrictions[i].purpose_id != b->restrictions[i].purpose_id ||
            a->restrictions[i].type != b->restrictions[i].type ||
            !ids_equal(&a->restrictions[i].vendors, &b->restrictions[i].vendors))
            return false;
    return true;
}

static void round_trip(const ck_tcf *t)
{
    /* Four full bitfields and 189 restrictions at most: well within. */
    static uint8_t bits[(8u * CK_TCF_TEXT_MAX) / 8u];
    static char text[CK_TCF_TEXT_MAX + 1];
    bw w = {bits, 0, 6u * CK_TCF_TEXT_MAX, false};
    size_t len = encode(text, sizeof text, t, &w);
    if (len == 0)
        return;
    ck_tcf *again = NULL;
    char err[CK_ERRMSG_MAX];
    int rc = ck_tcf__decode(&again, text, len, err, sizeof err);
    if (rc == CK_ENOMEM)
        return;
    CHECK(rc == CK_OK);
    CHECK(same(t, again));
    ck_tcf__free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_tcf *t = NULL;
    char err[CK_ERRMSG_MAX];
    char err2[CK_ERRMSG_MAX];
    char *json = NULL;
    const char *tc = (const char *)data;

    int rc = ck_tcf__decode(&t, tc, size, err, sizeof err);
    int rc2 = ck_tcf_decode_json(&json, tc, size, err2, sizeof err2);
    if (rc != CK_OK) {
        CHECK(t == NULL);
        CHECK(rc == CK_EINVAL || rc == CK_ELIMIT || rc == CK_ENOMEM);
        CHECK(err[0] != '\0');
        CHECK(rc2 == rc && json == NULL && strcmp(err, err2) == 0);
        return 0;
    }
    CHECK(t != NULL && err[0] == '\0');
    check_invariants(t);
    if (rc2 == CK_OK) {
        CHECK(json != NULL && err2[0] == '\0');
        check_json(json, t);
        json_error_t je;
        json_t *o = json_loads(json, 0, &je);
        CHECK(o != NULL);
        json_decref(o);
    } else {
        CHECK(rc2 == CK_ENOMEM && json == NULL);
    }
    ck_free(json);
    round_trip(t);
    ck_tcf__free(t);
    return 0;
}
