"""Which LSN may be confirmed to PostgreSQL: the no-loss rule of the capture.

The capture publishes the events of each transaction as it decodes them and
gets Kafka's acknowledgements later, out of band. A transaction's end LSN is
*flushable* once Kafka has acknowledged every event of it **and of every
transaction before it**; only then may the standby status update report it as
flushed, so that after a crash PostgreSQL replays from there. A failed
delivery poisons the tracker: nothing after it is ever confirmed. A held
transaction (:meth:`FlushTracker.hold`: a table whose schema change the
registry refused, whose changes from there on are left in the slot) caps the
position below it for the rest of the run, while the transactions after it
still settle as usual.

Delivery callbacks run inside ``Producer.poll()`` / ``flush()`` on the
capture's own thread, so no locking is needed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class PendingTransaction:
    """Events of one source transaction that Kafka has not yet acknowledged."""

    end_lsn: int = 0
    pending: int = 0
    sealed: bool = False
    events: int = field(default=0)
    #: not to be confirmed, nor anything after it (see FlushTracker.hold)
    held: bool = False


class DeliveryFailed(RuntimeError):
    """Kafka refused an event for good; the capture must stop without confirming it."""


class FlushTracker:
    def __init__(self, start_lsn: int = 0) -> None:
        self._open: deque[PendingTransaction] = deque()
        self._flushable = start_lsn
        self.failure: str | None = None
        #: the position the tracker may not pass once a held transaction settled (None: no hold)
        self._ceiling: int | None = None

    def begin(self) -> PendingTransaction:
        txn = PendingTransaction()
        self._open.append(txn)
        return txn

    def sent(self, txn: PendingTransaction) -> None:
        txn.pending += 1
        txn.events += 1

    def delivered(self, txn: PendingTransaction, error: object | None) -> None:
        if error is not None:
            self.failure = str(error)
            return
        txn.pending -= 1
        self._advance()

    def seal(self, txn: PendingTransaction, end_lsn: int) -> None:
        """The transaction's commit was decoded: no more events, and its end LSN is known."""
        txn.end_lsn = end_lsn
        txn.sealed = True
        self._advance()

    def settled(self) -> None:
        """A sealed transaction's last event was acknowledged (its ``pending`` is 0; counted by the caller)."""
        self._advance()

    def discard(self, txn: PendingTransaction) -> None:
        """An aborted streamed transaction: its sent events are compensated elsewhere."""
        txn.sealed = True
        self._advance()

    def hold(self, txn: PendingTransaction | None) -> None:
        """Never confirm ``txn`` (the transaction being decoded) nor anything after it, for as long as this tracker
        lives: some of its changes were left unpublished, and must come again from the slot on the next run. With
        no transaction open, the position stops where it stands."""
        if txn is None:
            if self._ceiling is None:
                self._ceiling = self._flushable
            return
        txn.held = True
        self._advance()

    @property
    def acknowledged(self) -> int:
        """The end LSN of the last transaction Kafka acknowledged in full, with every one before it, a hold or not:
        what :attr:`flushable` would be without the hold."""
        if self.failure is not None:
            raise DeliveryFailed(self.failure)
        return self._flushable

    @property
    def held(self) -> bool:
        """A hold was asked for (:meth:`hold`): the position will not pass it in this run."""
        return self._ceiling is not None or any(t.held for t in self._open)

    def idle(self, lsn: int) -> None:
        """No transaction is open and the server says the WAL reached ``lsn``: an idle source.

        With nothing in flight, confirming the server's position lets the slot
        advance past WAL that holds no change for us (heartbeats).
        """
        if not self._open and self.failure is None and lsn > self._flushable:
            self._flushable = lsn

    def _advance(self) -> None:
        if self.failure is not None:
            return
        while self._open and self._open[0].sealed and self._open[0].pending == 0:
            done = self._open.popleft()
            if done.held and self._ceiling is None:
                self._ceiling = self._flushable
            if done.end_lsn > self._flushable:
                self._flushable = done.end_lsn

    @property
    def flushable(self) -> int:
        if self.failure is not None:
            raise DeliveryFailed(self.failure)
        if self._ceiling is not None and self._ceiling < self._flushable:
            return self._ceiling
        return self._flushable

    @property
    def in_flight(self) -> int:
        return sum(t.pending for t in self._open)
