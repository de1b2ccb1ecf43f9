"""What Sayso keeps of its former name, Signoff, and why: the one place that still says it.

- ``KEY_LABEL`` starts every key-derivation label (sealed secrets, signed file URLs, answer
  links, the derived JWT key and key ids). Installations hold data sealed and links signed under
  it; a new label would make their stored secrets unreadable and void every link already sent.
- For one release, a ``SIGNOFF_*`` environment variable is read as the ``SAYSO_*`` one it became,
  with a warning naming the new name; where both are set, the new one wins and the old one is
  reported as ignored. Values are never logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from typing import Final

log = logging.getLogger(__name__)

KEY_LABEL: Final = b"signoff"

OLD_PREFIX: Final = "SIGNOFF_"
NEW_PREFIX: Final = "SAYSO_"

# What `make run` kept under the old name: its state directory (beside the new ``.sayso``) and
# the MongoDB database its data is in. sayso-devstack takes such a directory over once.
OLD_STATE_DIR: Final = ".signoff"
OLD_MONGO_DB: Final = "signoff"


# Old names already copied in this process: settings are built more than once, warn only once.
_adopted: set[str] = set()


def adopt_old_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy each ``SIGNOFF_X`` to ``SAYSO_X`` where that is unset; returns (and logs) one warning
    per old name found."""
    env = os.environ if environ is None else environ
    warnings: list[str] = []
    for old in sorted(name for name in env if name.startswith(OLD_PREFIX)):
        new = NEW_PREFIX + old[len(OLD_PREFIX) :]
        if environ is None and old in _adopted:
            continue
        if environ is None:
            _adopted.add(old)
        if new in env:
            warnings.append(f"{old} is ignored because {new} is set (Signoff is now Sayso); remove {old}")
        else:
            env[new] = env[old]
            warnings.append(
                f"{old} is deprecated: rename it {new} (Signoff is now Sayso); read as {new} for now"
            )
    for warning in warnings:
        log.warning(warning)
    return warnings
