"""A moment as the mesh's messages carry it: a google.protobuf.Timestamp
(as Google's API guides ask, and shown by REST as ISO 8601), from and to
the seconds since the epoch the domain code keeps."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp_of(seconds: float | None) -> Timestamp | None:
    """The Timestamp of `seconds` since the epoch; None stays None (unset)."""
    if seconds is None:
        return None
    moment = Timestamp()
    moment.FromNanoseconds(round(seconds * 1e9))
    return moment


def seconds_of(moment: Timestamp) -> float:
    """Seconds since the epoch; 0.0 for an unset Timestamp."""
    return moment.seconds + moment.nanos / 1e9
