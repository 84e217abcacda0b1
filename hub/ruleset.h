/*
 * ruleset.h — loads the config's rules directory, checking names against
 * the config's connector instances and their operations.
 */
#ifndef WH_RULESET_H
#define WH_RULESET_H
#include "config.h"
#include "rules.h"

/**
 * Load `cfg->rules_dir`. A missing directory is not an error (zero rules,
 * with a warning in the log); a broken file is (every problem appended to
 * errors, NULL returned). Ownership: returns a new reference.
 */
wh_rules *wh_ruleset_load(const wh_config *cfg, json_t *errors);
#endif
