"""The Azure Functions functions of the app (``functions.py``): HTTP ones made from the route table in
``shared/routes.py``, and the embedding-jobs queue triggers. No logic lives here."""
