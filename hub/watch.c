/*
 * watch.c — one thread blocked in poll() on an inotify descriptor and an
 * eventfd used to stop it. It knows nothing of rules: it reports that the
 * directory settled after a change.
 */
#include "watch.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

struct wh_watch {
    int ifd, stopfd;
    int debounce_ms;
    void (*fn)(void *);
    void *ud;
    pthread_t thread;
    int started;
};

static void *watch_main(void *arg)
{
    wh_watch *w = arg;
    int64_t due = -1; /* when the current burst is considered settled */
    for (;;) {
        struct pollfd p[2] = {{w->ifd, POLLIN, 0}, {w->stopfd, POLLIN, 0}};
        int timeout = -1;
        if (due >= 0) {
            int64_t left = due - wh_mono_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (p[1].revents) {
            break;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
            while (read(w->ifd, buf, sizeof buf) > 0) {
                /* the names do not matter: any change reloads the whole directory */
            }
            due = wh_mono_ms() + w->debounce_ms;
            continue;
        }
        if (due >= 0 && wh_mono_ms() >= due) {
            due = -1;
            w->fn(w->ud);
        }
    }
    return NULL;
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
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stopfd = eventfd(0, EFD_CLOEXEC);
    if (w->ifd < 0 || w->stopfd < 0) {
        wh_warn("rules", "cannot watch %s: %s (reload with SIGHUP)", dir, strerror(errno));
        goto fail;
    }
    if (inotify_add_watch(w->ifd, dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
                              IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        wh_warn("rules", "cannot watch %s: %s (reload with SIGHUP)", dir, strerror(errno));
        goto fail;
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
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
        close(w->ifd);
    }
    if (w->stopfd >= 0) {
        close(w->stopfd);
    }
    free(w);
    *pw = NULL;
}
