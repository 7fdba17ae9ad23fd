"""Redis plumbing every part shares: connections, locks, rate-limit leases."""
