"""The run layer: run one recipe, run studies, and the LightningCLI subclass."""
