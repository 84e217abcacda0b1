/*
 * watch.c — one thread blocked in poll() on an inotify descriptor and an
 * eventfd used to stop it. It knows nothing of rules: it reports that the
 * directory settled after a change.
 *
 * It follows the configured path, not the inode found at start: besides the
 * directory it watches the parent for the directory's name being created,
 * moved or deleted (`mv rules rules.old; mkdir rules`, a deploy tool's
 * atomic rename of a new `rules` symlink), and re-resolves the path then
 * (stat follows a symlink), moving the directory watch to whatever the path
 * now names. A slow re-check (WATCH_RECHECK_MS) catches what no watched
 * directory reports: a swapped ancestor (`current -> releases/N`) or a parent
 * that did not exist yet. While the directory is missing it reports nothing,
 * so the running rules stay; when it is back it reports a change. All state
 * is the thread's after wh_watch_new returns; it must not call into the hub
 * except through fn.
 */
#include "watch.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* How often the path is resolved again without an event (ancestors, a missing parent). */
#define WATCH_RECHECK_MS 2000
/* Reads of the inotify descriptor per wake-up: a flood cannot starve stop. */
#define WATCH_MAX_READS 64

/* IN_MASK_ADD: when the directory and its parent are one inode (`rules -> .`),
 * the second watch must not narrow the first one's mask. */
#define DIR_MASK                                                                                  \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB |           \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD)
#define PARENT_MASK                                                                               \
    (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF |        \
     IN_ONLYDIR | IN_MASK_ADD)
#define GONE_MASK (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)
#define NAME_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)

struct wh_watch {
    int ifd, stopfd;
    int debounce_ms;
    void (*fn)(void *);
    void *ud;
    pthread_t thread;
    int started;
    char *path;   /* as configured, trailing slashes removed */
    char *parent; /* its directory */
    char *name;   /* its last component, matched against the parent's events */
    int pwd, dwd; /* parent and directory watch descriptors; -1 when none */
    dev_t dev;    /* what the directory watch is on */
    ino_t ino;
    int seen;          /* the directory has been watched at least once */
    int parent_warned; /* "cannot watch the parent" was logged (once until it works) */
    int dir_err;       /* errno of the last failed directory watch, logged once */
    int dir_stale;     /* dwd reported gone or moved: never trust its identity again */
};

/* Remove a watch unless the other slot still uses it (same inode, same wd). */
static void drop(wh_watch *w, int wd, int other)
{
    if (wd >= 0 && wd != other) {
        inotify_rm_watch(w->ifd, wd); /* EINVAL when the kernel removed it already */
    }
}

/*
 * Resolve the path again and move the watches to what it names now. Returns 1
 * when the directory watch now covers a directory it did not cover before
 * (appeared, came back, replaced): its contents must be read again. `quiet`
 * at start, where finding the directory is the normal case.
 */
static int resync(wh_watch *w, int quiet)
{
    int pwd = inotify_add_watch(w->ifd, w->parent, PARENT_MASK);
    if (pwd < 0) {
        if (!w->parent_warned) {
            wh_warn("rules", "cannot watch %s for %s: %s (checking again every %d s)", w->parent,
                    w->name, strerror(errno), WATCH_RECHECK_MS / 1000);
            w->parent_warned = 1;
        }
        drop(w, w->pwd, w->dwd);
        w->pwd = -1;
    } else {
        if (pwd != w->pwd) {
            drop(w, w->pwd, w->dwd);
        }
        w->pwd = pwd;
        w->parent_warned = 0;
    }

    /* identity first, watch second: if the path is swapped in between, the identity
     * is stale, so the next event or re-check sees a mismatch and repairs it */
    struct stat st;
    int err = 0, dwd = -1;
    if (stat(w->path, &st) != 0) {
        err = errno;
    } else if (!S_ISDIR(st.st_mode)) {
        err = ENOTDIR;
    } else if (w->dwd >= 0 && !w->dir_stale && st.st_dev == w->dev && st.st_ino == w->ino) {
        return 0; /* unchanged */
    } else if ((dwd = inotify_add_watch(w->ifd, w->path, DIR_MASK)) < 0) {
        err = errno;
    }
    if (dwd != w->dwd) {
        drop(w, w->dwd, w->pwd);
    }
    int had = w->dwd >= 0;
    w->dwd = dwd;
    w->dir_stale = 0;
    if (dwd < 0) {
        if (had) {
            wh_warn("rules", "rules directory %s is gone (%s): keeping the running rules until "
                    "it is back", w->path, strerror(err));
        } else if (err != ENOENT && err != w->dir_err) {
            wh_warn("rules", "cannot watch %s: %s (checking again every %d s)", w->path,
                    strerror(err), WATCH_RECHECK_MS / 1000);
        }
        w->dir_err = err;
        return 0;
    }
    w->dir_err = 0;
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    if (quiet) {
        wh_debug("rules", "watching %s and %s for %s", w->path, w->parent, w->name);
    } else if (had) {
        wh_info("rules", "rules directory %s was replaced: watching the new one", w->path);
    } else if (w->seen) {
        wh_info("rules", "rules directory %s is back: watching it again", w->path);
    } else {
        wh_info("rules", "rules directory %s appeared: watching it", w->path);
    }
    w->seen = 1;
    return 1;
}

