"""The local control socket: `pulsectl` talks to the daemon through it."""
