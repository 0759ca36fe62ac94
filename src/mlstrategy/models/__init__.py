"""LightningModules and the plain networks they train."""

from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.conv import CNN, ConvNet
from mlstrategy.models.deep import MLP, DeepNet
from mlstrategy.models.logistic import LogisticRegression
from mlstrategy.models.multitask import Head, MultiTaskNet, MultiTaskNetwork
from mlstrategy.models.softmax import SoftmaxRegression
from mlstrategy.models.transfer import TransferNet, TransferNetwork

__all__ = [
    "CNN",
    "MLP",
    "ClassifierModule",
    "ConvNet",
    "DeepNet",
    "Head",
    "LogisticRegression",
    "MultiTaskNet",
    "MultiTaskNetwork",
    "SoftmaxRegression",
    "TransferNet",
    "TransferNetwork",
]
