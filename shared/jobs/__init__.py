"""Asynchronous embedding jobs: submit, plan into chunks, embed, assemble results, report progress.

Flow (every step idempotent, because queue delivery is at least once)::

    HTTP POST / client.submit_job ──▶ job message ──▶ planner ──▶ chunk messages ──▶ chunk worker
                                       (queue)        (blobs, table)  (queue)        (upstream, blob
                                                                                       blocks, table)
                                                                 last chunk done ──▶ finalize

Modules, one job each: ``ids`` and ``layout`` (names), ``messages`` (the versioned queue schema),
``packing`` (inputs into requests), ``pacer`` (rate-limit signals), ``store`` (Table state),
``blobs`` (JSONL in and out), ``embed`` (one upstream call), ``planner``, ``worker``, ``finalize``,
``poison``, ``service`` (HTTP operations) and ``client`` (the producer helper).
"""
