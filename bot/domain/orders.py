"""The shop's orders, as far as a complaint needs them: what was ordered (product, batch), when
it was delivered, from which store and region, with the shop's notes. A ticket shows them
beside the complaint (the evidence chain)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

FIELDS = ("product", "batch", "delivered_at", "store", "region", "notes")


@dataclass(frozen=True)
class Order:
    order_number: str
    product: str | None = None
    batch: str | None = None
    delivered_at: str | None = None  # as the shop wrote it
    store: str | None = None
    region: str | None = None
    notes: str | None = None

    def facts(self) -> dict[str, str]:
        """What the card shows: the facts the shop gave, by name."""
        return {k: v for k, v in asdict(self).items() if k in FIELDS and v}


def normalise_number(text: str) -> str:
    """Order numbers compare without spaces and case (customers type them as they like)."""
    return "".join(text.split()).upper()
