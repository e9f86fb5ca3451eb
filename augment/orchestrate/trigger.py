"""`RayJobTrigger`: follows one Ray job from the triggerer until it ends, streaming its logs into the task log.

While a `RayJobOperator` task is deferred no worker slot is held: this trigger polls the job's status every
`poll_interval` seconds (at once when the log stream closes, which Ray does as the job ends) and tails the job's logs
over the job server's websocket, writing each line to the task
log. It fires one event when the job ends ({submission_id, status, message}), or, past `deadline` (epoch
seconds), stops the job and fires status TIMEOUT. When a user marks the deferred task failed or clears it,
`on_kill` stops the Ray job; a triggerer restart does not (the next triggerer picks the job up again and
re-streams its log from the start).

The non-deferrable operator runs the same trigger inline, so both modes share one polling loop.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from augment.orchestrate.ray_jobs import DEFAULT_CONN_ID, endpoint_from_connection, make_client
from augment.orchestrate.submission import TERMINAL

TIMEOUT = "TIMEOUT"
LOG_PREFIX = "[ray] "
STOP_GRACE_SECONDS = 30.0  # how long a timed-out job may take to stop before the event fires anyway
LOG_FLUSH_SECONDS = 10.0  # how long the log tail may lag behind the job's end


class RayJobTrigger(BaseTrigger):
    def __init__(
        self,
        submission_id: str,
        ray_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        stream_logs: bool = True,
    ) -> None:
        super().__init__()
        self.submission_id = submission_id
        self.ray_conn_id = ray_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.stream_logs = stream_logs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "submission_id": self.submission_id,
                "ray_conn_id": self.ray_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "stream_logs": self.stream_logs,
            },
        )

    async def _client(self):
        conn = await BaseHook.aget_connection(self.ray_conn_id)
        # The client checks the server version on creation: a blocking request, kept off the event loop.
        return await asyncio.to_thread(make_client, endpoint_from_connection(conn))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await self._client()
        streamed = {"chars": 0, "complete": False}
        tail = asyncio.create_task(self._tail(client, streamed)) if self.stream_logs else None
        try:
            # 1. Poll until the job ends or its deadline passes.
            status, message = await self._status(client)
            while status not in TERMINAL:
                if self.deadline is not None and time.time() >= self.deadline:
                    status, message = await self._stop_for_timeout(client)
                    break
                await self._pause(tail, streamed)
                status, message = await self._status(client)
            # 2. Let the tail catch up with the job's last lines; print whatever it could not deliver.
            if tail is not None:
                done, _ = await asyncio.wait({tail}, timeout=LOG_FLUSH_SECONDS)
                if not done:
                    tail.cancel()
                    await asyncio.gather(tail, return_exceptions=True)
                if not streamed["complete"]:
                    await self._print_rest(client, streamed)
            yield TriggerEvent({"submission_id": self.submission_id, "status": status, "message": message})
        finally:
            if tail is not None and not tail.done():
                tail.cancel()

    async def _pause(self, tail, streamed: dict) -> None:
        """One poll interval, cut short when the log stream closes: Ray closes it when the job ends, so the task
        learns of the end at once instead of up to `poll_interval` later."""
        if tail is not None and not tail.done():
            await asyncio.wait({tail}, timeout=self.poll_interval)
        elif streamed["complete"]:  # the stream has ended: the terminal status is a moment away
            await asyncio.sleep(min(self.poll_interval, 1.0))
        else:
            await asyncio.sleep(self.poll_interval)

    async def _status(self, client) -> tuple[str, str]:
        info = await asyncio.to_thread(client.get_job_info, self.submission_id)
        return str(info.status), info.message or ""

    async def _stop_for_timeout(self, client) -> tuple[str, str]:
        self.log.error("Ray job %s passed its timeout; stopping it", self.submission_id)
        await asyncio.to_thread(client.stop_job, self.submission_id)
        give_up = time.time() + STOP_GRACE_SECONDS
        status, _ = await self._status(client)
        while status not in TERMINAL and time.time() < give_up:
            await asyncio.sleep(1.0)
            status, _ = await self._status(client)
        return TIMEOUT, f"job timeout reached; the Ray job was stopped (status {status})"

    async def _tail(self, client, streamed: dict) -> None:
        try:
            async for chunk in client.tail_job_logs(self.submission_id):
                streamed["chars"] += len(chunk)
                for line in chunk.splitlines():
                    self.log.info("%s%s", LOG_PREFIX, line)
            streamed["complete"] = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a proxy without websockets, a restarted head: fall back to the full log
            self.log.warning("log streaming of Ray job %s stopped (%s); the rest follows when it ends",
                             self.submission_id, exc)

    async def _print_rest(self, client, streamed: dict) -> None:
        try:
            text = await asyncio.to_thread(client.get_job_logs, self.submission_id)
        except Exception as exc:
            self.log.warning("could not read the log of Ray job %s: %s", self.submission_id, exc)
            return
        for line in text[streamed["chars"]:].splitlines():
            self.log.info("%s%s", LOG_PREFIX, line)
        streamed["chars"] = len(text)

    async def on_kill(self) -> None:
        """The user killed the deferred task: stop its Ray job too."""
        client = await self._client()
        stopped = await asyncio.to_thread(client.stop_job, self.submission_id)
        self.log.info("stopped Ray job %s: %s", self.submission_id, stopped)
