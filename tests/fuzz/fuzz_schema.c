/*
 * fuzz_schema.c - libFuzzer target for the schema loader and record codec.
 *
 * The first byte picks the input: even, the rest is a stored schema record
 * (msgpack, as ck_schema__decode reads it after opening the seal); odd, the
 * rest is a schema file (JSON, as ck_schema__from_json reads it).
 * Properties checked (abort() on violation):
 *  - a failed decode returns CK_EFORMAT (CK_ENOMEM aside) and no snapshot;
 *    a failed load returns CK_EINVAL or CK_ELIMIT with a non-empty message,
 *    never CK_EINTERNAL (the loader's checks and the snapshot's invariants
 *    agree);
 *  - a snapshot's lookups are consistent: every field is found by name and
 *    by id, every purpose by name, every purpose field id resolves, a
 *    hold's fields are the purpose's own (legal_obligation only);
 *  - a snapshot re-encodes, the encoding decodes, and re-encodes to the same
 *    bytes (canonical);
 *  - its JSON text loads back (with it as the base) to the same snapshot.
 *
 * Build: cmake -DCK_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_schema).
 * Seeds: tests/fuzz/corpus/schema/ (copy them elsewhere before fuzzing).
 */
#include "schema.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_lookups(const ck_schema *s)
{
    for (uint32_t i = 0; i < s->nfields; i++) {
        const ck_schema_field *f = &s->fields[i];
        if (ck_schema__field(s, f->name, f->name_len) != f ||
            ck_schema__field_by_id(s, f->id) != f || f->name[f->name_len] != '\0')
            abort();
    }
    for (uint32_t i = 0; i < s->npurposes; i++) {
        const ck_schema_purpose *p = &s->purposes[i];
        if (ck_schema__purpose(s, p->name, p->name_len) != p)
            abort();
        for (uint32_t j = 0; j < p->nfields; j++)
            if (ck_schema__field_by_id(s, p->field_ids[j]) == NULL ||
                ck_schema__purpose_field(p, p->field_ids[j]) != (int)j)
                abort();
        if (p->channel.type != CK_CHANNEL_NONE &&
            ck_schema__purpose_field(p, p->channel.field_id) < 0)
            abort();
        /* A hold keeps some of the purpose's own fields, for a legal
         * obligation only, never beside a TCF mapping. */
        for (uint32_t j = 0; j < p->hold.nfields; j++)
            if (ck_schema__purpose_field(p, p->hold.field_ids[j]) < 0)
                abort();
        if (p->hold.nfields > 0 && (p->basis != CK_BASIS_LEGAL_OBLIGATION || p->tcf.set ||
                                    p->hold.days < 1 || p->hold.days > CK_SCHEMA_HOLD_DAYS_MAX))
            abort();
    }
}

static void round_trip(ck_schema *s)
{
    ck_buf a = CK_BUF_INIT, b = CK_BUF_INIT, j = CK_BUF_INIT;
    ck_schema *d = NULL, *again = NULL;
    char err[CK_ERRMSG_MAX];

    check_lookups(s);
    if (ck_schema__encode(&a, s) != CK_OK)
        goto done; /* out of memory only */
    int rc = ck_schema__decode(&d, a.p, a.len);
    if (rc == CK_ENOMEM)
        goto done;
    if (rc != CK_OK || ck_schema__encode(&b, d) != CK_OK || a.len != b.len ||
        memcmp(a.p, b.p, a.len) != 0)
        abort();

    if (ck_schema__to_json(&j, s) != CK_OK)
        goto done;
    rc = ck_schema__from_json(&again, s, (const char *)j.p, j.len, err, sizeof err);
    if (rc == CK_ENOMEM)
        goto done;
    if (rc != CK_OK)
        abort();
    /* Same content; only the version moved on. */
    again->version = s->version;
    ck_buf__reset(&b);
    if (ck_schema__encode(&b, again) != CK_OK)
        goto done;
    if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
        abort();
done:
    ck_schema__release(d);
    ck_schema__release(again);
    ck_buf__free(&a);
    ck_buf__free(&b);
    ck_buf__free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_schema *s = NULL;
    char err[CK_ERRMSG_MAX];
    int rc;

    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        rc = ck_schema__decode(&s, data + 1, size - 1);
        if (rc != CK_OK) {
            if ((rc != CK_EFORMAT && rc != CK_ENOMEM) || s != NULL)
                abort();
            return 0;
        }
    } else {
        err[0] = '\0';
        rc = ck_schema__from_json(&s, NULL, (const char *)data + 1, size - 1, err, sizeof err);
        if (rc != CK_OK) {
            if (s != NULL || rc == CK_EINTERNAL)
                abort();
            if ((rc == CK_EINVAL || rc == CK_ELIMIT) && err[0] == '\0')
                abort();
            return 0;
        }
    }
    round_trip(s);
    ck_schema__release(s);
    return 0;
}
