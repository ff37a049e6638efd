"""The deferred-actions benchmark's models: one target, a million rows."""
