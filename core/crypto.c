/*
 * crypto.c - the few primitives ckstore uses, all from libsodium:
 * XChaCha20-Poly1305-IETF for sealing, keyed BLAKE2b for MACs, blind indexes
 * and pseudonyms, crypto_kdf for subkeys. Nothing here is home-made.
 */
#include "store.h"

#include <string.h>

/* The crypto_kdf context: exactly crypto_kdf_CONTEXTBYTES (8) bytes. */
static const char KDF_CONTEXT[crypto_kdf_CONTEXTBYTES] = {'c', 'k', 's', 't', 'o', 'r', 'e', '1'};

_Static_assert(crypto_kdf_CONTEXTBYTES == 8, "kdf context size");
_Static_assert(crypto_kdf_KEYBYTES == CK_KEY_BYTES, "kdf key size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == CK_KEY_BYTES, "aead key size");

void ck_crypto__derive_all(ck_keys *keys)
{
    /* Slot 0 is never used, so that a zero subkey id cannot be mistaken for
     * a real one; keep it zero. */
    sodium_memzero(keys->sub[0], CK_KEY_BYTES);
    for (unsigned id = 1; id < CK_SUBKEY_COUNT_; id++)
        crypto_kdf_derive_from_key(keys->sub[id], CK_KEY_BYTES, id, KDF_CONTEXT, keys->root);
}

void ck_crypto__seal(uint8_t *out, const uint8_t *pt, size_t pt_len, const uint8_t *aad,
                     size_t aad_len, const unsigned char key[CK_KEY_BYTES])
{
    /* A random 192-bit nonce per message: XChaCha20's nonce is long enough
     * that random nonces never collide in practice, so no counter state has
     * to survive crashes or be shared between processes. */
    randombytes_buf(out, CK_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + CK_NONCE_BYTES, NULL, pt, pt_len, aad, aad_len,
                                               NULL, out, key);
}

void ck_crypto__seal_st(uint8_t *out, ck_store *st, const uint8_t *pt, size_t pt_len,
                        const uint8_t *aad, size_t aad_len, const unsigned char key[CK_KEY_BYTES])
{
    /* Nonce = a random 128-bit prefix drawn when the store was opened ||
     * a 64-bit counter of this handle. Unique per handle by the counter,
     * across handles and processes by the prefix (a collision needs two
     * equal 128-bit random draws), with no state to persist - and one
     * getrandom() per open instead of one per record. */
    uint64_t n = __atomic_fetch_add(&st->nonce_ctr, 1, __ATOMIC_RELAXED);
    memcpy(out, st->nonce_prefix, sizeof st->nonce_prefix);
    ck_be64_put(out + sizeof st->nonce_prefix, n);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + CK_NONCE_BYTES, NULL, pt, pt_len, aad, aad_len,
                                               NULL, out, key);
}

int ck_crypto__open(uint8_t *pt, const uint8_t *ct, size_t ct_len, const uint8_t *aad,
                    size_t aad_len, const unsigned char key[CK_KEY_BYTES])
{
    if (ct_len < CK_SEAL_OVERHEAD)
        return CK_EFORMAT;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct + CK_NONCE_BYTES,
                                                   ct_len - CK_NONCE_BYTES, aad, aad_len, ct,
                                                   key) != 0)
        return CK_EINTEGRITY;
    return CK_OK;
}

void ck_crypto__mac(uint8_t *out, size_t out_len, const void *msg, size_t n,
                    const unsigned char key[CK_KEY_BYTES])
{
    crypto_generichash(out, out_len, msg, n, key, CK_KEY_BYTES);
}
