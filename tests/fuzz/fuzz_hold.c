/*
 * fuzz_hold.c - libFuzzer target for the legal-hold record decoder (the
 * plaintext of a hold record, as ck_hold_get reads it once it opened
 * under the hold key) and the JSON ck_hold_get prints from it.
 *
 * Properties checked (abort() on violation):
 *  - a failed decode returns CK_EFORMAT (CK_ENOMEM aside), never reads past
 *    the input (ASan), never crashes;
 *  - a decoded hold gives JSON that Jansson reads back (a string value may
 *    hold NUL, written \u0000: JSON_ALLOW_NUL), with no field
 *    named twice, and with exactly the members ck_hold_get documents.
 *
 * Build: cmake -DCK_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_hold).
 * Seeds: tests/fuzz/corpus/hold/.
 */
#include "hold.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const members[] = {"hold",    "purpose", "basis", "description",
                                          "kept_at", "until",   "fields"};
    ck_buf out = CK_BUF_SECURE_INIT;
    ck_arena a = CK_ARENA_INIT;
    int rc =
        ck_hold__plain_json(&out, data, size, 2000000000, "00112233445566778899aabbccddeeff", &a);
    if (rc != CK_OK && rc != CK_EFORMAT && rc != CK_ENOMEM)
        abort();
    if (rc == CK_OK) {
        json_error_t err;
        json_t *j =
            json_loadb((const char *)out.p, out.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (j == NULL || !json_is_object(j) || json_object_size(j) != 7)
            abort();
        for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
            if (json_object_get(j, members[i]) == NULL)
                abort();
        if (!json_is_object(json_object_get(j, "fields")) ||
            json_object_size(json_object_get(j, "fields")) == 0)
            abort();
        json_decref(j);
    }
    ck_buf__free(&out);
    ck_arena__free(&a);
    return 0;
}
