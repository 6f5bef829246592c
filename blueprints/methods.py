"""Every route accepts every method so that the app, not the host, answers a wrong method with an
OpenAI-shaped 405 and answers CORS preflights (hosts answer unknown methods with a bare 404)."""

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
