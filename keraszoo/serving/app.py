"""TensorFlow Serving's REST API on Starlette: status, metadata and predict for every model under a root.

    GET  /v1/models/{name}[/versions/{v}]            version status
    GET  /v1/models/{name}[/versions/{v}]/metadata   signatures (inputs, outputs, dtypes, shapes)
    POST /v1/models/{name}[/versions/{v}]:predict    {"instances": ...} or {"inputs": ...}

Errors are ``{"error": "..."}`` with a 4xx status; the server keeps serving.
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
from keraszoo.serving.repository import ModelRepository, NotFound, run_signature, signature_of


class PayloadTooLarge(ValueError):
    """HTTP 413."""


@dataclass(frozen=True)
class ServingConfig:
    model_root: str = "saved_models"
    batching: bool = True
    max_batch_size: int = 64
    batch_timeout_ms: float = 2.0
    max_body_bytes: int = 16 * 2**20
    max_instances: int = 1024
    poll_interval_s: float = 1.0  # how often new versions are looked for
    settle_s: float = 0.5  # a version's files must be unchanged this long before it loads
    threads: int = 4


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _version(request: Request) -> int | None:
    text = request.path_params.get("version")
    if text is None:
        return None
    if not text.isdigit():
        raise BadRequest(f"version must be a number, got {text!r}.")
    return int(text)


def create_app(config: ServingConfig = ServingConfig()) -> Starlette:
    repository = ModelRepository(config.model_root, settle_s=config.settle_s)
    executor = ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="keraszoo-model")
    batchers: dict[tuple, Batcher] = {}

    def handle(endpoint):
        async def wrapped(request: Request):
            try:
                return await endpoint(request)
            except BadRequest as error:
                return _error(400, str(error))
            except NotFound as error:
                return _error(404, str(error))
            except PayloadTooLarge as error:
                return _error(413, str(error))
            except Exception as error:  # noqa: BLE001 - report, keep serving
                return _error(500, f"{type(error).__name__}: {error}")
        return wrapped

    async def status(request: Request):
        name, version = request.path_params["name"], _version(request)
        served = repository.get(name, version)  # raises NotFound
        versions = [served.version] if version is not None else repository.models()[name][::-1]
        return JSONResponse({"model_version_status": [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in versions
        ]})

    async def metadata(request: Request):
        served = repository.get(request.path_params["name"], _version(request))
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

    async def read_json(request: Request):
        declared = request.headers.get("content-length")
        declared = int(declared) if declared and declared.isdigit() else None
        limit = config.max_body_bytes
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

    async def predict(request: Request):
        body = await read_json(request)
        served = repository.get(request.path_params["name"], _version(request))
        signature_name = body.get("signature_name") if isinstance(body, dict) else None
        signature = signature_of(served, signature_name)
        inputs, request_format = parse_predict(body, signature, max_instances=config.max_instances)
        batchable = all(None not in info.shape[1:] for info in signature.inputs.values())
        if config.batching and batchable:
            key = (served.name, served.version, signature_name or SIGNATURE_NAME, id(served))
            if key not in batchers:
                batchers[key] = Batcher(lambda arrays, s=signature: run_signature(s, arrays),
                                        max_batch_size=config.max_batch_size,
                                        timeout_s=config.batch_timeout_ms / 1000, executor=executor)
            outputs = await batchers[key].submit(inputs)
        else:
            outputs = await asyncio.get_running_loop().run_in_executor(executor, run_signature, signature, inputs)
        return JSONResponse(format_outputs(outputs, request_format))

    async def not_found(request: Request, exc: HTTPException):
        return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")

    async def poll_for_versions():
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(config.poll_interval_s)
            for name, version in await loop.run_in_executor(None, repository.refresh):
                print(f"keraszoo serve: now serving {name} version {version}", flush=True)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loaded = await asyncio.get_running_loop().run_in_executor(None, repository.refresh)
        if not loaded:
            print(f"keraszoo serve: no complete model version under {Path(config.model_root).resolve()} yet; "
                  "watching for new ones.", flush=True)
        for name, version in loaded:
            print(f"keraszoo serve: serving {name} version {version}", flush=True)
        poller = asyncio.get_running_loop().create_task(poll_for_versions())
        yield
        poller.cancel()
        for batcher in batchers.values():
            batcher.close()
        executor.shutdown(wait=False)

    routes = [
        Route("/v1/models/{name}/versions/{version}:predict", handle(predict), methods=["POST"]),
        Route("/v1/models/{name}:predict", handle(predict), methods=["POST"]),
        Route("/v1/models/{name}/versions/{version}/metadata", handle(metadata), methods=["GET"]),
        Route("/v1/models/{name}/metadata", handle(metadata), methods=["GET"]),
        Route("/v1/models/{name}/versions/{version}", handle(status), methods=["GET"]),
        Route("/v1/models/{name}", handle(status), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.state.repository, app.state.batchers = repository, batchers
    return app


def serve(config: ServingConfig, *, host: str = "127.0.0.1", port: int = 8501) -> None:
    import uvicorn

    print(f"keraszoo serve: http://{host}:{port}/v1/models/<name> for the models under {config.model_root}",
          flush=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
