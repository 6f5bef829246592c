"""Index ``function_app.py`` with the Python worker Azure itself runs (``azure-functions-runtime``).

Run under Python >= 3.13 (that package installs only there) from the project root:
``python tests/worker/index_like_azure.py``. Prints one JSON document: the init result, the
capabilities the worker reports (streaming turns on an HTTP URI), and every function's metadata as
the host would receive it (bindings as raw JSON).

The gRPC protobuf classes are supplied by the host's proxy at run time and are not on PyPI, so a
small stand-in builds plain records with the same field names; everything else is the real worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from types import SimpleNamespace
from typing import Any


class _Record(SimpleNamespace):
    """A protobuf message stand-in: keyword fields in, attributes out."""


class _BindingInfo(_Record):
    # enum values as in the Functions RPC contract
    class Direction:
        in_ = 0
        out = 1
        inout = 2

    class DataType:
        undefined = 0
        string = 1
        binary = 2
        stream = 3

    undefined = 0
    string = 1
    binary = 2
    stream = 3
    out = 1
    inout = 2


class _StatusResult(_Record):
    Failure = 0
    Success = 1
    Cancelled = 2


def _protos() -> SimpleNamespace:
    names = ["RpcFunctionMetadata", "RpcRetryOptions", "WorkerInitResponse", "WorkerMetadata",
             "RpcException", "FunctionMetadataResponse", "NullableString", "NullableBool", "NullableDouble",
             "TypedData", "RpcHttp", "ParameterBinding", "NullableTimestamp", "RpcHttpCookie"]
    protos = SimpleNamespace(**{name: type(name, (_Record,), {}) for name in names})
    protos.BindingInfo = _BindingInfo
    protos.StatusResult = _StatusResult
    return protos


def _plain(value: Any) -> Any:
    if isinstance(value, SimpleNamespace):
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


async def main() -> dict[str, Any]:
    app_dir = os.getcwd()
    sys.path.insert(0, app_dir)
    from azure_functions_runtime import handle_event

    protos = _protos()
    init = SimpleNamespace(
        request=SimpleNamespace(worker_init_request=SimpleNamespace(capabilities={},
                                                                    function_app_directory=app_dir)),
        properties={"protos": protos, "host": "127.0.0.1"},
    )
    response = await handle_event.worker_init_request(init)
    status = response.result.status
    result: dict[str, Any] = {
        "status": "success" if status == _StatusResult.Success else "failure",
        "exception": _plain(getattr(response.result, "exception", None)),
        "capabilities": _plain(response.capabilities),
        "functions": [],
    }
    for meta in handle_event._metadata_result or []:
        result["functions"].append({
            "name": meta.name,
            "script_file": meta.script_file,
            "entry_point": meta.entry_point,
            "raw_bindings": [json.loads(b) for b in meta.raw_bindings],
            "properties": _plain(meta.properties),
        })
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
    os._exit(0)  # the worker's streaming server thread would otherwise keep the process alive
