"""tilores_data: the only door to customer data."""
