"""The Election service: leader election with fencing terms, and who leads, as it changes.

    with Client() as client:
        with client.election("scheduler").campaign(value=b"host-a") as leadership:
            leadership.check()                    # raises LeadershipLost once it is over
            write(..., fence=leadership.term)     # the term is a fencing token
        client.election("scheduler").leader()    # Leader(term, value, ...) or None
        for change in client.election("scheduler").observe():
            ...                                   # the state, then every change, in order

:class:`Election` (sync) and :class:`AsyncElection` (asyncio), one module per concern:
:mod:`.models` (results, errors), :mod:`._codec` (requests and parsing), :mod:`._campaign` (the
campaign's state machine), :mod:`.sync` and :mod:`.aio`. See :mod:`.sync` for more.
"""

from ._campaign import KEEP_ALIVE_FRACTION
from ._codec import SERVICE
from .aio import AsyncCampaign, AsyncElection, AsyncElectionAPI, AsyncLeadership, AsyncObservation
from .models import (
    ChangeKind,
    EndReason,
    Leader,
    LeaderChange,
    LeadershipLost,
    LeaderState,
    LostCallback,
    NotElected,
    ProclaimResult,
    ResignOutcome,
    ResignResult,
)
from .sync import Campaign, Election, ElectionAPI, Leadership, Observation

__all__ = [
    "KEEP_ALIVE_FRACTION",
    "SERVICE",
    "AsyncCampaign",
    "AsyncElection",
    "AsyncElectionAPI",
    "AsyncLeadership",
    "AsyncObservation",
    "Campaign",
    "ChangeKind",
    "Election",
    "ElectionAPI",
    "EndReason",
    "Leader",
    "LeaderChange",
    "LeaderState",
    "Leadership",
    "LeadershipLost",
    "LostCallback",
    "NotElected",
    "Observation",
    "ProclaimResult",
    "ResignOutcome",
    "ResignResult",
]
