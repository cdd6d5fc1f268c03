"""python classifier_server.py [--config configs/topics.json] [--backend local|vllm-server] ...

The HTTP service (POST /classify, GET /, /health, /ready, /capabilities, /stats, /metrics, /docs)
and classification jobs (/v1/files, /v1/batches: OpenAI's Batch API in shape).
Every flag has an environment twin (--port <-> CLASSIFIER_PORT); `--help` lists them.
With no flags and no GPU it serves the embedded default model on vLLM's CPU engine.
SIGTERM stops taking connections, lets queued and running requests finish (up to
--drain-timeout, then answers each text left with an error), and exits 0.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click
import uvicorn
from fastapi import FastAPI

from classifier.api import create_app
from classifier.api.rate_limits import FAMILIES, RateLimitError, parse_limits
from classifier.distill import DISTILLED
from classifier.cli import USER_ERRORS, build_settings, describe, engine_options, load_taxonomies, option
from classifier.jobs.webhooks import secret_bytes
from classifier.llm.pool import ProcessorPool
from classifier.settings import JobSettings, ServerSettings, Settings

DRAIN_GRACE_S = 5  # after the drain timeout: time to send the answers that carry the errors


def _taxonomy_pair(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, Path]]:
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: expected NAME=PATH, like restaurants=configs/restaurants.json")
        pairs.append((name, Path(path)))
    return pairs


def _rate_limits(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        parse_limits(values)
    except RateLimitError as exc:
        raise click.BadParameter(str(exc)) from None
    return values


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


async def _work_jobs_only(app: FastAPI, settings: Settings) -> None:
    """--jobs-only: the backend and a job worker, no HTTP, until SIGTERM or Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with app.router.lifespan_context(app):
        click.echo(f"classifier: working jobs from {settings.jobs.url if settings.jobs else '-'} (no HTTP) - "
                   f"{describe(settings, app.state.serving.processor.model)}", err=True)
        await stop.wait()


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


def _check_exposure(host: str, keys: list[str], allow_no_auth: bool) -> None:
    """A server other machines can reach must know who calls it, or be told that anyone may."""
    if keys or _is_loopback(host):
        return
    if not allow_no_auth:
        raise click.UsageError(f"--host {host} lets other machines reach this server, and no --api-key is set: anyone "
                               "who can reach it could classify and read every job. Give --api-key (or "
                               "--api-keys-file), or --allow-no-auth to serve without one.")
    click.echo(f"classifier: WARNING: listening on {host} with no API key (--allow-no-auth): anyone who can reach "
               "this port can classify and read every job", err=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command(context_settings={"show_default": True, "max_content_width": 110})
@engine_options
@option("--taxonomy", "taxonomies", multiple=True, callback=_taxonomy_pair, metavar="NAME=PATH",
        help="Another taxonomy a request may name with \"taxonomy\": NAME; repeat for several.")
@option("--host", default=ServerSettings.host, help="Address to listen on (0.0.0.0: every interface).")
@option("--port", type=click.IntRange(0, 65535), default=ServerSettings.port)
@option("--batch-timeout", type=click.FloatRange(0), default=ServerSettings.batch_timeout,
        help="Seconds a request waits for others to share its classification pass.")
@option("--api-key", "api_keys", multiple=True, help="When set, every route but /health and /ready needs "
        "'Authorization: Bearer KEY'; repeat for several keys, each seeing only its own jobs.")
@option("--api-keys-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
        help="More API keys, one per line.")
@option("--allow-no-auth", is_flag=True, help="Listen on an address other machines can reach without an API key "
        "(anyone who reaches it can classify and read every job); refused otherwise.")
@option("--rate-limit", "rate_limits", multiple=True, callback=_rate_limits, metavar="FAMILY=RATE",
        help=f"Per API key: FAMILY ({', '.join(FAMILIES)}) at most RATE, e.g. classify=600/minute; past it 429 "
        "with Retry-After. Repeat for several families; none by default.")
@option("--warm-up/--no-warm-up", default=ServerSettings.warm_up,
        help="At start, ask every node's and capability's fixed prompt once in the background, so the first "
        "comment finds them in the prefix cache. Default: on for the local backend.")
@option("--max-texts", type=click.IntRange(1), default=ServerSettings.max_texts, help="Texts per request.")
@option("--max-text-chars", type=click.IntRange(1), default=ServerSettings.max_text_chars, help="Characters per text.")
@option("--max-queued-texts", type=click.IntRange(1), default=ServerSettings.max_queued_texts,
        help="Texts admitted and not yet answered; past it requests get 503 with Retry-After.")
@option("--max-body-mb", type=click.FloatRange(0.001), default=ServerSettings.max_body_bytes / 2**20,
        help="Largest request body in MiB (uploads excepted); past it 413.")
@option("--max-upload-mb", type=click.FloatRange(0.001), default=ServerSettings.max_upload_bytes / 2**20,
        help="Largest file uploaded to /v1/files in MiB; past it 413.")
@option("--max-bodies-in-flight-mb", type=click.FloatRange(0.001),
        default=ServerSettings.max_bodies_in_flight_bytes / 2**20,
        help="Request bodies being received at once, all together, in MiB; past it 503 with Retry-After.")
@option("--max-connections", type=click.IntRange(1), default=ServerSettings.max_connections,
        help="Connections and requests served at once; past it the server answers 503.")
@option("--drain-timeout", type=click.FloatRange(0), default=ServerSettings.drain_timeout,
        help="Seconds SIGTERM waits for work in flight; then each text left is answered with an error.")
@option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=JobSettings.data_dir,
        help="Jobs' files (uploads, outputs) and, without --database-url, their SQLite database.")
