"""Twin models for the differential lookup tests."""
