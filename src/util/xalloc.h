/* xalloc — the one allocation wrapper. Every function aborts the process on
 * out-of-memory (like Redis zmalloc): errors are for bad input and limits,
 * not for malloc. Memory from these is released with free(). */
#ifndef FERRY_UTIL_XALLOC_H
#define FERRY_UTIL_XALLOC_H
#include <stddef.h>

/* Returns n bytes of uninitialised memory; never NULL. Caller frees. */
void *xmalloc(size_t n);
/* Returns zeroed memory for nmemb*size bytes (overflow aborts); caller frees. */
void *xcalloc(size_t nmemb, size_t size);
/* Resizes p to n bytes; never NULL. On return p is no longer valid. */
void *xrealloc(void *p, size_t n);
/* Returns a copy of s; caller frees. */
char *xstrdup(const char *s);
/* Returns a NUL-terminated copy of the first n bytes of s; caller frees. */
char *xstrndup(const char *s, size_t n);
/* Returns a newly formatted string (printf rules); caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
