"""The gateway's own library: configuration, clients, the retry policy, validation and relaying.

Everything here is plain Python that tests can call without a Functions host; the blueprints in
``blueprints/`` only translate between HTTP (or queue messages) and these functions.
"""
