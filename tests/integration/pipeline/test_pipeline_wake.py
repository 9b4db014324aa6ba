"""An idle pipeline wakes when ingestion commits, not at its next poll of the log."""

from __future__ import annotations

import asyncio
import time

from tests.integration.pipeline.conftest import World


async def test_a_commit_wakes_the_idle_pipeline_at_once(world: World) -> None:
    legato = world.legato
    pipeline = legato.pipeline
    # Idle polls so slow that only the commit's wake-up can explain a prompt pick-up.
    pipeline.idle_seconds = (60.0, 60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    try:
        await asyncio.sleep(0.3)  # the empty log is consumed; the pipeline sleeps
        assert pipeline.applied == 0
        began = time.monotonic()
        body = {"userId": "u1", "event": "Signed Up", "messageId": "wake-1"}
        rejected = await legato.ingest.accept(world.workspace_id, "track", body)
        assert rejected == []
        while pipeline.applied < 1:
            assert time.monotonic() - began < 10, "the pipeline slept through the commit"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        legato.pipeline.notify()  # end the 60 s sleep now
        await asyncio.wait_for(task, 10)
        await legato.ingest.close()
