"""The queue message format, version 1 (``schemas/embedding-job-message.v1.json`` is the same contract).

Producers put a ``job`` message on ``EMBEDDING_JOBS_QUEUE``; the planner turns it into ``chunk``
messages on the same queue. Both carry ``"schema": "embedding-job/v1"`` so that a later version can
live next to this one. Unknown fields are refused: a typo must fail loudly, not be ignored.

On the wire a message is the compact JSON below, UTF-8, base64-encoded (the Functions host's
``messageEncoding: base64``; ``TextBase64EncodePolicy`` in the storage SDK does the same).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from shared.jobs.ids import BATCH_PATTERN, EMBEDDING_JOB_PATTERN
from shared.jobs.ids import PATTERN as ENGINE_ID_PATTERN
from shared.jobs.proof import TOKEN_PATTERN

SCHEMA_VERSION = "embedding-job/v1"
# Azure queue messages are at most 64 KiB as stored, i.e. after base64 (4/3 of the JSON).
MAX_ENCODED_BYTES = 64 * 1024
MAX_INPUT_ID_CHARS = 512
MAX_DIMENSIONS = 8192
CONTAINER_PATTERN = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"
# A caller identity as ``shared.callers.identify`` spells it: who may read the job and whose budget it spends.
OWNER_PATTERN = r"^(key:[0-9a-f]{16}|principal:[^\s]{1,256}|anonymous)$"

def _integral(value: Any) -> Any:
    """JSON Schema's ``integer`` includes ``256.0``; accept it as 256 (still refusing 2.5, "2" and true)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
JobId = Annotated[str, StringConstraints(pattern=EMBEDDING_JOB_PATTERN)]
BatchId = Annotated[str, StringConstraints(pattern=BATCH_PATTERN)]
# What a chunk may belong to: an embedding job or a batch (one engine runs both).
EngineId = Annotated[str, StringConstraints(pattern=ENGINE_ID_PATTERN)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
Token = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]
Owner = Annotated[str, StringConstraints(pattern=OWNER_PATTERN)]


class StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        """An optional field is left out, never null (as the JSON Schema says)."""
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"'{key}' must not be null; leave the field out instead")
        return data


class InputItem(StrictModel):
    """An input with the caller's own id, echoed on its result line."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_ID_CHARS)]
    text: str


InputValue = str | InputItem


class BlobRef(StrictModel):
    """A JSONL blob in the job storage account: one input (a JSON string or ``{"id","text"}``) per line."""

    container: Annotated[str, StringConstraints(pattern=CONTAINER_PATTERN)] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class JobMessage(StrictModel):
    """A whole job: inline inputs, or a reference to a JSONL blob (the claim check)."""

    schema_: Literal["embedding-job/v1"] = Field(alias="schema")
    type: Literal["job"]
    id: JobId
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    input: Annotated[list[InputValue], Field(min_length=1)] | None = None
    input_blob: BlobRef | None = None
    dimensions: Annotated[Integer, Field(ge=1, le=MAX_DIMENSIONS)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    # Proof that a message belongs to its job (``shared.jobs.proof``) and who owns it (``shared.jobs.access``).
    token: Token | None = None
    owner: Owner | None = None

    @model_validator(mode="after")
    def _one_source(self) -> JobMessage:
        if (self.input is None) == (self.input_blob is None):
            raise ValueError("exactly one of 'input' and 'input_blob' must be given")
        return self


class ChunkMessage(StrictModel):
    """One planned slice of a job, sized to one upstream request (internal; same queue, same schema)."""

    schema_: Literal["embedding-job/v1"] = Field(alias="schema")
    type: Literal["chunk"]
    id: EngineId
    chunk: Annotated[Integer, Field(ge=0)]
    start: Annotated[Integer, Field(ge=0)]
    count: Annotated[Integer, Field(ge=1, le=2048)]
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    dimensions: Annotated[Integer, Field(ge=1, le=MAX_DIMENSIONS)] | None = None
    deferrals: Annotated[Integer, Field(ge=0)] = 0
    token: Token | None = None
    # Passing failures retried so far, and when the job's time budget ends (unix seconds): a chunk
    # keeps retrying with backoff until then (``shared.jobs.patience``).
    attempts: Annotated[Integer, Field(ge=0)] | None = None
    deadline: Annotated[float, Field(ge=0)] | None = None


class BatchMessage(StrictModel):
    """A batch's step (internal; written only by ``POST /v1/batches`` and the batch service).

    ``plan``: read the batch's input file (named on its row, never in the message) into chunks;
    ``close``: end a batch that is being cancelled or whose completion window ran out, writing the
    lines it finished to its output file and an error line for each of the rest.
    """

    schema_: Literal["embedding-job/v1"] = Field(alias="schema")
    type: Literal["batch"]
    id: BatchId
    token: Token
    action: Literal["plan", "close"] = "plan"


AnyMessage = JobMessage | ChunkMessage | BatchMessage
Message = Annotated[AnyMessage, Field(discriminator="type")]
_adapter: TypeAdapter[AnyMessage] = TypeAdapter(Message)


def parse(raw: bytes | str) -> AnyMessage:
    """Validate decoded message JSON; raises ``pydantic.ValidationError``."""
    return _adapter.validate_json(raw)


def to_json(message: AnyMessage) -> str:
    return message.model_dump_json(by_alias=True, exclude_none=True)


def encode(message_json: str) -> str:
    """Base64 exactly as ``TextBase64EncodePolicy`` does it (UTF-8 bytes, standard alphabet)."""
    return base64.b64encode(message_json.encode("utf-8")).decode("ascii")


def encoded_size(message_json: str) -> int:
    return 4 * -(-len(message_json.encode("utf-8")) // 3)


def fits_queue(message_json: str) -> bool:
    return encoded_size(message_json) <= MAX_ENCODED_BYTES
