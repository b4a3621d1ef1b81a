"""Pure SLA policy: tiers, levels, business-time calendars, classification, decisions.

Nothing in this package performs I/O or reads the clock: callers pass ``now`` and compiled
mappings in.
"""
