"""Heartbeat's node-level protocol, sans I/O: who is alive, which messages arrived.

* :mod:`pulse.protocol.engine`: the :class:`~pulse.protocol.engine.Engine` (envelope,
  sequence numbers, retransmission, ACKs, statuses) that every received message goes
  through;
* :mod:`pulse.protocol.membership`: liveness deadlines of nodes and links;
* :mod:`pulse.protocol.events`: what the engine reports (its outputs);
* :mod:`pulse.protocol.identity`: the generation, UUID and peer files in the state
  directory.

Nothing here imports from :mod:`pulse.failover`, :mod:`pulse.plugin`, the resources
or the daemon (docs/architecture.md#layers; tests/unit/test_import_layers.py).
"""
