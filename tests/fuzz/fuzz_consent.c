/*
 * fuzz_consent.c - libFuzzer target for the consent-record decoder (the
 * plaintext of a sealed consent record, as ck_consent__decode reads it
 * after the record authenticated).
 *
 * Properties checked (abort() on violation):
 *  - a failed decode returns CK_EFORMAT (CK_ENOMEM aside), never reads past
 *    the input (ASan), never crashes;
 *  - a decoded record is consistent: a known state (1 to 5, "expired"
 *    included), a purpose name of 1 to 64 bytes, NUL-terminated strings,
 *    counts within their limits, a TC string only of base64url characters
 *    and dots;
 *  - re-encoding the decoded record the way consent.c writes it and
 *    decoding again gives the same record.
 *
 * Build: cmake -DCK_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_consent).
 * Seeds: tests/fuzz/corpus/consent/.
 */
#include "consent.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void pack_opt(ck_mp_writer *w, const char *s)
{
    if (s == NULL)
        msgpack_pack_nil(&w->pk);
    else
        ck_mp_writer__cstr(w, s);
}

static void encode(ck_buf *b, const ck_consent_rec *r)
{
    ck_mp_writer w;
    ck_mp_writer__init(&w, b);
    ck_mp_writer__array(&w, 12);
    ck_mp_writer__u64(&w, 1);
    ck_mp_writer__cstr(&w, r->purpose);
    ck_mp_writer__u64(&w, (uint64_t)r->state);
    ck_mp_writer__i64(&w, r->at);
    ck_mp_writer__i64(&w, r->expires);
    ck_mp_writer__array(&w, r->nfields);
    for (uint32_t i = 0; i < r->nfields; i++)
        ck_mp_writer__cstr(&w, r->fields[i]);
    ck_mp_writer__array(&w, r->nrecipients);
    for (uint32_t i = 0; i < r->nrecipients; i++)
        ck_mp_writer__cstr(&w, r->recipients[i]);
    pack_opt(&w, r->source);
    pack_opt(&w, r->notice);
    pack_opt(&w, r->collector);
    pack_opt(&w, r->tc_string);
    ck_mp_writer__u64(&w, r->recorded_ns);
    if (w.rc != CK_OK)
        abort();
}

static bool same_opt(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same(const ck_consent_rec *a, const ck_consent_rec *b)
{
    if (strcmp(a->purpose, b->purpose) != 0 || a->state != b->state || a->at != b->at ||
        a->expires != b->expires || a->nfields != b->nfields || a->nrecipients != b->nrecipients ||
        !same_opt(a->source, b->source) || !same_opt(a->notice, b->notice) ||
        !same_opt(a->collector, b->collector) || !same_opt(a->tc_string, b->tc_string))
        return false;
    for (uint32_t i = 0; i < a->nfields; i++)
        if (strcmp(a->fields[i], b->fields[i]) != 0)
            return false;
    for (uint32_t i = 0; i < a->nrecipients; i++)
        if (strcmp(a->recipients[i], b->recipients[i]) != 0)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_arena arena = CK_ARENA_INIT;
    ck_consent_rec r;
    int rc = ck_consent__decode(&r, data, size, &arena);
    if (rc != CK_OK) {
        if (rc != CK_EFORMAT && rc != CK_ENOMEM)
            abort();
        ck_arena__free(&arena);
        return 0;
    }
    size_t pl = strlen(r.purpose);
    if (r.state < CK_CONSENT_GRANTED || r.state > CK_CONSENT_EXPIRED || pl == 0 ||
        pl > CK_SCHEMA_NAME_MAX || r.nrecipients > CK_CONSENT_RECIPS_MAX ||
        r.nfields > CK_SCHEMA_FIELDS_MAX)
        abort();
    if (r.tc_string != NULL)
        for (const char *p = r.tc_string; *p; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
                abort();
    ck_buf b = CK_BUF_INIT;
    encode(&b, &r);
    ck_consent_rec r2;
    ck_arena arena2 = CK_ARENA_INIT;
    if (ck_consent__decode(&r2, b.p, b.len, &arena2) != CK_OK || !same(&r, &r2))
        abort();
    ck_buf__free(&b);
    ck_arena__free(&arena2);
    ck_arena__free(&arena);
    return 0;
}
