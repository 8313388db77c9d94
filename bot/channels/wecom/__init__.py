"""Everything that knows WeCom: the customer-service (kf) API, the callback crypto, the 48-hour
window."""
