"""ProcessServicer: `tilores_x.v1.ProcessService` on every gRPC server of
the mesh, reporting the replica's own figures (services/runtime/process_stats.py)."""

from __future__ import annotations

from typing import Any

from tilores_x.v1 import process_pb2, process_pb2_grpc

from services.runtime.process_stats import ProcessFigures, ProcessStats

SERVICE_NAME = process_pb2.DESCRIPTOR.services_by_name["ProcessService"].full_name


def stats_proto(stats: ProcessStats) -> process_pb2.GetProcessStatsResponse:
    return process_pb2.GetProcessStatsResponse(
        service=stats.service,
        rpcs=stats.rpcs,
        server_errors=stats.server_errors,
        rpc_seconds=stats.rpc_seconds,
        streams_in_flight=stats.streams_in_flight,
        uptime_s=stats.uptime_s,
        rss_bytes=stats.rss_bytes,
    )


class ProcessServicer(process_pb2_grpc.ProcessServiceServicer):
    def __init__(self, figures: ProcessFigures):
        self._figures = figures

    async def GetProcessStats(self, request: Any, context: Any) -> Any:
        return stats_proto(self._figures.read())
