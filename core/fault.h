/*
 * fault.h - fault injection for tests (test-only API, not part of the
 * library's interface).
 *
 * In a build with CK_FAULT_INJECTION defined, every allocation of the library
 * first asks ck_fault__hit() (internal.h) whether it must fail. A test arms
 * the hook to make exactly one chosen call fail, and runs an operation once
 * for every n until the operation makes fewer than n calls:
 *
 *     for (unsigned long n = 1;; n++) {
 *         ck_fault__arm(n);
 *         rc = operation();              // must fail cleanly, or succeed
 *         if (ck_fault__count() < n)     // the fault was never reached
 *             break;
 *     }
 *     ck_fault__arm(0);
 *
 * Without CK_FAULT_INJECTION this header declares nothing.
 */
#ifndef CK_FAULT_H
#define CK_FAULT_H

#ifdef CK_FAULT_INJECTION

/* Arm the hook: the nth call to ck_fault__hit() from now on returns true,
 * once; every other call returns false. 0 disarms. Either way the call
 * counter restarts from 0. */
void ck_fault__arm(unsigned long nth);

/* Number of calls to ck_fault__hit() since the last ck_fault__arm(). */
unsigned long ck_fault__count(void);

#endif /* CK_FAULT_INJECTION */

#endif /* CK_FAULT_H */
