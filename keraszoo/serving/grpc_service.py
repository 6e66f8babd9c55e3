"""TF Serving's gRPC API (``--grpc-port``, 8500), from the official protos of ``tensorflow-serving-api``.

``PredictionService``: ``Predict`` and ``GetModelMetadata`` as TF Serving answers them (the official
``PredictionServiceStub`` works unchanged), ``Classify``, ``Regress`` and ``MultiInference`` refused as the
REST API refuses ``:classify`` (the exported signatures are predict signatures, not tf.Example ones).
``ModelService``: ``GetModelStatus`` and ``HandleReloadConfigRequest`` (a new ``ModelServerConfig``,
applied as a changed config file is). Requests go through the same checks, limits, batchers and metrics
as REST; errors carry TF Serving's codes: INVALID_ARGUMENT (dtype, shape, content), NOT_FOUND (model,
version), RESOURCE_EXHAUSTED (message over ``--max-body-bytes``, examples over ``--max-instances``),
DEADLINE_EXCEEDED (the client's deadline passed).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keraszoo.export.loading import SIGNATURE_NAME
from keraszoo.serving.core import ServerState
from keraszoo.serving.errors import BadRequest, NotFound, ServingRequestError
from keraszoo.serving.model_config import specs_of_proto
from keraszoo.serving.tensors import from_proto, to_proto

log = logging.getLogger("keraszoo.serve")
NOT_PREDICT = ("keraszoo serve answers Predict only: {api} needs a tf.Example signature, and the exported "
               "signatures take tensors (serving_default: images in, logits and probabilities out).")


class _Answered(Exception):
    """Raised by context.abort inside a handler: the status is set, the metrics recorded."""


def _version_of(spec) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    return (spec.version.value, None) if choice == "version" else (None, spec.version_label or None)


class _Handler:
    """Shared by both services: answers a request, records it, maps keraszoo's errors to gRPC codes."""

    def __init__(self, state: ServerState):
        self.state = state

    async def answer(self, api: str, model: str | None, context, work):
        """``work()`` -> (response, version); ``model`` None for a call that names none (reload)."""
        start, version, code = time.perf_counter(), None, "OK"
        try:
            if model is not None and not model:
                raise BadRequest("Missing ModelSpec name.")
            response, version = await work()
            return response
        except ServingRequestError as error:
            code, message = error.code, str(error)
        except tf.errors.InvalidArgumentError as error:  # the model refused an input the checks let through
            code, message = "INVALID_ARGUMENT", error.message
        except Exception as error:  # noqa: BLE001 - a server fault: logged, answered, serving goes on
            log.exception("internal error in gRPC %s", api)
            code, message = "INTERNAL", f"internal server error: {type(error).__name__}: {error}"
        finally:
            self.state.metrics.observe(model=model or "-", version=version, api=api, entrypoint="GRPC", status=code,
                                       seconds=time.perf_counter() - start)
        await context.abort(getattr(grpc.StatusCode, code), message)

    def served(self, spec):
        version, label = _version_of(spec)
        return self.state.repository.get(spec.name, version, label)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, state: ServerState):
        self.handler = _Handler(state)

    async def Predict(self, request, context):
        return await self.handler.answer("predict", request.model_spec.name, context, lambda: self._predict(request, context))

    async def _predict(self, request, context):
        state, served = self.handler.state, self.handler.served(request.model_spec)
        signature_name = request.model_spec.signature_name or SIGNATURE_NAME
        signature = served.signatures.get(signature_name)
        if signature is None:
            raise BadRequest(f"Serving signature name: {signature_name!r} not found in signature def; "
                             f"available: {sorted(served.signatures)}")
        if set(request.inputs) != set(signature.inputs):
            raise BadRequest(f"input size does not match signature: the request has {sorted(request.inputs)}, the "
                             f"signature {signature_name} takes {sorted(signature.inputs)}.")
        unknown = set(request.output_filter) - set(signature.outputs)
        if unknown:
            raise BadRequest(f"output tensor alias not found in signature: {sorted(unknown)} (outputs: "
                             f"{sorted(signature.outputs)}).")
        inputs = {key: from_proto(request.inputs[key], info, key, max_instances=state.config.max_instances,
                                  max_bytes=4 * state.config.max_body_bytes)
                  for key, info in signature.inputs.items()}
        if len({len(a) for a in inputs.values()}) != 1:
            raise BadRequest("every input needs the same number of examples.")
        outputs = await state.run_model(served, signature_name, inputs, timeout_s=context.time_remaining())
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = served.name, signature_name
        response.model_spec.version.value = served.version
        for key in request.output_filter or outputs:
            response.outputs[key].CopyFrom(to_proto(outputs[key]))
        return response, served.version

    async def GetModelMetadata(self, request, context):
        return await self.handler.answer("GetModelMetadata", request.model_spec.name, context, lambda: self._metadata(request))

    async def _metadata(self, request):
        served = self.handler.served(request.model_spec)
        if list(request.metadata_field) != ["signature_def"]:
            raise BadRequest(f"Metadata field {list(request.metadata_field)} is not supported: ask for "
                             "[\"signature_def\"], the only one TF Serving supports.")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in served.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(definition)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = served.name
        response.model_spec.version.value = served.version
        response.metadata["signature_def"].Pack(signature_map)
        return response, served.version

    async def _refuse(self, api: str, model: str, context):
        async def work():
            raise BadRequest(NOT_PREDICT.format(api=api))
        return await self.handler.answer(api, model, context, work)

    async def Classify(self, request, context):
        return await self._refuse("Classify", request.model_spec.name, context)

    async def Regress(self, request, context):
        return await self._refuse("Regress", request.model_spec.name, context)

    async def MultiInference(self, request, context):  # each task names its model
        return await self._refuse("MultiInference", request.tasks[0].model_spec.name if request.tasks else "", context)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, state: ServerState):
        self.handler = _Handler(state)

    async def GetModelStatus(self, request, context):
        return await self.handler.answer("GetModelStatus", request.model_spec.name, context, lambda: self._status(request))

    async def _status(self, request):
        repository = self.handler.state.repository
        states = repository.states(request.model_spec.name)
        version, label = _version_of(request.model_spec)
        if label is not None:
            version = repository.get(request.model_spec.name, label=label).version
        if version is not None:
            if version not in states:
                raise NotFound(f"Could not find version {version} of model {request.model_spec.name}")
            states = {version: states[version]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, state in sorted(states.items(), reverse=True):
            entry = response.model_version_status.add()
            entry.version = number
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
        return response, version

    async def HandleReloadConfigRequest(self, request, context):
        async def work():
            state = self.handler.state
            specs = specs_of_proto(request.config, base=Path.cwd(), where="the reload request")
            state.repository.configure(specs)
            await state.refresh()
            return model_management_pb2.ReloadConfigResponse(), None

        return await self.handler.answer("HandleReloadConfigRequest", None, context, work)


class _Malformed:
    """What a request that is not a protobuf of its type becomes, instead of gRPC's INTERNAL error."""

    def __init__(self, kind: str):
        self.kind = kind


def _parser(message_class):
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except Exception:  # noqa: BLE001 - DecodeError, RuntimeWarning from deep nesting ...: all "malformed"
            return _Malformed(message_class.__name__)
    return parse


def _handlers(service: str, servicer, methods: dict[str, tuple]) -> grpc.GenericRpcHandler:
    """The service's methods with a deserializer that never raises: a malformed request is answered
    INVALID_ARGUMENT (and counted) like any other bad request."""
    def guarded(method):
        async def call(request, context):
            if isinstance(request, _Malformed):
                async def work():
                    raise BadRequest(f"the request is not a valid {request.kind} protobuf.")
                return await servicer.handler.answer(method.__name__, "-", context, work)
            return await method(request, context)
        return call

    return grpc.method_handlers_generic_handler(service, {
        name: grpc.unary_unary_rpc_method_handler(guarded(getattr(servicer, name)),
                                                  request_deserializer=_parser(request_class),
                                                  response_serializer=response_class.SerializeToString)
        for name, (request_class, response_class) in methods.items()})


def _services(state: ServerState) -> list[grpc.GenericRpcHandler]:
    from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

    return [
        _handlers("tensorflow.serving.PredictionService", PredictionService(state), {
            "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
            "GetModelMetadata": (get_model_metadata_pb2.GetModelMetadataRequest,
                                 get_model_metadata_pb2.GetModelMetadataResponse),
            "Classify": (classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
            "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
            "MultiInference": (inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse)}),
        _handlers("tensorflow.serving.ModelService", ModelService(state), {
            "GetModelStatus": (get_model_status_pb2.GetModelStatusRequest, get_model_status_pb2.GetModelStatusResponse),
            "HandleReloadConfigRequest": (model_management_pb2.ReloadConfigRequest,
                                          model_management_pb2.ReloadConfigResponse)}),
    ]


async def start(state: ServerState, host: str, port: int) -> grpc.aio.Server:
    """The gRPC server on ``host:port``, in the running event loop, beside the REST one."""
    limit = state.config.max_body_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                      ("grpc.max_send_message_length", max(limit, 64 * 2**20)),
                                      ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(_services(state))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot listen for gRPC on {host}:{port}: another server uses it; pick another --grpc-port.")
    await server.start()
    return server
