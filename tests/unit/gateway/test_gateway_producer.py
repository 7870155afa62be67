"""The delivery bookkeeping of one request, without a broker: every record is settled
once, and the request's future resolves when the last one is."""

from __future__ import annotations

import asyncio
import threading

from gateway import Delivery, producer_config
from gateway._producer import _Pending


def test_future_resolves_after_the_last_report_from_another_thread() -> None:
    async def scenario() -> list[Delivery | None]:
        pending = _Pending(asyncio.get_running_loop(), 3)
        pending.settle(1, Delivery(error="queue full"))  # failed before being queued

        def reports() -> None:
            pending.callback(0)(None, _Msg(2, 10))
            assert not pending.future.done()
            pending.callback(2)(None, _Msg(0, 11))
            pending.callback(2)(None, _Msg(0, 99))  # a second report changes nothing

        thread = threading.Thread(target=reports)
        thread.start()
        await asyncio.wait_for(pending.future, 5)
        thread.join()
        return pending.results

    results = asyncio.run(scenario())
    assert results == [Delivery(2, 10), Delivery(error="queue full"), Delivery(0, 11)]


def test_producer_config_is_idempotent_acks_all_and_bounded_by_the_timeout() -> None:
    config = producer_config("k:9092", 2.5)
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["message.timeout.ms"] == 2500
    assert config["linger.ms"] < 10


class _Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o
