"""The OpenAI Batch API on the embedding-jobs engine: ``client.files.*`` and ``client.batches.*`` unchanged.

A caller uploads a JSONL file of requests (``POST /v1/files``, ``purpose=batch``), creates a batch
from it (``POST /v1/batches``), polls it, and downloads its output and error files. Files and
batches live in the jobs' own storage (same container, table and queue; names in
``shared.jobs.layout``) and belong to the caller that created them.

Modules, one job each:

- ``lines``: what one input line must be, and the whole-file check (upload and planner);
- ``files``: the ``/v1/files`` operations (upload with multipart parsing, list, retrieve, delete,
  content) and ``record_file``, the one writer of file rows (also used for a batch's output files);
- ``service`` and ``view``: the ``/v1/batches`` operations and the Batch object callers see;
- the engine, on the embedding-jobs engine's messages, chunk rows and progress: ``steps`` (what a
  ``batch`` message asks: plan or close), ``planner`` (the input file into chunk blobs of whole
  lines), ``planned`` (the line format inside a chunk blob), ``worker`` (one chunk: embeddings
  packed into few upstream calls, chat and Responses lines with bounded concurrency), ``requests``
  (one chat or Responses line through the upstream), ``output`` (OpenAI's output and error line
  format), ``assemble`` (records into staged blocks of the two files) and ``finish`` (finalize, or
  close a cancelled, expired or failed batch with the lines it finished).
"""
