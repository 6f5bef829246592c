"""Asynchronous embedding jobs: submit, plan into chunks, embed, assemble results, report progress.

Flow (every step idempotent, because queue delivery is at least once)::

    HTTP POST / client.submit_job ──▶ job message ──▶ planner ──▶ chunk messages ──▶ chunk worker
                                       (queue)        (blobs, table)  (queue)        (upstream, blob
                                                                                       blocks, table)
                                                                 last chunk done ──▶ finalize

Modules, one job each: ``ids`` and ``layout`` (names), ``messages`` (the versioned queue message
format, tagged ``SCHEMA_VERSION``), ``openapi_schema`` (the HTTP submit body as JSON Schema, for the
OpenAPI document), ``enqueue`` (``put_message``: base64 onto a queue), ``packing`` (inputs into
requests), ``pacer`` (rate-limit signals, interactive reserve), ``store`` (Table state), ``runtime``
(storage handles), ``blobs`` (JSONL in and out), ``embed`` (one upstream call), ``progress`` (what a
paused chunk keeps), ``results`` (result lines and blocks), ``planner``, ``worker``, ``finalize``
(success, or an early end with partial results), ``queue_trigger`` and ``poison`` (the two queue
triggers' handlers), ``patience`` (retries within the job's time budget), ``embedding_models``
(which models a job may use), ``listing`` (a caller's jobs or batches in pages, by the owner
index), ``service`` (HTTP operations) and ``client`` (the producer helper).
Trust boundaries: ``refs`` (which blobs a message may name), ``proof`` (which job a message may act
on), ``access`` (who owns a job), ``charge`` (the owner's token budget) and ``outage`` (storage down
is a 503). See ``schemas/README.md`` for the contract.
"""
