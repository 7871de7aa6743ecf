"""Online serving of the registry's champion model (FastAPI), with a request log and metrics.

Entry points: `flightops.serving.app.create_app` / `serve`, and `python -m flightops.serving`.
Nothing is imported here, so an entry point can load the environment (telemetry
switches included) before MLflow is imported.
"""
