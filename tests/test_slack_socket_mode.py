"""Socket Mode: the same app, reached over a WebSocket instead of HTTP. The socket is
served on loopback by a small server speaking Slack's envelope protocol; the bot's
side is slack-sdk's own Socket Mode client."""
from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from typing import Any

import websockets
from websockets.asyncio.server import serve

from bot.app import build_app
from bot.server import socket_mode
from tests.slack_peer import APP, TEAM, free_port


class LoopbackSocketMode:
    """Accepts one client, says hello, sends envelopes given to it, collects acks."""

    def __init__(self) -> None:
        self.port = free_port()
        self.outgoing: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=test"

    def start(self) -> LoopbackSocketMode:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        self._stop = self._loop.create_future()
        async with serve(self._client, "127.0.0.1", self.port):
            await self._stop

    async def _client(self, socket: Any) -> None:
        await socket.send(json.dumps({"type": "hello", "num_connections": 1,
                                      "connection_info": {"app_id": APP}}))
        self.connected.set()
        receiver = asyncio.ensure_future(self._receive(socket))
        try:
            while not receiver.done():
                try:
                    envelope = self.outgoing.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.01)
                    continue
                await socket.send(json.dumps(envelope))
        finally:
            receiver.cancel()

    async def _receive(self, socket: Any) -> None:
        try:
            async for message in socket:
                self.acks.put(json.loads(message))
        except websockets.ConnectionClosed:
            pass


def test_a_slash_command_over_socket_mode_is_acked_on_the_socket(slack_settings, slack_api, clock):
    from closeloop.bootstrap import build

    socket = LoopbackSocketMode().start()
    slack_api.socket_url = socket.url
    services = build(slack_settings.model_copy(update={"slack_app_token": "xapp-1-test"}), clock)
    handler = socket_mode(build_app(services), services)
    try:
        handler.connect()
        assert socket.connected.wait(10), "the bot never opened the socket"
        assert [c.method for c in slack_api.calls][:1] == ["apps.connections.open"]
        socket.outgoing.put({
            "envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": True,
            "payload": {"team_id": TEAM, "api_app_id": APP, "user_id": "U0REP", "command": "/quote",
                        "text": "help", "channel_id": "C0DEALS", "response_url": slack_api.response_url,
                        "trigger_id": "1.2.3"}})
        deadline = time.monotonic() + 10
        ack = None
        while time.monotonic() < deadline:
            try:
                message = socket.acks.get(timeout=0.2)
            except queue.Empty:
                continue
            if message.get("envelope_id") == "env-1":
                ack = message
                break
        assert ack is not None, "no ack came back over the socket"
        assert "/quote new" in json.dumps(ack.get("payload", {}))  # the usage, answered in the ack
    finally:
        handler.close()
        socket.stop()
        services.close()
