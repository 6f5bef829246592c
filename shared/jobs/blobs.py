"""JSONL in and out of blobs, streamed so that memory stays flat whatever the job's size."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from shared.storage import StorageClients

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient

NDJSON = "application/x-ndjson"
# Download in pieces of this size: large enough to be quick, small enough to bound memory.
DOWNLOAD_CHUNK_BYTES = 4 * 1024 * 1024


class BlobMissing(LookupError):
    """A referenced blob does not exist."""


def blob_client(storage: StorageClients, container: str, name: str) -> BlobClient:
    return storage.blob.get_blob_client(container, name)


async def iter_chunks(blob: BlobClient) -> AsyncIterator[bytes]:
    """The blob's bytes, a piece at a time; :class:`BlobMissing` when there is no such blob."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        downloader = await blob.download_blob(max_concurrency=1)
    except ResourceNotFoundError:
        raise BlobMissing(f"blob '{blob.container_name}/{blob.blob_name}' does not exist") from None
    async for piece in downloader.chunks():
        yield piece


async def iter_lines(blob: BlobClient) -> AsyncIterator[bytes]:
    """Non-blank lines of a text blob, without their line endings."""
    pending = b""
    async for piece in iter_chunks(blob):
        pending += piece
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\r")
    if pending.strip():
        yield pending.rstrip(b"\r")


async def upload_lines(blob: BlobClient, lines: Iterable[str]) -> None:
    """Write a whole (small) JSONL blob, replacing it: re-running a step rewrites the same content."""
    from azure.storage.blob import ContentSettings

    data = "".join(line + "\n" for line in lines).encode("utf-8")
    await blob.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_type=NDJSON))


async def stage_block(blob: BlobClient, block_id: str, data: bytes) -> None:
    await blob.stage_block(block_id, data, length=len(data))


async def commit_blocks(blob: BlobClient, block_ids: list[str]) -> None:
    """Commit the blocks in this order; committing the same list again yields the same blob."""
    from azure.storage.blob import BlobBlock, ContentSettings

    await blob.commit_block_list([BlobBlock(block_id=b) for b in block_ids],
                                 content_settings=ContentSettings(content_type=NDJSON))