/* One buffer of events: sets *changed for a change inside the directory,
 * *moved when the path may name something else now. */
static void scan(wh_watch *w, const char *buf, size_t len, int *changed, int *moved)
{
    size_t off = 0;
    while (off + sizeof(struct inotify_event) <= len) {
        const struct inotify_event *e = (const struct inotify_event *)(buf + off);
        off += sizeof *e + e->len;
        if (off > len) {
            break;
        }
        if (e->mask & IN_Q_OVERFLOW) {
            *moved = *changed = 1; /* events were lost: assume the worst */
            continue;
        }
        if (e->wd == w->pwd) {
            if (e->mask & GONE_MASK) {
                *moved = 1;
            } else if ((e->mask & NAME_MASK) && e->len && strcmp(e->name, w->name) == 0) {
                *moved = 1;
            }
        }
        if (e->wd == w->dwd) { /* not else: the same inode may be both */
            if (e->mask & GONE_MASK) {
                /* a directory made again at once can reuse the inode number */
                w->dir_stale = 1;
                *moved = 1;
            } else {
                *changed = 1; /* the names do not matter: a change reloads the directory */
            }
        }
        /* any other wd is a watch already replaced; its events are stale */
    }
}

static void *watch_main(void *arg)
{
    wh_watch *w = arg;
    int64_t due = -1; /* when the current burst is considered settled */
    int64_t recheck = wh_mono_ms() + WATCH_RECHECK_MS;
    for (;;) {
        struct pollfd p[2] = {{w->ifd, POLLIN, 0}, {w->stopfd, POLLIN, 0}};
        int64_t now = wh_mono_ms();
        int64_t until = due >= 0 && due < recheck ? due : recheck;
        int timeout = until > now ? (int)(until - now) : 0;
        int n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR) {
            wh_error("rules", "watch on %s stopped: %s", w->path, strerror(errno));
            break;
        }
        if (n > 0 && p[1].revents) {
            break;
        }
        int changed = 0, moved = 0;
        if (n > 0 && (p[0].revents & POLLIN)) {
            char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
            ssize_t got;
            for (int i = 0; i < WATCH_MAX_READS && (got = read(w->ifd, buf, sizeof buf)) > 0;
                 i++) {
                scan(w, buf, (size_t)got, &changed, &moved);
            }
        }
        now = wh_mono_ms();
        if (now >= recheck) {
            moved = 1;
        }
        if (moved) {
            changed |= resync(w, 0);
            recheck = now + WATCH_RECHECK_MS;
        }
        if (changed) {
            due = now + w->debounce_ms;
            continue;
        }
        if (due >= 0 && now >= due) {
            due = -1;
            if (w->dwd >= 0) {
                w->fn(w->ud);
            } else {
                wh_debug("rules", "rules directory %s is missing: not reloading", w->path);
            }
        }
    }
    return NULL;
}

/* path → path without trailing slashes, its parent and its last component. */
static int split_path(wh_watch *w, const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    w->path = strndup(dir, len);
    if (!w->path) {
        return -1;
    }
    char *slash = strrchr(w->path, '/');
    if (!slash) {
        w->parent = strdup(".");
        w->name = strdup(w->path);
    } else {
        w->parent = slash == w->path ? strdup("/") : strndup(w->path, (size_t)(slash - w->path));
        w->name = strdup(slash + 1);
    }
    return w->parent && w->name ? 0 : -1;
}

wh_watch *wh_watch_new(const char *dir, int debounce_ms, void (*fn)(void *), void *ud)
{
    wh_watch *w = calloc(1, sizeof *w);
    if (!w) {
        return NULL;
    }
    w->fn = fn;
    w->ud = ud;
    w->debounce_ms = debounce_ms;
    w->pwd = w->dwd = -1;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stopfd = eventfd(0, EFD_CLOEXEC);
    if (w->ifd < 0 || w->stopfd < 0) {
        wh_warn("rules", "cannot watch %s: %s (reload with SIGHUP)", dir, strerror(errno));
        goto fail;
    }
    if (split_path(w, dir) != 0) {
        goto fail;
    }
    resync(w, 1);
    if (w->dwd < 0 && w->dir_err == ENOENT) { /* other errors were logged by resync */
        wh_warn("rules", "no rules directory at %s yet: its rules load when it appears", w->path);
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        wh_warn("rules", "cannot watch %s: no thread (reload with SIGHUP)", w->path);
        goto fail;
    }
    w->started = 1;
    return w;
fail:
    wh_watch_destroy(&w);
    return NULL;
}

void wh_watch_destroy(wh_watch **pw)
{
    wh_watch *w = pw ? *pw : NULL;
    if (!w) {
        return;
    }
    if (w->started) {
        uint64_t one = 1;
        ssize_t r = write(w->stopfd, &one, sizeof one);
        (void)r;
        pthread_join(w->thread, NULL);
    }
    if (w->ifd >= 0) {
        close(w->ifd); /* removes the watches */
    }
    if (w->stopfd >= 0) {
        close(w->stopfd);
    }
    free(w->path);
    free(w->parent);
    free(w->name);
    free(w);
    *pw = NULL;
}
