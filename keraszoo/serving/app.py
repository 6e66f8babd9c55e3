"""TensorFlow Serving's REST API on Starlette: status, metadata and predict for every model under a root.

    GET  /v1/models/{name}[/versions/{v}]            version status
    GET  /v1/models/{name}[/versions/{v}]/metadata   signatures (inputs, outputs, dtypes, shapes)
    POST /v1/models/{name}[/versions/{v}]:predict    {"instances": ...} or {"inputs": ...}

Errors are ``{"error": "..."}`` with a 4xx status; the server keeps serving. ``ServingConfig``
is the one description of the server's options: ``keraszoo serve``'s flags are made from it.
Metadata also carries ``keraszoo.class_names`` (from the run record) for clients
that print labels; TF Serving clients ignore it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keraszoo.export import SIGNATURE_NAME
from keraszoo.serving.batching import Batcher
from keraszoo.serving.codec import BadRequest, format_outputs, parse_predict
from keraszoo.serving.config import ServingConfig
from keraszoo.serving.repository import ModelRepository, NotFound, run_signature, signature_of


class PayloadTooLarge(ValueError):
    """HTTP 413."""


@dataclass
class _Server:
    """What the handlers share, kept in ``app.state.server``."""

    config: ServingConfig
    repository: ModelRepository
    executor: ThreadPoolExecutor
    batchers: dict


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _version(request: Request) -> int | None:
    text = request.path_params.get("version")
    if text is None:
        return None
    if not text.isdigit():
        raise BadRequest(f"version must be a number, got {text!r}.")
    return int(text)


def _handled(endpoint):
    """The endpoint with keraszoo's errors as 4xx JSON answers; anything else is a 500 and serving goes on."""
    async def wrapped(request: Request):
        try:
            return await endpoint(request, request.app.state.server)
        except BadRequest as error:
            return _error(400, str(error))
        except NotFound as error:
            return _error(404, str(error))
        except PayloadTooLarge as error:
            return _error(413, str(error))
        except Exception as error:  # noqa: BLE001 - report, keep serving
            return _error(500, f"{type(error).__name__}: {error}")
    return wrapped


async def status(request: Request, server: _Server):
    name, version = request.path_params["name"], _version(request)
    served = server.repository.get(name, version)  # raises NotFound
    versions = [served.version] if version is not None else server.repository.models()[name][::-1]
    return JSONResponse({"model_version_status": [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in versions
    ]})


async def metadata(request: Request, server: _Server):
    served = server.repository.get(request.path_params["name"], _version(request))
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


async def predict(request: Request, server: _Server):
    config = server.config
    body = await read_json(request, config.max_body_bytes)
    served = server.repository.get(request.path_params["name"], _version(request))
    signature_name = body.get("signature_name") if isinstance(body, dict) else None
    signature = signature_of(served, signature_name)
    inputs, request_format = parse_predict(body, signature, max_instances=config.max_instances)
    batchable = all(None not in info.shape[1:] for info in signature.inputs.values())
    if config.batching and batchable:
        key = (served.name, served.version, signature_name or SIGNATURE_NAME, id(served))
        if key not in server.batchers:
            server.batchers[key] = Batcher(lambda arrays, s=signature: run_signature(s, arrays),
                                           max_batch_size=config.max_batch_size,
                                           timeout_s=config.batch_timeout_ms / 1000, executor=server.executor)
        outputs = await server.batchers[key].submit(inputs)
    else:
        outputs = await asyncio.get_running_loop().run_in_executor(server.executor, run_signature, signature, inputs)
    return JSONResponse(format_outputs(outputs, request_format))


async def read_json(request: Request, limit: int):
    """The request's JSON body, refused (413) past ``limit`` bytes, malformed JSON a 400."""
    declared = request.headers.get("content-length")
    declared = int(declared) if declared and declared.isdigit() else None
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
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"Malformed JSON in the request body: {error}") from None


async def _not_found(request: Request, exc: HTTPException):
    return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")


ROUTES = [
    Route("/v1/models/{name}/versions/{version}:predict", _handled(predict), methods=["POST"]),
    Route("/v1/models/{name}:predict", _handled(predict), methods=["POST"]),
    Route("/v1/models/{name}/versions/{version}/metadata", _handled(metadata), methods=["GET"]),
    Route("/v1/models/{name}/metadata", _handled(metadata), methods=["GET"]),
    Route("/v1/models/{name}/versions/{version}", _handled(status), methods=["GET"]),
    Route("/v1/models/{name}", _handled(status), methods=["GET"]),
]


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
    poller.cancel()
    for batcher in server.batchers.values():
        batcher.close()
    server.executor.shutdown(wait=False)


def create_app(config: ServingConfig = ServingConfig()) -> Starlette:
    app = Starlette(routes=ROUTES, lifespan=_lifespan, exception_handlers={HTTPException: _not_found})
    app.state.server = _Server(
        config=config,
        repository=ModelRepository(config.model_root, settle_s=config.settle_s),
        executor=ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="keraszoo-model"),
        batchers={},
    )
    app.state.repository, app.state.batchers = app.state.server.repository, app.state.server.batchers
    return app


def serve(config: ServingConfig) -> None:
    import uvicorn

    print(f"keraszoo serve: http://{config.host}:{config.port}/v1/models/<name> for the models under "
          f"{config.model_root}", flush=True)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level=config.log_level)
