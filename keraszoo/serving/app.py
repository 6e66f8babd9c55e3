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
from pathlib import Path

import tensorflow as tf
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from starlette.middleware.cors import CORSMiddleware

from keraszoo.serving.codec import format_outputs, parse_predict
from keraszoo.serving.config import ServingConfig, listen
from keraszoo.serving.core import ServerState, new_state
from keraszoo.serving.errors import NotFound, PayloadTooLarge, ServingRequestError
from keraszoo.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from keraszoo.serving.metrics import HTTP_CODES
from keraszoo.serving.metrics import PATH as METRICS_PATH
from keraszoo.serving.model_config import ModelConfigError, read_model_config
from keraszoo.serving.routes import Target, parse_target

INLINE_PARSE_BYTES = 32 * 1024
log = logging.getLogger("keraszoo.serve")
access_log = logging.getLogger("keraszoo.serve.access")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def dispatch(request: Request):
    """Every request: TF Serving's path rules, then the endpoint; errors become JSON answers."""
    server: ServerState = request.app.state.server
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    if raw_path == METRICS_PATH.encode() and request.method == "GET" and server.config.monitoring:
        return Response(server.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)
    start, target, response = time.perf_counter(), None, None
    try:
        target = parse_target(request.method, raw_path.decode("latin-1"))
        timeout_s = server.config.rest_api_timeout_ms / 1000 or None
        response = await asyncio.wait_for(ENDPOINTS[target.kind](request, server, target), timeout_s)
    except ServingRequestError as error:
        response = _error(error.status, str(error))
    except asyncio.TimeoutError:  # TF Serving's --rest_api_timeout_in_ms: DEADLINE_EXCEEDED, HTTP 504
        response = _error(504, f"Request timed out after {server.config.rest_api_timeout_ms} ms "
                               "(--rest-api-timeout-ms).")
    except tf.errors.InvalidArgumentError as error:  # the model refused an input the checks let through
        response = _error(400, error.message)
    except ClientDisconnect:
        response = Response(status_code=400)  # nobody is left to read it
    except Exception as error:  # noqa: BLE001 - a server fault: logged, answered, and serving goes on
        log.exception("internal error on %s %s", request.method, request.url.path)
        response = _error(500, f"internal server error: {type(error).__name__}: {error}")
    if target is not None:
        server.metrics.observe(model=target.name, version=target.version, api=API_NAMES[target.kind], entrypoint="REST",
                               status=HTTP_CODES.get(response.status_code, str(response.status_code)),
                               seconds=time.perf_counter() - start)
    return response


async def status(request: Request, server: ServerState, target: Target):
    states = server.repository.states(target.name)  # raises NotFound; END for versions unloaded
    if target.version is not None or target.label is not None:
        version = target.version
        if target.label is not None:
            version = server.repository.get(target.name, label=target.label).version
        if version not in states:
            raise NotFound(f"Could not find version {version} of model {target.name}")
        states = {version: states[version]}
    return JSONResponse({"model_version_status": [
        {"version": str(v), "state": state, "status": {"error_code": "OK", "error_message": ""}}
        for v, state in sorted(states.items(), reverse=True)
    ]})


async def metadata(request: Request, server: ServerState, target: Target):
    served = server.repository.get(target.name, target.version, target.label)
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


async def predict(request: Request, server: ServerState, target: Target):
    config = server.config
    served = server.repository.get(target.name, target.version, target.label)
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
    outputs = await server.run_model(served, signature_name, inputs)
    return Response(format_outputs(outputs, request_format), media_type="application/json")


ENDPOINTS = {"status": status, "metadata": metadata, "predict": predict}
API_NAMES = {"predict": "predict", "status": "GetModelStatus", "metadata": "GetModelMetadata"}  # gRPC's names
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


async def _watch(server: ServerState):
    """Rescans for versions every --poll-interval-s; re-reads the model config file every
    --model-config-file-poll-wait-seconds (a file that cannot be used: one line, the last good one stays)."""
    config, loop = server.config, asyncio.get_running_loop()
    reread_every = config.model_config_file_poll_wait_seconds
    next_read, last_problem = loop.time() + reread_every, None
    while True:
        await asyncio.sleep(config.poll_interval_s)
        if config.model_config_file and reread_every > 0 and loop.time() >= next_read:
            next_read = loop.time() + reread_every
            try:
                server.repository.configure(read_model_config(config.model_config_file))
                last_problem = None
            except ModelConfigError as error:
                if str(error) != last_problem:  # said once, not at every poll
                    log.warning(f"keraszoo serve: {error}; still serving the previous configuration.")
                last_problem = str(error)
        await server.refresh()


@contextlib.asynccontextmanager
async def _lifespan(app):
    server: ServerState = app.state.server
    config = server.config
    if not await server.refresh():
        where = config.model_config_file or Path(config.model_root).resolve()
        log.info(f"keraszoo serve: no complete model version in {where} yet; watching for new ones.")
    grpc_server = None
    if config.grpc_port:
        from keraszoo.serving import grpc_service  # grpc loads only when it serves

        grpc_server = await grpc_service.start(server, config.host, config.grpc_port)
        log.info(f"keraszoo serve: gRPC on {config.host}:{config.grpc_port}")
    watcher = asyncio.get_running_loop().create_task(_watch(server))
    yield
    # uvicorn reaches this after the requests in flight have been answered (or shutdown_timeout_s).
    watcher.cancel()
    if grpc_server is not None:
        await grpc_server.stop(config.shutdown_timeout_s)
    for batcher in server.batchers.values():
        batcher.close()
    server.executor.shutdown(wait=False)
    server.parser.shutdown(wait=False)
    log.info("keraszoo serve: stopped")


def create_app(config: ServingConfig = ServingConfig()) -> Starlette:
    """The server's ASGI app; a model config file that cannot be used raises ModelConfigError (one line)."""
    specs = read_model_config(config.model_config_file) if config.model_config_file else None
    app = Starlette(routes=[Route("/{path:path}", dispatch, methods=_METHODS)], lifespan=_lifespan)
    app.state.server = new_state(config, specs)
    app.state.repository, app.state.batchers = app.state.server.repository, app.state.server.batchers
    if config.cors_allow_origin:  # answers browsers' preflight OPTIONS and adds the allow-origin header
        app.add_middleware(CORSMiddleware, allow_origins=[config.cors_allow_origin], allow_methods=["GET", "POST"],
                           allow_headers=["*"])
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
    print(f"keraszoo serve: http://{config.host}:{config.port}/v1/models/<name> for the models "
          f"{'of ' + config.model_config_file if config.model_config_file else 'under ' + config.model_root}",
          flush=True)
    server = uvicorn.Server(uvicorn.Config(
        create_app(config), log_level=config.log_level, access_log=False,
        timeout_graceful_shutdown=config.shutdown_timeout_s,
    ))
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again under the handlers it
    # found: a graceful stop is a success (exit 0), not a death by signal or a KeyboardInterrupt traceback.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    server.run(sockets=[sock])
