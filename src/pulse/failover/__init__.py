"""Which node runs which resource group, and running it there.

* :mod:`pulse.failover.policy`: the pure scheduler (owner, holder, plan); no I/O, no
  clock;
* :mod:`pulse.failover.manager`: the trio shell that runs the policy's actions
  through the resource agents and plugins.

See docs/failover.md for the rules and docs/architecture.md#layers for what may
import what.
"""
