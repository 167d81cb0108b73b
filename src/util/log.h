/* log — structured, line-oriented logs on stderr: one line per record,
 * `ts=... level=... comp=... msg="..." key=value...`. */
#ifndef FERRY_UTIL_LOG_H
#define FERRY_UTIL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the minimum level written (default LOG_INFO; FERRY_LOG=debug too). */
void log_set_level(enum log_level lvl);
/* Writes one record for component comp; fmt follows printf rules and should
 * produce `msg="..." k=v` text. */
void log_write(enum log_level lvl, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(comp, ...) log_write(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_write(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_write(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_write(LOG_ERROR, comp, __VA_ARGS__)

#endif
