"""llm_gateway: model providers behind one streaming contract."""
