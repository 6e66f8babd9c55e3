"""TensorFlow Serving's REST API on Starlette: status, metadata and predict for every model under a root.

    GET  /v1/models/{name}[/versions/{v}]            version status
    GET  /v1/models/{name}[/versions/{v}]/metadata   signatures (inputs, outputs, dtypes, shapes)
    POST /v1/models/{name}[/versions/{v}]:predict    {"instances": ...} or {"inputs": ...}

Paths are matched as TF Serving matches them (``keraszoo.serving.routes``). Errors are
``{"error": "..."}`` with TF Serving's 4xx status; no client input yields a 5xx, and a
genuine server fault is logged with its traceback and answered 500. The event loop
only moves bytes: JSON parsing and image decoding run in parse threads, the models in
model threads, and request bodies being read or parsed at once are bounded in bytes
(``--max-pending-bytes``), so a flood of large bodies waits instead of growing the
server. Metadata also carries ``keraszoo.class_names`` (from the run record) for
clients that print labels; TF Serving clients ignore it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keraszoo.serving.batching import Batcher
from keraszoo.serving.codec import format_outputs, parse_predict
from keraszoo.serving.config import ServingConfig, listen
from keraszoo.serving.errors import PayloadTooLarge, ServingRequestError
from keraszoo.serving.repository import ModelRepository, run_signature
from keraszoo.serving.routes import Target, parse_target

INLINE_PARSE_BYTES = 32 * 1024
log = logging.getLogger("keraszoo.serve")
access_log = logging.getLogger("keraszoo.serve.access")


class ByteBudget:
    """At most ``capacity`` bytes of request bodies held at once; a request past it waits its turn."""

    def __init__(self, capacity: int):
        self.capacity = self.free = capacity
        self._changed: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def hold(self, size: int):
        size = min(size, self.capacity)
        self._changed = self._changed or asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            async with self._changed:
                self.free += size
                self._changed.notify_all()


@dataclass
class _Server:
    """What the handlers share, kept in ``app.state.server``."""

    config: ServingConfig
    repository: ModelRepository
    executor: ThreadPoolExecutor  # runs the models
    parser: ThreadPoolExecutor  # parses JSON and decodes images
    batchers: dict
    budget: ByteBudget


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def dispatch(request: Request):
    """Every request: TF Serving's path rules, then the endpoint; errors become JSON answers."""
    server: _Server = request.app.state.server
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    try:
        target = parse_target(request.method, raw_path.decode("latin-1"))
        return await ENDPOINTS[target.kind](request, server, target)
    except ServingRequestError as error:
        return _error(error.status, str(error))
    except tf.errors.InvalidArgumentError as error:  # the model refused an input the checks let through
        return _error(400, error.message)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is left to read it
    except Exception as error:  # noqa: BLE001 - a server fault: logged, answered, and serving goes on
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal server error: {type(error).__name__}: {error}")


async def status(request: Request, server: _Server, target: Target):
    served = server.repository.get(target.name, target.version)  # raises NotFound
    versions = [served.version] if target.version is not None else server.repository.models()[target.name][::-1]
    return JSONResponse({"model_version_status": [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in versions
    ]})


