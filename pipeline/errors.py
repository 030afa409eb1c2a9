"""The one exception type for problems a user causes and can fix: bad params, a corrupt or malformed input file,
a model that cannot be found, an unusable device. Its message names the file, key or sample and what to do;
`stages.common.run_stage` prints it in a few lines instead of a traceback (docs/testing.md, "Errors")."""

from __future__ import annotations

import os
from pathlib import Path


class InputError(ValueError):
    """A problem with the user's params, files, models or machine; the message says which and what to do."""


def unloadable_model(source: object, expected: str, cause: Exception) -> InputError:
    """The error for a model id or folder `from_pretrained` cannot load: a hub id missing from the local cache
    while HF_HUB_OFFLINE is set says so, with how to fetch it."""
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    if Path(str(source)).exists():
        hint = "the folder is not a complete `save_pretrained` output"
    elif os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        hint = (f"HF_HUB_OFFLINE is set and the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) "
                f"lacks it: fetch it once with network access (`hf download {source}`), or fix the id")
    else:
        hint = "check the id on huggingface.co (or the folder path) and the network"
    return InputError(f"{source}: cannot load {expected} ({reason}); {hint}")
