"""The benchmark's models: a crossfk pair and the same pair in one database."""