async def metadata(request: Request, server: _Server, target: Target):
    served = server.repository.get(target.name, target.version)
    signature_def = {
        key: {
            "inputs": {name: info.as_json() for name, info in signature.inputs.items()},
            "outputs": {name: info.as_json() for name, info in signature.outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
        for key, signature in served.signatures.items()
    }
    return JSONResponse({
        "model_spec": {"name": served.name, "signature_name": "", "version": str(served.version)},
        "metadata": {
            "signature_def": {"signature_def": signature_def},
            "keraszoo": {"class_names": served.class_names},
        },
    })


async def predict(request: Request, server: _Server, target: Target):
    config = server.config
    served = server.repository.get(target.name, target.version)
    loop = asyncio.get_running_loop()
    async with server.budget.hold(_declared_length(request) or config.max_body_bytes):
        body = await read_body(request, config.max_body_bytes)
        parse = functools.partial(parse_predict, body, served, max_instances=config.max_instances,
                                  max_image_pixels=config.max_image_pixels)
        # A small body without images parses in well under a millisecond: on the loop, that beats
        # the hop to a parse thread and back. Anything larger, or holding images, goes to a thread.
        if len(body) <= INLINE_PARSE_BYTES and b'"b64"' not in body:
            signature_name, inputs, request_format = parse()
        else:
            signature_name, inputs, request_format = await loop.run_in_executor(server.parser, parse)
        del body, parse
    signature = served.signatures[signature_name]
    batchable = all(None not in info.shape[1:] for info in signature.inputs.values())
    if config.batching and batchable:
        key = (served.name, served.version, signature_name, id(served))
        if key not in server.batchers:
            server.batchers[key] = Batcher(lambda arrays, s=signature: run_signature(s, arrays),
                                           max_batch_size=config.max_batch_size,
                                           timeout_s=config.batch_timeout_ms / 1000, executor=server.executor)
        outputs = await server.batchers[key].submit(inputs)
    else:
        outputs = await loop.run_in_executor(server.executor, run_signature, signature, inputs)
    return Response(format_outputs(outputs, request_format), media_type="application/json")


ENDPOINTS = {"status": status, "metadata": metadata, "predict": predict}
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # the rest: "Malformed request"


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isascii() and declared.isdigit() else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) past ``limit`` bytes."""
    declared = _declared_length(request)
    if declared is not None and declared > 4 * limit:
        raise PayloadTooLarge(f"request body of {declared:,} bytes exceeds the limit of {limit:,} bytes.")
    body, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            body += chunk
        elif size > 4 * limit:
            break
    # A body a little over the limit is read to its end and dropped, so that the client sees the
    # 413 rather than a connection reset while it is still sending; a far larger one is cut off.
    if size > limit:
        raise PayloadTooLarge(f"request body of {declared or size:,} bytes exceeds the limit of {limit:,} bytes.")
    return bytes(body)


class AccessLog:
    """One JSON line per request on the ``keraszoo.serve.access`` logger: method, path, status, latency."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            access_log.info(json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "client": (scope.get("client") or ("", 0))[0],
                "method": scope["method"],
                "path": scope["path"],
                "status": status[0],
                "latency_ms": round((time.perf_counter() - start) * 1000, 2),
            }))


async def _poll_for_versions(server: _Server):
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(server.config.poll_interval_s)
        for name, version in await loop.run_in_executor(None, server.repository.refresh):
            print(f"keraszoo serve: now serving {name} version {version}", flush=True)


@contextlib.asynccontextmanager
async def _lifespan(app):
    server = app.state.server
    loaded = await asyncio.get_running_loop().run_in_executor(None, server.repository.refresh)
    if not loaded:
        print(f"keraszoo serve: no complete model version under {Path(server.config.model_root).resolve()} yet; "
              "watching for new ones.", flush=True)
    for name, version in loaded:
        print(f"keraszoo serve: serving {name} version {version}", flush=True)
    poller = asyncio.get_running_loop().create_task(_poll_for_versions(server))
    yield
    # uvicorn reaches this after the requests in flight have been answered (or shutdown_timeout_s).
    poller.cancel()
    for batcher in server.batchers.values():
        batcher.close()
    server.executor.shutdown(wait=False)
    server.parser.shutdown(wait=False)
    print("keraszoo serve: stopped", flush=True)


def create_app(config: ServingConfig = ServingConfig()) -> Starlette:
    app = Starlette(routes=[Route("/{path:path}", dispatch, methods=_METHODS)], lifespan=_lifespan)
    app.state.server = _Server(
        config=config,
        repository=ModelRepository(config.model_root, settle_s=config.settle_s),
        executor=ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="keraszoo-model"),
        parser=ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="keraszoo-parse"),
        batchers={},
        budget=ByteBudget(config.max_pending_bytes),
    )
    app.state.repository, app.state.batchers = app.state.server.repository, app.state.server.batchers
    if config.access_log:
        app.add_middleware(AccessLog)
    return app


def serve(config: ServingConfig, sock=None) -> None:
    """Serves until SIGINT/SIGTERM, then answers the requests in flight and stops."""
    import uvicorn

    sock = sock or listen(config.host, config.port)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for logger in (log, access_log):
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    log.propagate = access_log.propagate = False
    print(f"keraszoo serve: http://{config.host}:{config.port}/v1/models/<name> for the models under "
          f"{config.model_root}", flush=True)
    server = uvicorn.Server(uvicorn.Config(
        create_app(config), log_level=config.log_level, access_log=False,
        timeout_graceful_shutdown=config.shutdown_timeout_s,
    ))
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again under the handlers it
    # found: a graceful stop is a success (exit 0), not a death by signal or a KeyboardInterrupt traceback.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    server.run(sockets=[sock])
