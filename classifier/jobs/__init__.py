"""Classification jobs: inputs, the durable store, the worker and webhooks."""
