"""One probe run on demand ("test it now"): a spec not yet saved, against one instance.

The probe goes through the scheduler's own probe code and the outbound guard, in a loop
and connection pool of its own, so a web process never shares the scheduler's loop (two
requests at once would otherwise both try to run it) and nothing is written: no check
state, no transition, no rollup. The result is only shown.
"""

from __future__ import annotations

from catalog.models import Instance
from health.models import CheckSpec
from health.probes import ProbeResult
from health.probes.runtime import ProbeRuntime
from health.specs import ProbeSpec


def probe_once(spec: CheckSpec, instance: Instance) -> ProbeResult:
    """Probe `instance` once with `spec` (saved or not), at the spec's port or the instance's."""
    probe_spec = ProbeSpec.from_model(spec)
    runtime = ProbeRuntime(concurrency=1)
    try:
        return runtime.run(
            runtime.probe(probe_spec, instance.host, probe_spec.port or instance.port)
        )
    except Exception as exc:  # a probe bug shows as a failed test, as in the scheduler
        return ProbeResult.failed(f"probe error: {type(exc).__name__}", 0.0)
    finally:
        runtime.close()
