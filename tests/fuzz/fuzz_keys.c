/*
 * fuzz_keys.c - libFuzzer target for the key-slot file parser
 * (ck_keys__parse), the first thing ck_open reads from disk.
 *
 * Properties (abort() on violation): no read outside the input (ASan); a
 * parse either fails with CK_EFORMAT or CK_EVERSION, or yields 1-2 slots of
 * distinct known types whose passphrase parameters are within the bounds
 * that keep a hostile file from making Argon2id take unbounded memory;
 * re-serialising an accepted file and parsing it again gives the same
 * slots (the MAC check needs the root key and is not exercised here).
 * Seeds: tests/fuzz/corpus/keys/ (copy them elsewhere before fuzzing).
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_slotfile sf;
    int rc = ck_keys__parse(&sf, data, size);
    if (rc != CK_OK) {
        if (rc != CK_EFORMAT && rc != CK_EVERSION)
            abort();
        return 0;
    }
    if (sf.nslots < 1 || sf.nslots > 2 || sf.format < 1 || sf.format > CK_FORMAT_VERSION)
        abort();
    if (sf.nslots == 2 && sf.slots[0].type == sf.slots[1].type)
        abort();
    for (unsigned i = 0; i < sf.nslots; i++) {
        const ck_slot *s = &sf.slots[i];
        if (s->type != CK_SLOT_KEY_FILE && s->type != CK_SLOT_PASSPHRASE)
            abort();
        if (s->type == CK_SLOT_PASSPHRASE &&
            (s->opslimit > 32 || s->memlimit > (4ull << 30) || s->memlimit < 8192))
            abort();
    }
    /* Round trip through the serialiser with a throwaway MAC key. */
    static const unsigned char key[CK_KEY_BYTES] = {1};
    ck_buf out = CK_BUF_INIT;
    ck_slotfile again;
    if (ck_keys__serialize(&out, &sf, key) != CK_OK ||
        ck_keys__parse(&again, out.p, out.len) != CK_OK || again.nslots != sf.nslots ||
        memcmp(again.store_id, sf.store_id, sizeof sf.store_id) != 0 ||
        memcmp(again.slots, sf.slots, sizeof sf.slots[0] * sf.nslots) != 0)
        abort();
    ck_buf__free(&out);
    return 0;
}
