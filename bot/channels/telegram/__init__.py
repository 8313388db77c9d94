"""Everything that knows Telegram: the poller and its inbox, updates into use cases, the sender
with its limiter, the staff group (cards, topics, digest)."""
