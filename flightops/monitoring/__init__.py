"""Layer 8, monitor and feed back: drift, estimated and realized performance, retraining decisions, alerts.

Plain functions over DataFrames and small config objects; the Dagster assets (assets/monitoring.py)
and sensors (sensors/retraining.py, sensors/alerts.py) call them.
"""
