/*
 * audit.c - placeholder until the audit module lands (issue 5): nothing is
 * logged yet.
 */
#include "store.h"

int ck_audit__open(ck_store *st, bool create)
{
    (void)create;
    st->audit = NULL;
    return CK_OK;
}

void ck_audit__close(ck_store *st)
{
    st->audit = NULL;
}
