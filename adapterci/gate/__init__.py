"""The gate: apply the release policy (`gate.rules`) to eval results (`policy.decide`). See docs/gate.md."""
