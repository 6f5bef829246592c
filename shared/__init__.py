"""The gateway's own library: routes, the HTTP adapter, the operations, the upstream call, jobs.

Everything here is plain Python that tests can call without a Functions host; ``blueprints/`` only
registers the functions the route table (``shared/routes.py``) and the job queues call for. The
README's Architecture section says which one file answers which question.
"""
