"""Model providers. Each streams `str` text deltas, then one `Usage`, then one
`Finish`; failures before the first delta raise a `Fault`."""
