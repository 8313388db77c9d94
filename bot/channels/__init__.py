"""One adapter per messenger."""
