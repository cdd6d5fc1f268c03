"""python classifier_server.py [--config configs/topics.json] [--backend local|vllm-server] ...

The HTTP service (POST /classify, GET /, /health, /ready, /capabilities, /stats, /metrics, /docs).
Every flag has an environment twin (--port <-> CLASSIFIER_PORT); `--help` lists them.
With no flags and no GPU it serves the embedded default model on vLLM's CPU engine.
SIGTERM stops taking connections, lets queued and running requests finish (up to
--drain-timeout, then answers each text left with an error), and exits 0.
"""
from __future__ import annotations

import asyncio
import errno
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import click
import uvicorn
from fastapi import FastAPI

from classifier.api import create_app
from classifier.cli import USER_ERRORS, build_settings, describe, engine_options, load_taxonomies, option
from classifier.llm.pool import ProcessorPool
from classifier.settings import ServerSettings, Settings

DRAIN_GRACE_S = 5  # after the drain timeout: time to send the answers that carry the errors


def _taxonomy_pair(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, Path]]:
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: expected NAME=PATH, like restaurants=configs/restaurants.json")
        pairs.append((name, Path(path)))
    return pairs


def _bind(host: str, port: int) -> socket.socket:
    """Claim the port before the engine starts, so a port in use costs seconds, not a model load."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is in use (another classifier_server or vLLM server?); "
                f"stop it or pick another with --port / CLASSIFIER_PORT"
            ) from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Uvicorn drains on SIGTERM, then re-sends it to the handler it found: this one, which
    exits 0 through the lifespan's cleanup (and stops a start that is still loading)."""
    raise SystemExit(0)


class _DrainingServer(uvicorn.Server):
    """Uvicorn, plus a bound on the drain: when shutdown starts, the batcher gets
    `drain_timeout` seconds to finish, then answers every text left with its own error,
    so clients hear why instead of seeing their connection dropped."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout: float) -> None:
        super().__init__(config)
        self.app, self.drain_timeout = app, drain_timeout
        self.draining: asyncio.Task[None] | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.draining = asyncio.create_task(self.app.state.serving.batcher.close(timeout=self.drain_timeout))
        await super().shutdown(sockets)


async def _serve(app: FastAPI, sock: socket.socket, settings: Settings) -> None:
    limits = settings.server
    config = uvicorn.Config(app, lifespan="off", timeout_graceful_shutdown=limits.drain_timeout + DRAIN_GRACE_S,
                            limit_concurrency=limits.max_connections, log_level="info")
    server = _DrainingServer(config, app, limits.drain_timeout)
    # The lifespan runs here rather than inside uvicorn so that a backend that cannot start
    # surfaces as its own exception (one line for the user) instead of a logged traceback.
    async with app.router.lifespan_context(app):
        host, port = sock.getsockname()[:2]
        click.echo(f"classifier: listening on http://{host}:{port} - "
                   f"{describe(settings, app.state.serving.processor.model)}", err=True)
        await server.serve(sockets=[sock])


@click.command(context_settings={"show_default": True, "max_content_width": 110})
@engine_options
@option("--taxonomy", "taxonomies", multiple=True, callback=_taxonomy_pair, metavar="NAME=PATH",
        help="Another taxonomy a request may name with \"taxonomy\": NAME; repeat for several.")
@option("--host", default=ServerSettings.host, help="Address to listen on (0.0.0.0: every interface).")
@option("--port", type=click.IntRange(0, 65535), default=ServerSettings.port)
@option("--batch-timeout", type=click.FloatRange(0), default=ServerSettings.batch_timeout,
        help="Seconds a request waits for others to share its classification pass.")
@option("--api-key", default=None, help="When set, every route but /health needs 'Authorization: Bearer KEY'.")
@option("--max-texts", type=click.IntRange(1), default=ServerSettings.max_texts, help="Texts per request.")
@option("--max-text-chars", type=click.IntRange(1), default=ServerSettings.max_text_chars, help="Characters per text.")
@option("--max-queued-texts", type=click.IntRange(1), default=ServerSettings.max_queued_texts,
        help="Texts admitted and not yet answered; past it requests get 503 with Retry-After.")
@option("--max-connections", type=click.IntRange(1), default=ServerSettings.max_connections,
        help="Connections and requests served at once; past it the server answers 503.")
@option("--drain-timeout", type=click.FloatRange(0), default=ServerSettings.drain_timeout,
        help="Seconds SIGTERM waits for work in flight; then each text left is answered with an error.")
def main(**options: object) -> None:
    """Serve the classifier over HTTP."""
    server = ServerSettings(
        host=options["host"], port=options["port"], batch_timeout=options["batch_timeout"],
        max_texts=options["max_texts"], max_text_chars=options["max_text_chars"],
        max_queued_texts=options["max_queued_texts"], api_key=options["api_key"] or None,
        max_connections=options["max_connections"], drain_timeout=options["drain_timeout"],
    )  # fmt: skip
    settings = build_settings(options, server)
    try:
        taxonomies = load_taxonomies(options["config"], options["taxonomies"])
        app = create_app(settings, taxonomies, ProcessorPool(settings.engine))
    except (*USER_ERRORS, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    sock = _bind(server.host, server.port)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        asyncio.run(_serve(app, sock, settings))
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
