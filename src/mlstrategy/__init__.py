"""mlstrategy: practical ML strategy (Ng's deep learning course) in PyTorch Lightning."""

__version__ = "0.1.0"
