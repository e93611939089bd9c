/*
 * testutil.h - small helpers shared by the cmocka tests: scratch
 * directories, file digests, key files. Header-only, static functions.
 */
#ifndef CK_TESTUTIL_H
#define CK_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "<dir>/<name>" into a static-free caller buffer. */
static inline void tu_path(char *out, size_t max, const char *dir, const char *name)
{
    int n = snprintf(out, max, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= max)
        abort();
}

/* A fresh scratch directory under $CK_TEST_TMPDIR (or /tmp). The caller
 * frees the string and removes the tree with tu_rmtree. */
static inline char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("CK_TEST_TMPDIR");
    char path[PATH_MAX];
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    mkdir(base, 0700);
    int n = snprintf(path, sizeof path, "%s/ck-%s-XXXXXX", base, tag);
    if (n < 0 || (size_t)n >= sizeof path || mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return strdup(path);
}

static inline void tu_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[PATH_MAX];
            tu_path(p, sizeof p, path, e->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                tu_rmtree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

/* Read a whole file; *len receives its size. Caller frees. */
static inline unsigned char *tu_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
    if (p != NULL && n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return p;
}

static inline void tu_write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n) {
        perror(path);
        abort();
    }
    fchmod(fd, mode);
    close(fd);
}

/* BLAKE2b of every regular file of `dir` (names and contents, in name
 * order), so a test can assert that an operation changed no byte. */
static inline void tu_digest_dir(unsigned char out[32], const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (int i = 0; i < n; i++) {
        char p[PATH_MAX];
        struct stat sb;
        tu_path(p, sizeof p, dir, names[i]->d_name);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
            size_t len;
            unsigned char *data = tu_read_file(p, &len);
            crypto_generichash_update(&h, (const unsigned char *)names[i]->d_name,
                                      strlen(names[i]->d_name) + 1);
            if (data != NULL)
                crypto_generichash_update(&h, data, len);
            free(data);
        }
        free(names[i]);
    }
    free(names);
    crypto_generichash_final(&h, out, 32);
}

/* tu_digest_dir without LMDB's lock files ("*-lock"): opening an
 * environment writes its reader table there, which is no content of the
 * store. For "this left the store as it was" after an open. */
static inline void tu_digest_store(unsigned char out[32], const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        size_t nl = strlen(name);
        char p[PATH_MAX];
        struct stat sb;
        tu_path(p, sizeof p, dir, name);
        if (!(nl > 5 && strcmp(name + nl - 5, "-lock") == 0) && stat(p, &sb) == 0 &&
            S_ISREG(sb.st_mode)) {
            size_t len;
            unsigned char *data = tu_read_file(p, &len);
            crypto_generichash_update(&h, (const unsigned char *)name, nl + 1);
            if (data != NULL)
                crypto_generichash_update(&h, data, len);
            free(data);
        }
        free(names[i]);
    }
    free(names);
    crypto_generichash_final(&h, out, 32);
}

/* Does `needle` occur anywhere in the file at `path`? */
static inline int tu_file_contains(const char *path, const void *needle, size_t n)
{
    size_t len;
    unsigned char *data = tu_read_file(path, &len);
    int found = 0;
    if (data != NULL && n > 0 && len >= n)
        found = memmem(data, len, needle, n) != NULL;
    free(data);
    return found;
}

#endif /* CK_TESTUTIL_H */
