/*
 * hub.h — owns the parts of one running wirehub and their start/stop order.
 */
#ifndef WH_HUB_H
#define WH_HUB_H
#include "config.h"

typedef struct wh_hub wh_hub;

/**
 * Start every part for `cfg` (which the hub then owns). Returns NULL, having
 * logged why, when a part cannot start. Ownership: takes cfg on success.
 */
wh_hub *wh_hub_start(wh_config *cfg);
/** The gateway's bound port. */
int wh_hub_port(const wh_hub *hub);
/** Stop the parts in reverse order and free everything. NULL-safe. */
void wh_hub_stop(wh_hub **hub);
#endif
