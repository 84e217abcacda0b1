/*
 * alexa_notify.h — private to the Alexa connector: the `notify` operation
 * (Alexa Proactive Events API, AMAZON.MessageAlert.Activated) and the
 * client-credentials access token it shares between calls. Not part of the
 * SDK; nothing outside connectors/alexa includes it.
 *
 * Threads: ax_notifier_new() and ax_notifier_destroy() run on the main thread
 * (the connector's init and destroy); ax_notify_start() and every HTTP
 * callback it causes run on the delivery thread, so the token cache needs no
 * lock.
 */
#ifndef WH_ALEXA_NOTIFY_H
#define WH_ALEXA_NOTIFY_H

#include <wirehub/connector.h>

#include <stddef.h>

typedef struct ax_notifier ax_notifier;

/** Default token URL (Login with Amazon) and Proactive Events host (North America). */
#define AX_AUTH_URL_DEFAULT "https://api.amazon.com/auth/o2/token"
#define AX_EVENTS_BASE_DEFAULT "https://api.amazonalexa.com"
#define AX_EXPIRY_S_DEFAULT 3600
#define AX_EXPIRY_S_MIN 300   /* Amazon: expiryTime at least 5 minutes ahead … */
#define AX_EXPIRY_S_MAX 86400 /* … and at most 24 hours */

/**
 * The notifier for one instance, from its config keys `client_id`,
 * `client_secret`, `auth_url`, `events_api_base`, `stage` and `expiry_s`.
 * Without client credentials the notifier exists but every notify call fails
 * with a message saying what to configure.
 * Returns WH_OK and sets *out, or WH_ERR_CONFIG with the reason in `err`
 * (never a secret), or WH_ERR_NOMEM. Logs a warning when credentials or
 * tokens would travel over plain http://.
 * Ownership: borrows host, inst and config (host and inst must outlive the
 * notifier); *out is the caller's, freed with ax_notifier_destroy().
 */
int ax_notifier_new(const wh_host *host, wh_instance *inst, const json_t *config, ax_notifier **out,
                    char *err, size_t err_size);

/**
 * Free the notifier (NULL-safe). Only when no call of it is in flight (the
 * host calls destroy() after every HTTP callback has run).
 */
void ax_notifier_destroy(ax_notifier *n);

/**
 * Start one `notify` call: check the arguments (`user`, `creator`, `count`,
 * `urgency`), get the shared access token (one token request however many
 * calls wait for it), POST the event, and complete the call with
 * {"status": <HTTP status>, "reference_id": "wh-<sha256 of the call key>"}.
 * A 401 refreshes the token and resends once within the call; 408, 429, 5xx
 * and transport failures are RETRY (Retry-After honoured); other answers FAIL.
 * Always returns WH_OK: every failure completes the call.
 * Ownership: borrows n, args; the call is completed exactly once.
 * Thread: delivery.
 */
int ax_notify_start(ax_notifier *n, wh_call *call, const json_t *args);

/** The argument table of `notify` (for the operations table). */
extern const wh_option ax_notify_args[];

#endif
