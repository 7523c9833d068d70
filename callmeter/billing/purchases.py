"""The arithmetic of bought coins taken back (docs/payments.md): pure, no I/O.

A pack credits ``coins + bonus_coins``. A refund of part of its price takes back the same
part of those coins, rounded down (a client is never charged a coin more than the refund
covers), and a full refund takes back all of them. Refunds arrive as a *cumulative*
refunded amount, so the target is recomputed from it and only the difference moves: an
event seen twice, or two events out of order, move nothing more.

What is taken back comes first from the wallet's available coins; what the client already
spent (coins in a host's earnings and the platform's revenue by now) is the platform's
loss, posted from the ``losses`` account.
"""

from __future__ import annotations

from dataclasses import dataclass


def reversal_target(total_coins: int, price: int, refunded: int) -> int:
    """The coins to have taken back once ``refunded`` of ``price`` (minor units) has been
    refunded: proportional, rounded down; all of them for a full refund."""
    if total_coins < 0 or price <= 0:
        raise ValueError("a pack has coins and a price")
    refunded = min(max(refunded, 0), price)
    return total_coins * refunded // price


@dataclass(frozen=True, slots=True)
class Reversal:
    """Taking ``due`` coins back: ``recovered`` from the wallet, ``shortfall`` from losses."""

    due: int
    recovered: int
    shortfall: int


def reverse(due: int, available: int) -> Reversal:
    """Take ``due`` coins back from a wallet with ``available`` coins."""
    due = max(due, 0)
    recovered = min(due, max(available, 0))
    return Reversal(due=due, recovered=recovered, shortfall=due - recovered)
