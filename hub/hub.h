/*
 * hub.h — owns the parts of one running wirehub and their start/stop order.
 */
#ifndef WH_HUB_H
#define WH_HUB_H
#include "config.h"
#include "rules.h"

typedef struct wh_hub wh_hub;

/**
 * Start every part for `cfg` with the loaded `rules`. Returns NULL, having
 * logged why, when a part cannot start. Ownership: takes cfg and rules on
 * success.
 */
wh_hub *wh_hub_start(wh_config *cfg, wh_rules *rules);
/**
 * Reload the rules directory; on any error the running rules stay and each
 * error is logged. Any thread. Returns WH_OK or WH_ERR_CONFIG.
 */
int wh_hub_reload(wh_hub *hub);
/** The gateway's bound port. */
int wh_hub_port(const wh_hub *hub);
/** Stop the parts in reverse order and free everything. NULL-safe. */
void wh_hub_stop(wh_hub **hub);
#endif
