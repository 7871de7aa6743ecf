"""Layers 6-7: training with tuning, evaluation, MLflow tracking and registry, guarded promotion.

Plain functions over DataFrames and small config dataclasses; the Dagster assets call them. Import
the module you need (`flightops.modeling.training`, `.promotion`, ...): this package imports nothing,
so the serving process does not pull in Optuna and training.
"""
