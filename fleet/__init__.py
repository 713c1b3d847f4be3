"""The Signalbox demo fleet: simulated services with real health endpoints, real calls
between them through circuit breakers, and faults injected at runtime. No Django here."""
