"""The asset groups: one per layer of the platform, named once here.

Asset modules put their assets in these groups; jobs and the CLI select by them.
"""

INGESTION = "ingestion"  # layer 2: raw/* tables, as delivered
VALIDATION = "validation"  # layer 3: clean/* tables, quarantine beside them
TRANSFORM = "transform"  # layer 4: the dbt models (staging/*, intermediate/*, marts/*)
FEATURES = "features"  # layer 5: features/* and labels
MODELS = "models"  # layer 6: training, registry, guarded promotion
DEPLOYMENT = "deployment"  # layer 7: batch predictions
MONITORING = "monitoring"  # layer 8: drift, performance, retraining decisions (and their dbt models)
