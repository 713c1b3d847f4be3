"""Debugging without SSH: versioned runtime config per service and environment, debug windows
(a log level raised for a while, reverted by itself and read back), log links."""
