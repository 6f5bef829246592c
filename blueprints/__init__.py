"""HTTP and queue triggers. Each function parses, calls ``shared``, and shapes the reply."""
