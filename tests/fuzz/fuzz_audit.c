/*
 * fuzz_audit.c - libFuzzer target for the audit entry decoder
 * (ck_audit__decode), which reads frames of audit segments: bytes an
 * attacker with write access to the store directory controls.
 *
 * Properties checked (abort() on violation):
 *  - no read outside the input, no leak, no undefined behaviour (ASan,
 *    UBSan);
 *  - on success: seq >= 1; actor and action present; every string is
 *    NUL-terminated within its declared maximum and holds no control
 *    character; counts within their limits; a subject, when present, is
 *    inside the arena;
 *  - on failure: the record is all zero (no half-filled output);
 *  - decoding is deterministic (a second decode gives the same result).
 *
 * Build: cmake -DCK_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_audit).
 * Seeds: tests/fuzz/corpus/audit/ (real entries: init, release with every
 * key, detail with integers; copy them elsewhere before fuzzing).
 */
#include "audit.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t max)
{
    if (s == NULL)
        abort();
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

static void check_record(const ck_audit_record *r)
{
    if (r->seq == 0)
        abort();
    check_str(r->actor, CK_AUDIT_TEXT_MAX);
    check_str(r->action, CK_AUDIT_NAME_MAX);
    if (r->purpose != NULL)
        check_str(r->purpose, CK_AUDIT_NAME_MAX);
    if (r->recipient != NULL)
        check_str(r->recipient, CK_AUDIT_TEXT_MAX);
    if (r->n_released > CK_AUDIT_LIST_MAX || r->n_withheld > CK_AUDIT_LIST_MAX ||
        r->n_detail > CK_AUDIT_DETAIL_MAX)
        abort();
    for (size_t i = 0; i < r->n_released; i++)
        check_str(r->released[i], CK_AUDIT_NAME_MAX);
    for (size_t i = 0; i < r->n_withheld; i++) {
        check_str(r->withheld[i].field, CK_AUDIT_NAME_MAX);
        check_str(r->withheld[i].reason, CK_AUDIT_NAME_MAX);
    }
    for (size_t i = 0; i < r->n_detail; i++) {
        check_str(r->detail[i].key, CK_AUDIT_NAME_MAX);
        if (r->detail[i].str != NULL)
            check_str(r->detail[i].str, CK_AUDIT_DVAL_MAX);
    }
    if (r->subject != NULL) {
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < CK_AUDIT_PSEUDONYM_BYTES; i++)
            sink ^= r->subject[i]; /* ASan: the 16 bytes are readable */
        (void)sink;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_arena a = CK_ARENA_INIT, b = CK_ARENA_INIT;
    ck_audit_record r, r2;
    static const ck_audit_record zero;
    int rc = ck_audit__decode(&r, data, size, &a);
    if (rc == CK_OK)
        check_record(&r);
    else if (memcmp(&r, &zero, sizeof r) != 0)
        abort();
    int rc2 = ck_audit__decode(&r2, data, size, &b);
    if (rc2 != rc || (rc == CK_OK && (r2.seq != r.seq || r2.time_ms != r.time_ms ||
                                      r2.n_released != r.n_released ||
                                      r2.n_withheld != r.n_withheld || r2.n_detail != r.n_detail)))
        abort();
    ck_arena__free(&a);
    ck_arena__free(&b);
    return 0;
}
