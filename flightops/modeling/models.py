"""The two classifiers, both scikit-learn Pipelines so one MLflow flavor (sklearn) serves both.

Each pipeline starts with `ModelInputs`, which selects and types the contract columns: a
loaded model accepts any frame that carries the feature columns (ids and labels included)
and treats missing categoricals the same way at training and at scoring time. Their settings
are in config.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from flightops.modeling.config import BaselineConfig, CatBoostConfig
from flightops.modeling.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES, model_inputs


class ModelInputs(TransformerMixin, BaseEstimator):
    """Stateless first step: the contract columns in contract types (see schema.model_inputs)."""

    def fit(self, X: pd.DataFrame, y=None) -> "ModelInputs":
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return model_inputs(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(FEATURE_COLUMNS, dtype=object)


def build_baseline(config: BaselineConfig = BaselineConfig()) -> Pipeline:
    """One-hot categoricals (unknown values ignored), median-imputed scaled numerics, logistic regression."""
    columns = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
            ("numeric", Pipeline([
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]), list(NUMERIC_FEATURES)),
        ]
    )
    return Pipeline([
        ("inputs", ModelInputs()),
        ("columns", columns),
        ("classifier", LogisticRegression(C=config.C, max_iter=config.max_iter)),
    ])


def build_catboost(config: CatBoostConfig = CatBoostConfig()) -> Pipeline:
    """CatBoost on native categorical features; writes no files, bounded threads, fixed seed.

    Fit it on rows in time order (splits.split_by_time sorts them): with has_time the
    categorical target statistics of a row use only earlier rows, as they would in service
    (CatBoostConfig.classifier_arguments holds the structure, shared with the benchmark's script).
    """
    classifier = CatBoostClassifier(**config.classifier_arguments(), cat_features=list(CATEGORICAL_FEATURES))
    return Pipeline([("inputs", ModelInputs()), ("classifier", classifier)])
