"""Deployment tooling: topology, Envoy config generator, local runner."""
