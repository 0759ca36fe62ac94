"""Callbacks that cost Lightning nothing in the hooks they do not use."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

# The hooks Lightning calls through its dispatcher (trainer/call.py _call_callback_hooks), which
# skips a hook that is not callable. on_save_checkpoint and on_load_checkpoint are called
# directly, so they stay methods.
_DISPATCHED = tuple(
    name
    for name in vars(Callback)
    if (name.startswith("on_") or name in ("setup", "teardown"))
    and name not in ("on_save_checkpoint", "on_load_checkpoint")
)


class LeanCallback(Callback):
    """A callback whose unused hooks Lightning skips.

    For every callback and every hook, on every training and validation step, Lightning's
    dispatcher enters a profiler context, formats the hook's name and calls the method, even
    :class:`~lightning.pytorch.callbacks.Callback`'s empty one: about 6 hooks a training step,
    a few microseconds each. The dispatcher skips a hook that is not callable, so this sets
    each hook the subclass does not override to None on the instance. Behaviour does not
    change; a callback with only checkpoint state (:class:`~mlstrategy.callbacks.guards.RNGState`)
    then costs nothing per step.

    Example:
        >>> class Saver(LeanCallback):
        ...     def on_train_end(self, trainer, pl_module): ...
        >>> saver = Saver()
        >>> saver.on_train_batch_end is None, callable(saver.on_train_end)
        (True, True)
    """

    def __init__(self) -> None:
        super().__init__()
        for name in _DISPATCHED:
            if getattr(type(self), name) is getattr(Callback, name):
                setattr(self, name, None)
