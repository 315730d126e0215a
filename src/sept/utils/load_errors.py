"""What to say when loading a pretrained model failed, without passing on unsafe advice.

torch refuses a pickled checkpoint that holds more than tensors and suggests re-running
``torch.load`` with weights_only set to False, which would run whatever code the file carries. sept
never does that, so its messages never repeat the hint: :func:`load_failure` replaces such an error
with what to do instead.
"""

from __future__ import annotations

import pickle

#: the reason given for a checkpoint torch refused to unpickle safely
UNSAFE_PICKLE = (
    "its pickled (.bin) checkpoint holds more than tensors, and sept never unpickles arbitrary objects "
    "(torch.load with weights_only=True); use a .safetensors checkpoint"
)


def is_unsafe_pickle(exc: BaseException) -> bool:
    """True when ``exc`` is torch refusing a pickle (its message advises turning weights_only off)."""
    return isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc)


def load_failure(exc: BaseException) -> str:
    """The reason to show for a failed model load: ``exc``'s message, or :data:`UNSAFE_PICKLE`."""
    return UNSAFE_PICKLE if is_unsafe_pickle(exc) else str(exc)
