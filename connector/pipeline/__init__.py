"""The durable pipeline: job store, worker, retry policy, periodic jobs. Helpdesk-agnostic."""
