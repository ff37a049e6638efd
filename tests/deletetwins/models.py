"""Twin models for the differential delete tests."""
