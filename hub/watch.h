/*
 * watch.h — watches a directory with inotify and calls back once a burst of
 * changes has settled (editors' atomic renames, `git pull`). It follows the
 * path, not the inode: a directory replaced, a symlink swapped or a directory
 * that appears later is watched as soon as the path names it.
 */
#ifndef WH_WATCH_H
#define WH_WATCH_H

typedef struct wh_watch wh_watch;

/**
 * Watch the directory at path `dir` (a symlink is followed); after a change,
 * wait until `debounce_ms` pass with no further change, then call fn(ud) on
 * the watcher's thread. "A change" is a file changing inside it, or the path
 * naming another directory than before (replaced, symlink swapped, created
 * after start, back after being removed). While nothing is at the path, fn is
 * not called (logged once when it disappears; the caller's rules stay), and
 * the watch resumes by itself when it reappears. The parent directory is
 * watched for the name; ancestors are re-checked every 2 s. A missing
 * directory or parent is not an error. Returns NULL (logged) only when
 * inotify, an eventfd or the thread cannot be had. Ownership: borrows dir
 * (copied); ud is borrowed until wh_watch_destroy returns.
 */
wh_watch *wh_watch_new(const char *dir, int debounce_ms, void (*fn)(void *ud), void *ud);
/** Stop the thread and free. NULL-safe. */
void wh_watch_destroy(wh_watch **w);
#endif
