"""What every service shares: server bootstrap, settings, logs, request ids,
client channels and the domain faults that become gRPC statuses."""
