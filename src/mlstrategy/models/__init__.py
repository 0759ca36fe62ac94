"""LightningModules on one shared base, the plain networks they train, and their backbones."""

from mlstrategy.models.base import SupervisedModule
from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.conv import CNN, ConvNet, ConvRegressor
from mlstrategy.models.deep import MLP, DeepNet, DeepRegressor
from mlstrategy.models.heads import Head
from mlstrategy.models.linear import LinearRegression
from mlstrategy.models.logistic import LogisticRegression
from mlstrategy.models.multitask import MultiTaskNet, MultiTaskNetwork
from mlstrategy.models.regressor import RegressorModule
from mlstrategy.models.softmax import SoftmaxRegression
from mlstrategy.models.transfer import TransferNet, TransferNetwork

__all__ = [
    "CNN",
    "MLP",
    "ClassifierModule",
    "ConvNet",
    "ConvRegressor",
    "DeepNet",
    "DeepRegressor",
    "Head",
    "LinearRegression",
    "LogisticRegression",
    "MultiTaskNet",
    "MultiTaskNetwork",
    "RegressorModule",
    "SoftmaxRegression",
    "SupervisedModule",
    "TransferNet",
    "TransferNetwork",
]
