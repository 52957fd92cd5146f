"""Property-based reliability suite (SPEC section 9): random graphs, failures and cancellations."""