@option("--database-url", default=None, metavar="URL",
        help="postgresql://user@host/db: a jobs queue several server processes share (default: SQLite in --data-dir).")
@option("--job-chunk-size", type=click.IntRange(1), default=JobSettings.chunk_size,
        help="Lines per job chunk: committed together, redone together after a crash.")
@option("--job-lease", type=click.FloatRange(1), default=JobSettings.lease_seconds,
        help="Seconds a dead worker's chunk stays claimed before another worker takes it.")
@option("--jobs-only", is_flag=True, help="Work jobs without serving HTTP.")
@option("--no-jobs", is_flag=True, help="Serve HTTP (jobs API included) without working jobs here.")
@option("--webhook-secret", default=None, help="Signing key of webhooks (Standard Webhooks; whsec_... or raw).")
@option("--webhook-allow", multiple=True, metavar="HOST", help="A host webhooks may call; repeat. None by default.")
@option("--webhook-attempts", type=click.IntRange(1), default=JobSettings.webhook_attempts,
        help="Attempts per webhook before it is given up.")
@option("--webhook-backoff", type=click.FloatRange(0), default=JobSettings.webhook_backoff,
        help="Seconds before a webhook's second attempt; doubling after.")
@option("--max-queued-lines", type=click.IntRange(1), default=JobSettings.max_queued_lines,
        help="Job lines one API key may have waiting; past it new batches get 429.")
@option("--retention-days", type=click.FloatRange(0.001), default=JobSettings.retention_days,
        help="Ended batches (lines, outputs) and uploaded files are deleted after this many days.")
@option("--retrain-after", type=click.IntRange(1), default=JobSettings.retrain_after,
        help="Gold labels (POST /v1/labels) added, changed or deleted before the learned classifier is retrained.")
@option("--retrain-interval", type=click.FloatRange(0), default=JobSettings.retrain_interval,
        help="Seconds at least between two retrainings of one API key's labels (training runs in the background).")
@option("--max-labels", type=click.IntRange(1), default=JobSettings.max_labels,
        help="Labels one API key may hold per taxonomy (POST /v1/labels past it: 409).")
def main(**options: Any) -> None:
    """Serve the classifier over HTTP, and work classification jobs."""
    if options["jobs_only"] and options["no_jobs"]:
        raise click.UsageError("--jobs-only and --no-jobs exclude each other")
    keys = list(options["api_keys"])
    if any(not key.strip() for key in keys):
        raise click.BadParameter("an API key is empty; give a non-empty key or leave --api-key out", param_hint="--api-key")
    if options["api_keys_file"]:
        keys += [line.strip() for line in options["api_keys_file"].read_text().splitlines() if line.strip()]
    _check_exposure(options["host"], keys, options["allow_no_auth"])
    server = ServerSettings(
        host=options["host"], port=options["port"], batch_timeout=options["batch_timeout"],
        max_texts=options["max_texts"], max_text_chars=options["max_text_chars"],
        max_queued_texts=options["max_queued_texts"], api_keys=tuple(dict.fromkeys(keys)),
        max_connections=options["max_connections"], drain_timeout=options["drain_timeout"],
        max_body_bytes=int(options["max_body_mb"] * 2**20), max_upload_bytes=int(options["max_upload_mb"] * 2**20),
        max_bodies_in_flight_bytes=int(options["max_bodies_in_flight_mb"] * 2**20),
        rate_limits=tuple(options["rate_limits"]), warm_up=options["warm_up"],
    )  # fmt: skip
    if options["webhook_secret"]:
        try:
            secret_bytes(options["webhook_secret"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--webhook-secret") from None
    jobs = JobSettings(
        enabled=not options["no_jobs"], data_dir=options["data_dir"], database_url=options["database_url"],
        chunk_size=options["job_chunk_size"], lease_seconds=options["job_lease"],
        webhook_secret=options["webhook_secret"], webhook_allow=tuple(options["webhook_allow"]),
        webhook_attempts=options["webhook_attempts"], webhook_backoff=options["webhook_backoff"],
        max_queued_lines=options["max_queued_lines"], retention_days=options["retention_days"],
        retrain_after=options["retrain_after"], retrain_interval=options["retrain_interval"],
        max_labels=options["max_labels"],
    )  # fmt: skip
    if options["route"] == DISTILLED:
        raise click.BadParameter("distilled is a route for files: batch_classify.py --route distilled; the server "
                                 "answers with cascade, learned or llm", param_hint="--route")
    settings = replace(build_settings(options, server), jobs=jobs)
    try:
        taxonomies = load_taxonomies(options["config"], options["taxonomies"])
        app = create_app(settings, taxonomies, ProcessorPool(settings.engine))
    except (*USER_ERRORS, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if options["jobs_only"]:
        try:
            asyncio.run(_work_jobs_only(app, settings))
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from None
        return
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
