"""Probes: adapters that run one real tool and return measurements and findings."""
