"""Wire formats: request bodies to arrays and arrays to response bodies (NumPy and the standard library only).

Native API (``/v1``): a body of ``application/x-npy`` (read with ``allow_pickle=False``) or JSON, either a
nested list ``[[...], ...]`` or ``{"input": [[...], ...]}``; the answer is ``.npy`` when ``Accept`` asks for
``application/x-npy``, else JSON ``{"output": [[...]], "queue_s": ..., "compute_s": ...}``.

KServe v2 (``/v2``): JSON ``{"inputs": [{"name", "shape", "datatype", "data"}], "outputs": [...],
"parameters": {...}}``, optionally with the binary-tensor extension: the JSON header is the first
``Inference-Header-Content-Length`` bytes of the body and each binary input's bytes (``parameters.binary_data_size``)
follow in order. Functions raise :class:`BadRequest` (status 400, or 422 for a tensor that parses but
cannot be a sequence); the client uses the same functions to encode and decode.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BadRequest", "NPY", "V2Request", "decode_native", "decode_v2", "encode_npy", "encode_v2", "parse_v2_response",
]

NPY = "application/x-npy"
HEADER_LENGTH = "inference-header-content-length"


class BadRequest(Exception):
    """A request that cannot be read; ``status`` is the HTTP status to answer (400, 415 or 422)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _load_npy(body: bytes, field_name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, EOFError, OSError... for a malformed file
        raise BadRequest(f"{field_name}: not a .npy array without objects ({_one_line(exc)}); "
                         "write it with numpy.save(..., allow_pickle=False)") from None


def _load_json(body: bytes, field_name: str):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{field_name}: not valid JSON ({_one_line(exc)})") from None


def _numbers(value, field_name: str) -> np.ndarray:
    """A JSON list of numbers as an array; strings, nulls or ragged rows are a 422."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise BadRequest(f"{field_name}: must be a rectangular list of numbers", 422) from None
    return array


def decode_native(body: bytes, content_type: str) -> np.ndarray:
    """The ``[length, features]`` array of a ``/v1`` request body (not yet checked against the model)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in (NPY, "application/octet-stream"):
        return _load_npy(body, "body")
    if kind in ("application/json", ""):
        value = _load_json(body, "body")
        if isinstance(value, dict):
            if "input" not in value:
                raise BadRequest("body: a JSON object needs the field 'input': [[...], ...]", 422)
            value = value["input"]
        return _numbers(value, "input")
    raise BadRequest(f"content-type: {content_type!r} is not supported; send {NPY} or application/json", 415)


@dataclass
class V2Request:
    """A decoded KServe v2 inference request."""

    array: np.ndarray
    request_id: str | None = None
    binary_output: bool = False  # answer with the binary-tensor extension
    parameters: dict = field(default_factory=dict)


def decode_v2(body: bytes, header_length: str | None, input_name: str = "input") -> V2Request:
    """A v2 request: JSON, or JSON header plus binary tensors (``header_length`` from the HTTP header)."""
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            raise BadRequest(f"Inference-Header-Content-Length: not an integer: {header_length!r}") from None
        if not 0 < split <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length: {split} is outside the body of {len(body)} bytes")
        header, binary = _load_json(body[:split], "header"), body[split:]
    else:
        header, binary = _load_json(body, "body"), b""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise BadRequest("inputs: the request needs a list 'inputs' of tensors", 422)
    tensors = {t.get("name"): t for t in header["inputs"] if isinstance(t, dict)}
    if input_name not in tensors or len(header["inputs"]) != 1:
        raise BadRequest(f"inputs: give exactly one tensor named {input_name!r} (FP32 [length, features]); "
                         f"got {sorted(map(str, tensors))}", 422)
    tensor = tensors[input_name]
    if tensor.get("datatype") != "FP32":
        raise BadRequest(f"inputs[{input_name}].datatype: must be FP32, got {tensor.get('datatype')!r}", 422)
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(f"inputs[{input_name}].shape: must be a list of sizes, got {shape!r}", 422)
    size = int(np.prod(shape)) if shape else 1
    params = tensor.get("parameters") or {}
    if "binary_data_size" in params:
        nbytes = params["binary_data_size"]
        if nbytes != len(binary) or nbytes != 4 * size:
            raise BadRequest(f"inputs[{input_name}].parameters.binary_data_size: {nbytes} bytes, but the shape "
                             f"{shape} needs {4 * size} and the body holds {len(binary)}", 422)
        array = np.frombuffer(binary, dtype="<f4")
    else:
        if "data" not in tensor:
            raise BadRequest(f"inputs[{input_name}].data: missing (or give binary_data_size)", 422)
        array = _numbers(tensor["data"], f"inputs[{input_name}].data").reshape(-1)
        if array.size != size:
            raise BadRequest(f"inputs[{input_name}].data: {array.size} values, the shape {shape} needs {size}", 422)
    array = array.reshape(shape)
    request_params = header.get("parameters") or {}
    wants_binary = bool(request_params.get("binary_data_output", False)) or any(
        bool((o.get("parameters") or {}).get("binary_data", False))
        for o in header.get("outputs") or [] if isinstance(o, dict))
    return V2Request(array, header.get("id"), wants_binary, request_params if isinstance(request_params, dict) else {})


def encode_v2(model_name: str, output: np.ndarray, request_id: str | None, binary: bool,
              parameters: dict | None = None, output_name: str = "output") -> tuple[bytes, dict[str, str]]:
    """The v2 response body and its headers (binary-tensor extension when ``binary``)."""
    output = np.ascontiguousarray(output, dtype="<f4")
    tensor: dict = {"name": output_name, "datatype": "FP32", "shape": list(output.shape)}
    raw = b""
    if binary:
        raw = output.tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
    else:
        tensor["data"] = output.reshape(-1).tolist()
    response = {"model_name": model_name, "model_version": "1", "outputs": [tensor]}
    if request_id is not None:
        response["id"] = request_id
    if parameters:
        response["parameters"] = parameters
    header = json.dumps(response, separators=(",", ":")).encode()
    if not binary:
        return header, {"content-type": "application/json"}
    return header + raw, {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def parse_v2_response(body: bytes, header_length: str | None, output_name: str = "output") -> np.ndarray:
    """The output tensor of a v2 response (the client's side of :func:`encode_v2`)."""
    split = int(header_length) if header_length is not None else len(body)
    header = json.loads(body[:split])
    for tensor in header["outputs"]:
        if tensor["name"] == output_name:
            if "binary_data_size" in (tensor.get("parameters") or {}):
                return np.frombuffer(body[split:split + tensor["parameters"]["binary_data_size"]],
                                     dtype="<f4").reshape(tensor["shape"])
            return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    raise ValueError(f"response: no output tensor named {output_name!r}")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
