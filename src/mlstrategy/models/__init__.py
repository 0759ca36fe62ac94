"""LightningModules and the plain networks they train."""

from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.logistic import LogisticRegression
from mlstrategy.models.softmax import SoftmaxRegression

__all__ = ["ClassifierModule", "LogisticRegression", "SoftmaxRegression"]
