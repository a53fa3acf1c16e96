"""Free loopback ports for the services the tests start."""

from __future__ import annotations

import random

from ingestion.stack.process import port_in_use


def free_port_block(size: int, first: int, last: int, purpose: str) -> int:
    """A base port p with p .. p + size - 1 free, p in first..last (stepping by size): outside the ephemeral range,
    so that no client connection takes it between now and the service's bind. Random, so that two test sessions
    at once rarely pick the same ports. Each kind of test service has its own range."""
    bases = list(range(first, last - size + 2, size))
    random.shuffle(bases)
    for base in bases:
        if not any(port_in_use("127.0.0.1", port) for port in range(base, base + size)):
            return base
    raise RuntimeError(f"no {size} free ports in a row in {first}-{last} for {purpose}")
