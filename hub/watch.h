/*
 * watch.h — watches a directory with inotify and calls back once a burst of
 * changes has settled (editors' atomic renames, `git pull`).
 */
#ifndef WH_WATCH_H
#define WH_WATCH_H

typedef struct wh_watch wh_watch;

/**
 * Watch `dir`; after a change, wait until `debounce_ms` pass with no further
 * change, then call fn(ud) on the watcher's thread. Returns NULL (logged) when
 * the directory cannot be watched. Ownership: borrows dir (copied).
 */
wh_watch *wh_watch_new(const char *dir, int debounce_ms, void (*fn)(void *ud), void *ud);
/** Stop the thread and free. NULL-safe. */
void wh_watch_destroy(wh_watch **w);
#endif
