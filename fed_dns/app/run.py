"""`fed-dns run [--config FILE]`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from fed_dns.app import logs

log = logging.getLogger("fed_dns.run")


def config_path(arg: str | None) -> str:
    if arg:
        return arg
    if os.environ.get("FED_DNS_CONFIG"):
        return os.environ["FED_DNS_CONFIG"]
    return "config/fed-dns.yaml"


def main(args) -> int:
    from fed_dns import config as config_mod

    logs.setup(fmt=args.log_format, level=args.log_level)
    try:
        config = config_mod.load(config_path(args.config))
        members = config.cluster_specs()
    except config_mod.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return run_daemon(config=config, members=members)


def run_daemon(*, config, members=None) -> int:
    from fed_dns.app import runtime
    from fed_dns.app.daemon import Daemon

    runtime.tune_for_dns(thaw_period=runtime.THAW_PERIOD)  # the daemon: hourly

    async def body() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        daemon = Daemon(config=config, members=members)
        try:
            await daemon.serve(stop=stop)
        except (OSError, ExceptionGroup) as exc:
            for error in flatten(exc):
                log.error("fatal: %s: %s", type(error).__name__, error)
            return 1
        return 0

    return asyncio_run(body())


def flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [e for sub in exc.exceptions for e in flatten(sub)]
    return [exc]


def asyncio_run(coro) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        return asyncio.run(coro)
