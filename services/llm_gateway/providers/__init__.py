"""Model providers. Each streams `str` text deltas (and tool-call deltas), then one
`Finish`, then one `Usage` as the last event; failures before the first delta raise a `Fault`."""
