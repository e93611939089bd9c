/*
 * fuzz_tombfile.c - libFuzzer target for the tombstone-file parser
 * (ck_tombfile__parse), what `ckstore restore --tombstones FILE` reads
 * before anything else. The MAC check needs the store's key: it is
 * exercised on the re-serialised file with a throwaway key.
 *
 * Properties (abort() on violation): no read outside the input (ASan); a
 * parse either fails with CK_EFORMAT or CK_EVERSION, or accepts exactly
 * version 1 with a count that accounts for every byte and strictly
 * ascending tags; re-serialising the accepted entries gives the same bytes
 * but the MAC, whose MAC then verifies, and one flipped bit anywhere in it
 * makes either the parse or the MAC check fail.
 * Seeds: tests/fuzz/corpus/tombfile/ (copy them elsewhere before fuzzing).
 */
#include "tomb.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_tombfile f;
    int rc = ck_tombfile__parse(&f, data, size);
    if (rc != CK_OK) {
        if (rc != CK_EFORMAT && rc != CK_EVERSION)
            abort();
        return 0;
    }
    if (f.version != CK_TOMBFILE_VERSION || f.count > CK_TOMBSET_MAX ||
        size !=
            CK_TOMBFILE_HEADER_BYTES + f.count * CK_TOMBFILE_ENTRY_BYTES + CK_TOMBFILE_MAC_BYTES)
        abort();
    ck_tombset s = CK_TOMBSET_INIT;
    for (uint64_t i = 0; i < f.count; i++) {
        ck_tomb t, prev;
        ck_tombfile__entry(&t, &f, i);
        if (i > 0) {
            ck_tombfile__entry(&prev, &f, i - 1);
            if (memcmp(prev.tag, t.tag, CK_TOMB_BYTES) >= 0)
                abort();
        }
        if (ck_tombset__add(&s, t.tag, t.at) != CK_OK)
            abort();
    }
    ck_tombset__seal(&s);
    if (s.n != f.count)
        abort(); /* the tags were distinct: sealing keeps every one */

    static const unsigned char key[CK_KEY_BYTES] = {7};
    ck_buf out = CK_BUF_INIT;
    if (ck_tombfile__serialize(&out, f.store_id, &s, key) != CK_OK || out.len != size ||
        memcmp(out.p, data, size - CK_TOMBFILE_MAC_BYTES) != 0 ||
        ck_tombfile__verify_mac(out.p, out.len, key) != CK_OK)
        abort();
    size_t bit = size > 0 ? (size_t)data[size / 2] * 131u % (size * 8) : 0;
    out.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    ck_tombfile again;
    if (ck_tombfile__parse(&again, out.p, out.len) == CK_OK &&
        ck_tombfile__verify_mac(out.p, out.len, key) == CK_OK)
        abort();
    ck_buf__free(&out);
    ck_tombset__free(&s);
    return 0;
}
