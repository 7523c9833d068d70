"""Media: LiveKit rooms, tokens, webhooks, server-side disconnect and reconciliation."""
