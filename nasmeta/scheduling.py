"""The value type every scheduler and stopper answers with (Syne Tune's ``SchedulerDecision``).

- ``CONTINUE``: train the run for (at least) one more epoch.
- ``PAUSE``: stop training this run *for now* but keep its state; a scheduler may resume it later with more
  budget (successive halving promotes paused runs to the next rung).
- ``STOP``: the run is finished for good; its resources can be freed and it will never be resumed.
"""

from __future__ import annotations

import enum


class Decision(enum.Enum):
    CONTINUE = "continue"
    PAUSE = "pause"
    STOP = "stop"
